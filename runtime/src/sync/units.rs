//! What a backend resolves to: for each model the adapter and mapper that
//! serve it ([`Route`]), every adapter that serves the backend, and the
//! [`MapperUnit`] seam the sync benchmark uses to run the same mapping
//! natively.

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::BackendConfig;
use crate::capabilities::CallContext;
use crate::host::{CallReport, Unit};
use crate::model::{Dependency, LocalDependency, LocalRecord, RemoteRecord};

use super::SyncError;

/// The mapper a backend uses. In production it is always a component
/// ([`Unit`]); the sync benchmark plugs in the same mapping code compiled
/// natively to measure what the sandbox costs.
#[async_trait]
pub trait MapperUnit: Send + Sync {
    async fn dependencies(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<Vec<Dependency>>;
    async fn map_import(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<String>;
    async fn map_export(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
        changed: Option<Vec<String>>,
    ) -> CallReport<String>;
    async fn export_dependencies(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
    ) -> CallReport<Vec<LocalDependency>>;
    /// What the mapper's component declares (its match fields); none for
    /// a native mapper.
    async fn features(
        &self,
        _ctx: &Arc<CallContext>,
    ) -> Result<crate::features::Features, crate::error::CallError> {
        Ok(crate::features::Features::default())
    }
}

#[async_trait]
impl MapperUnit for Unit {
    async fn dependencies(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<Vec<Dependency>> {
        Unit::dependencies(self, ctx, model, record).await
    }
    async fn map_import(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<String> {
        Unit::map_import(self, ctx, model, record).await
    }
    async fn map_export(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
        changed: Option<Vec<String>>,
    ) -> CallReport<String> {
        Unit::map_export(self, ctx, model, record, changed).await
    }
    async fn export_dependencies(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
    ) -> CallReport<Vec<LocalDependency>> {
        Unit::export_dependencies(self, ctx, model, record).await
    }
    async fn features(
        &self,
        ctx: &Arc<CallContext>,
    ) -> Result<crate::features::Features, crate::error::CallError> {
        Unit::features(self, ctx).await
    }
}

/// A backend ready to run: its configuration, call context and the units
/// serving each of its models.
pub struct BackendUnits {
    pub config: BackendConfig,
    pub ctx: Arc<CallContext>,
    /// The units of each model some unit claims.
    pub routes: std::collections::BTreeMap<String, Route>,
    /// The units of a model no unit claims: those fitting the backend best
    /// whatever their models, when one does (a lone connector); `None`
    /// when several connectors share the backend.
    pub fallback: Option<Route>,
    /// Every adapter component serving the backend, each once: what
    /// `check` calls and whose listeners hear events.
    pub adapters: Vec<BackendAdapter>,
    /// Event patterns the adapters' listeners want together (none: no
    /// listener).
    pub listens: Vec<String>,
    /// The models imported, in the order the connectors' manifests list
    /// them (a connector lists a model after the ones it depends on;
    /// connectors by name).
    pub importable: Vec<String>,
    /// What the manifests of every unit in use request together.
    pub requests: crate::grants::Requests,
}

/// The units serving one model of a backend.
#[derive(Clone)]
pub struct Route {
    pub adapter: Unit,
    /// `name version` of each unit's component, for messages.
    pub adapter_label: String,
    pub mapper: Arc<dyn MapperUnit>,
    pub mapper_label: String,
    /// The mapper's component (its manifest says what it imports).
    pub mapper_digest: String,
}

/// One adapter component serving a backend.
#[derive(Clone)]
pub struct BackendAdapter {
    pub unit: Unit,
    pub label: String,
    /// Its listener's event patterns (none: it does not listen).
    pub listens: Vec<String>,
}

impl BackendUnits {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The units serving `model`.
    pub fn route(&self, model: &str) -> Result<&Route, SyncError> {
        self.routes
            .get(model)
            .or(self.fallback.as_ref())
            .ok_or_else(|| {
                SyncError::NotFound(format!(
                    "no connector serving backend {:?} claims model {model:?}; its models: {}",
                    self.name(),
                    self.routes.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }

    /// The adapters' labels, for operators (`a 1.0.0, b 2.1.0`).
    pub fn adapter_labels(&self) -> String {
        self.adapters
            .iter()
            .map(|a| a.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The mappers' labels, each once.
    pub fn mapper_labels(&self) -> String {
        let mut labels: Vec<&str> = Vec::new();
        for r in self.routes.values().chain(self.fallback.as_ref()) {
            if !labels.contains(&r.mapper_label.as_str()) {
                labels.push(&r.mapper_label);
            }
        }
        labels.join(", ")
    }
}
