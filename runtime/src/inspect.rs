//! `junction connector inspect`: load a file as a connector component, call
//! its `describe`, and report what it is — or precisely why it is not one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::capabilities::CallContext;
use crate::error::CallError;
use crate::host::{Host, LoadError};
use crate::limits::SandboxLimits;
use crate::model::Manifest;

/// What `inspect` found in a good component.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub file: String,
    pub digest: String,
    pub size_bytes: usize,
    pub world: &'static str,
    pub compile_ms: u128,
    pub compile_cached: bool,
    pub manifest: Manifest,
    /// What it declares beyond the manifest (contract 0.1.2; empty for
    /// older components).
    pub features: crate::features::Features,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    // The inner error is part of the message, not a `source`, so that
    // `{:#}` does not print it twice.
    #[error("{file}: {error}")]
    Load { file: String, error: LoadError },
    #[error("{file}: the component loaded, but describe failed: {error}")]
    Describe { file: String, error: CallError },
    #[error("{file}: the component loaded, but its features declaration failed: {error}")]
    Features { file: String, error: CallError },
}

/// Load `path`, call `describe` in a sandbox with no backend, validate it.
pub async fn inspect(host: &Host, path: &Path) -> Result<InspectReport, InspectError> {
    let file = path.display().to_string();
    let unit = host
        .load_file(path)
        .await
        .map_err(|error| InspectError::Load {
            file: file.clone(),
            error,
        })?;
    report(file, unit).await
}

/// [`inspect`] of bytes already in memory (an upload); `name` stands for
/// the file in the report.
pub async fn inspect_bytes(
    host: &Host,
    name: &str,
    bytes: &[u8],
) -> Result<InspectReport, InspectError> {
    let unit = host.load(bytes).await.map_err(|error| InspectError::Load {
        file: name.to_string(),
        error,
    })?;
    report(name.to_string(), unit).await
}

async fn report(file: String, unit: crate::host::Unit) -> Result<InspectReport, InspectError> {
    let ctx = Arc::new(CallContext::detached(SandboxLimits::default()));
    let manifest =
        unit.describe(&ctx)
            .await
            .into_result()
            .map_err(|error| InspectError::Describe {
                file: file.clone(),
                error,
            })?;
    let features = unit
        .features(&ctx)
        .await
        .map_err(|error| InspectError::Features {
            file: file.clone(),
            error,
        })?;
    let compile = unit.compile_info();
    Ok(InspectReport {
        file,
        digest: unit.digest().to_string(),
        size_bytes: unit.size(),
        world: unit.exports().world(),
        compile_ms: compile.duration.as_millis(),
        compile_cached: compile.cached,
        manifest,
        features,
    })
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every manifest field is the component's own text.
        let c = crate::text::clean;
        let m = &self.manifest;
        writeln!(f, "{} {} ({})", c(&m.name), c(&m.version), self.file)?;
        writeln!(f, "  world:            {}", self.world)?;
        writeln!(
            f,
            "  backend:          {} {}",
            c(&m.backend_kind),
            c(&m.backend_versions)
        )?;
        writeln!(f, "  digest:           {}", self.digest)?;
        writeln!(f, "  size:             {} bytes", self.size_bytes)?;
        writeln!(
            f,
            "  compile:          {} ms{}",
            self.compile_ms,
            if self.compile_cached {
                " (from cache)"
            } else {
                ""
            }
        )?;
        writeln!(f, "  models:")?;
        for model in &m.models {
            writeln!(
                f,
                "    {:<16}  {}",
                c(&model.name),
                c(&model.operations.join(", "))
            )?;
        }
        let list = |items: &[String]| {
            if items.is_empty() {
                "(none)".to_string()
            } else {
                c(&items.join(", "))
            }
        };
        writeln!(f, "  requested hosts:  {}", list(&m.hosts))?;
        writeln!(f, "  events:           {}", list(&m.events))?;
        writeln!(f, "  secrets:          {}", list(&m.secrets))?;
        let x = &self.features;
        if !x.is_empty() {
            let keys: Vec<String> = x
                .match_keys
                .iter()
                .map(|k| format!("{}.{}", k.model, k.field))
                .collect();
            let tasks: Vec<String> = x.tasks.iter().map(|t| t.name.clone()).collect();
            writeln!(f, "  match keys:       {}", list(&keys))?;
            writeln!(f, "  finds by key:     {}", list(&x.find))?;
            writeln!(f, "  lists ids of:     {}", list(&x.list_ids))?;
            writeln!(f, "  webhooks:         {}", list(&x.webhooks))?;
            writeln!(f, "  tasks:            {}", list(&tasks))?;
        }
        write!(f, "  settings schema:  {}", c(&m.settings_schema))
    }
}
