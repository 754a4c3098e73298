//! The contract's records as a connector sees them: JSON payloads as
//! `serde_json::Value` instead of text, and builders for the manifest and
//! job requests. The conversions to and from the WIT types live here, so
//! that the export glue stays mechanical.

use serde_json::Value;

use crate::Error;
use crate::bindings::junction::connector::types as wit;

pub use wit::Operations;

/// What a component is and what it needs (the `describe` export).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub backend_kind: String,
    /// A semver range such as `>=2.3, <3`.
    pub backend_versions: String,
    pub models: Vec<(String, Operations)>,
    /// Event patterns the listener wants, e.g. `record-written:product`.
    pub events: Vec<String>,
    /// Outbound hosts beyond the backend's own base URL.
    pub hosts: Vec<String>,
    /// JSON Schema of the backend settings.
    pub settings_schema: Value,
    pub secrets: Vec<String>,
}

impl Manifest {
    /// A manifest for `name` `version`, talking to `backend_kind` backends
    /// whose version is in `backend_versions`.
    pub fn new(name: &str, version: &str, backend_kind: &str, backend_versions: &str) -> Self {
        Manifest {
            name: name.to_string(),
            version: version.to_string(),
            backend_kind: backend_kind.to_string(),
            backend_versions: backend_versions.to_string(),
            models: Vec::new(),
            events: Vec::new(),
            hosts: Vec::new(),
            settings_schema: serde_json::json!({"type": "object"}),
            secrets: Vec::new(),
        }
    }

    pub fn model(mut self, name: &str, operations: Operations) -> Self {
        self.models.push((name.to_string(), operations));
        self
    }

    pub fn event(mut self, pattern: &str) -> Self {
        self.events.push(pattern.to_string());
        self
    }

    pub fn settings_schema(mut self, schema: Value) -> Self {
        self.settings_schema = schema;
        self
    }

    pub fn secret(mut self, name: &str) -> Self {
        self.secrets.push(name.to_string());
        self
    }
}

/// A record as the backend has it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRecord {
    pub external_id: String,
    /// RFC 3339, when the backend says.
    pub updated_at: Option<String>,
    pub data: Value,
}

/// One page of a search; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub items: Vec<RemoteRecord>,
    pub next_cursor: Option<String>,
}

/// A record as Junction stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRecord {
    pub model: String,
    pub id: String,
    pub data: Value,
    pub version: u64,
    pub updated_at: String,
}

/// A record that must be imported before the one being imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub model: String,
    pub external_id: String,
}

impl Dependency {
    pub fn new(model: &str, external_id: impl ToString) -> Self {
        Dependency {
            model: model.to_string(),
            external_id: external_id.to_string(),
        }
    }
}

/// A local record that must be exported before the one being exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDependency {
    pub model: String,
    pub local_id: String,
}

impl LocalDependency {
    pub fn new(model: &str, local_id: impl ToString) -> Self {
        LocalDependency {
            model: model.to_string(),
            local_id: local_id.to_string(),
        }
    }
}

/// A local or custom event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub model: String,
    pub local_id: Option<String>,
    pub changed_fields: Vec<String>,
    pub payload: Value,
    /// The backend an import came from (the host never lets a listener
    /// export back to it).
    pub origin_backend: Option<String>,
}

/// Work for the job queue.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    pub function: String,
    pub args: Value,
    pub priority: Option<u32>,
    /// RFC 3339: not before this time.
    pub eta: Option<String>,
    pub channel: Option<String>,
    pub identity_key: Option<String>,
    pub max_retries: Option<u32>,
    pub description: Option<String>,
}

impl JobRequest {
    pub fn new(function: &str, args: Value) -> Self {
        JobRequest {
            function: function.to_string(),
            args,
            priority: None,
            eta: None,
            channel: None,
            identity_key: None,
            max_retries: None,
            description: None,
        }
    }

    pub fn identity_key(mut self, key: impl Into<String>) -> Self {
        self.identity_key = Some(key.into());
        self
    }

    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_string());
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The synchronizer's export of one local record to `backend`.
    pub fn export_record(backend: &str, model: &str, local_id: &str, changed: &[String]) -> Self {
        JobRequest::new(
            "junction.export-record",
            serde_json::json!({
                "backend": backend, "model": model, "local_id": local_id, "fields": changed,
            }),
        )
        .description(format!("export {model} {local_id} to {backend}"))
    }

    /// The synchronizer's import of one backend record (`force`: every
    /// field again, even if the binding looks newer).
    pub fn import_record(backend: &str, model: &str, external_id: &str) -> Self {
        JobRequest::new(
            "junction.import-record",
            serde_json::json!({"backend": backend, "model": model, "external_id": external_id}),
        )
        .description(format!("import {model} {external_id} from {backend}"))
    }

    /// The synchronizer's deletion of the local record bound to a backend
    /// record the backend deleted; `verify` deletes only if the backend
    /// answers not-found for it when the job runs.
    pub fn delete_local(backend: &str, model: &str, external_id: &str, verify: bool) -> Self {
        JobRequest::new(
            "junction.delete-local",
            serde_json::json!({
                "backend": backend, "model": model, "external_id": external_id, "verify": verify,
            }),
        )
        .description(format!(
            "delete local {model} of {external_id} in {backend}"
        ))
    }

    /// One of the connector's own tasks (declared in its features).
    pub fn task(backend: &str, task: &str, args: Value) -> Self {
        JobRequest::new(
            "junction.task",
            serde_json::json!({"backend": backend, "task": task, "args": args}),
        )
        .description(format!("task {task} for {backend}"))
    }

    /// The synchronizer's deletion of a local record's copy in `backend`.
    pub fn delete_remote(backend: &str, model: &str, local_id: &str) -> Self {
        JobRequest::new(
            "junction.delete-remote",
            serde_json::json!({"backend": backend, "model": model, "local_id": local_id}),
        )
        .description(format!("delete {model} {local_id} in {backend}"))
    }
}

pub(crate) fn parse(what: &str, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::permanent(format!("{what} is not JSON: {e}")))
}

impl From<Error> for wit::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Retryable {
                after_seconds,
                message,
            } => wit::Error::Retryable(wit::Delay {
                seconds: after_seconds,
                message,
            }),
            Error::RateLimited {
                reset_seconds,
                message,
            } => wit::Error::RateLimited(wit::Delay {
                seconds: reset_seconds,
                message,
            }),
            Error::Permanent(m) => wit::Error::Permanent(m),
            Error::NotFound(m) => wit::Error::NotFound(m),
            Error::Config(m) => wit::Error::Config(m),
            Error::NothingToDo(m) => wit::Error::NothingToDo(m),
        }
    }
}

impl From<Manifest> for wit::Manifest {
    fn from(m: Manifest) -> Self {
        wit::Manifest {
            name: m.name,
            version: m.version,
            backend_kind: m.backend_kind,
            backend_versions: m.backend_versions,
            models: m
                .models
                .into_iter()
                .map(|(name, operations)| wit::ModelSupport { name, operations })
                .collect(),
            events: m.events,
            hosts: m.hosts,
            settings_schema: m.settings_schema.to_string(),
            secrets: m.secrets,
        }
    }
}

impl TryFrom<wit::RemoteRecord> for RemoteRecord {
    type Error = Error;
    fn try_from(r: wit::RemoteRecord) -> Result<Self, Error> {
        Ok(RemoteRecord {
            data: parse(&format!("record {}", r.external_id), &r.data)?,
            external_id: r.external_id,
            updated_at: r.updated_at,
        })
    }
}

impl From<RemoteRecord> for wit::RemoteRecord {
    fn from(r: RemoteRecord) -> Self {
        wit::RemoteRecord {
            external_id: r.external_id,
            updated_at: r.updated_at,
            data: r.data.to_string(),
        }
    }
}

impl From<Page> for wit::Page {
    fn from(p: Page) -> Self {
        wit::Page {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

impl TryFrom<wit::LocalRecord> for LocalRecord {
    type Error = Error;
    fn try_from(r: wit::LocalRecord) -> Result<Self, Error> {
        Ok(LocalRecord {
            data: parse(&format!("local {} {}", r.model, r.id), &r.data)?,
            model: r.model,
            id: r.id,
            version: r.version,
            updated_at: r.updated_at,
        })
    }
}

impl From<Dependency> for wit::Dependency {
    fn from(d: Dependency) -> Self {
        wit::Dependency {
            model: d.model,
            external_id: d.external_id,
        }
    }
}

impl From<LocalDependency> for wit::LocalDependency {
    fn from(d: LocalDependency) -> Self {
        wit::LocalDependency {
            model: d.model,
            local_id: d.local_id,
        }
    }
}

impl TryFrom<wit::Event> for Event {
    type Error = Error;
    fn try_from(e: wit::Event) -> Result<Self, Error> {
        Ok(Event {
            payload: parse(&format!("payload of event {}", e.name), &e.payload)?,
            name: e.name,
            model: e.model,
            local_id: e.local_id,
            changed_fields: e.changed_fields,
            origin_backend: e.origin_backend,
        })
    }
}

impl From<JobRequest> for wit::JobRequest {
    fn from(j: JobRequest) -> Self {
        wit::JobRequest {
            function: j.function,
            args: j.args.to_string(),
            priority: j.priority,
            eta: j.eta,
            channel: j.channel,
            identity_key: j.identity_key,
            max_retries: j.max_retries,
            description: j.description,
        }
    }
}
