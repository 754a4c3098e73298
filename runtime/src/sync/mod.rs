//! The synchronizer: OCA's Importer, BatchImporter, Exporter and Deleter,
//! run by the host for every connector. A connector supplies only adapter
//! and mapper units; locking, binding, dependencies, cursors, retries and
//! the "no export back" marker come from here.
//!
//! - [`Synchronizer`] installs connector components, stores backend
//!   configurations, and resolves each backend's units through the
//!   [`registry`](crate::registry) (cached until [`Synchronizer::reload`]).
//! - [`import`], [`batch`], [`export`]: the flows, one per job function
//!   (`junction.import-record`, `junction.import-batch`,
//!   `junction.export-record`, `junction.delete-remote`,
//!   `junction.delete-local`), registered on a worker pool by
//!   [`Synchronizer::register`].
//! - [`schedule`]: recurring batch imports per backend.
//! - [`trail`]: what the guest calls of one job left behind (log, audit),
//!   and how their errors become the job's outcome.
//! - `watch`: following installs, activations and backend changes made
//!   by other nodes.

pub(crate) mod adopt;
pub mod batch;
mod binder;
mod commit;
pub mod deliver;
pub mod export;
pub mod import;
mod probe;
pub mod reconcile;
pub mod schedule;
pub mod task;
pub mod trail;
mod watch;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::backend::{BackendConfig, BackendConfigError};
use crate::capabilities::stored::StoredServices;
use crate::capabilities::{CallContext, Services};
use crate::events::{EventBus, GuestListener};
use crate::host::{CallReport, Host, LoadError, Unit};
use crate::limits::SandboxLimits;
use crate::model::{Dependency, LocalDependency, LocalRecord, Manifest, RemoteRecord};
use crate::queue::job::Job;
use crate::queue::worker::{Handled, Handler, JobFailure, WorkerPool};
use crate::queue::{Queue, now_ms};
use crate::registry::{Candidate, RegistryError, UnitRole, pick};
use crate::secrets::SecretKey;
use crate::storage::{InstalledConnector, Storage, StorageError, StoredBackend};

use trail::Trail;

/// No registry generation seen yet.
const NOT_YET: i64 = i64::MIN;

pub const IMPORT_RECORD: &str = "junction.import-record";
pub const IMPORT_BATCH: &str = "junction.import-batch";
pub const EXPORT_RECORD: &str = "junction.export-record";
pub const DELETE_REMOTE: &str = "junction.delete-remote";
pub const DELETE_LOCAL: &str = "junction.delete-local";
/// Find the records a backend deleted (see `sync::reconcile`).
pub const RECONCILE: &str = "junction.reconcile";
pub use deliver::{DELIVER, LISTENER_TRIES, delivery, hears};
pub use task::TASK;

/// How long a job of a backend that cannot be resolved waits before it
/// looks again (it spends no try): half as long as it has waited so far,
/// from 5 s up to a minute, so that many waiting jobs do not keep
/// resolving the backend while the operator fixes it.
pub fn unresolved_wait(waited_ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis((waited_ms / 2).clamp(5_000, 60_000) as u64)
}

/// How the flows behave.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Subtracted from a stream's cursor before searching: changes in
    /// transactions still open when the last batch ran (OCA uses 30 s).
    pub safety_buffer: Duration,
    /// Records per search page.
    pub page_size: u32,
    /// How long a record or batch lease lasts at most. A lease held by a
    /// job lapses earlier, as soon as the job stops running.
    pub lease: Duration,
    /// Dependencies of dependencies of … imported inline, at most this deep.
    pub max_dependency_depth: u32,
    /// Guest calls (reads, dependencies, mappings) a page import runs at
    /// once.
    pub direct_concurrency: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            safety_buffer: Duration::from_secs(30),
            page_size: 100,
            lease: Duration::from_secs(300),
            max_dependency_depth: 4,
            direct_concurrency: 8,
        }
    }
}

/// Installing, configuring or resolving failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Backend(#[from] BackendConfigError),
    #[error("connector {name}: {reason}")]
    Connector { name: String, reason: String },
    #[error("backend {0:?} is not configured; configure it first")]
    UnknownBackend(String),
    #[error(
        "the scheduled import of {model} from backend {backend:?} could not be enqueued: {reason}"
    )]
    Schedule {
        backend: String,
        model: String,
        reason: String,
    },
    #[error("stored configuration of backend {name:?} is unreadable: {reason}")]
    StoredBackend { name: String, reason: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{connector} was not activated: {reason}; the active version keeps running")]
    Refused { connector: String, reason: String },
    #[error(
        "{connector} was not activated: it requests more than the active {active}: {more}; \
         review it (`junction connector inspect`) and approve the difference with \
         `junction connector activate {digest} --approve` (API: \"approve\": true); \
         the active version keeps running"
    )]
    NeedsApproval {
        connector: String,
        active: String,
        digest: String,
        more: Box<crate::grants::Requests>,
    },
}

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

/// The synchronizer of one node.
pub struct Synchronizer {
    storage: Arc<dyn Storage>,
    queue: Arc<Queue>,
    host: Host,
    bus: Arc<EventBus>,
    services: Services,
    settings: SyncSettings,
    node: String,
    backends: RwLock<HashMap<String, Arc<BackendUnits>>>,
    units: RwLock<HashMap<String, Unit>>,
    /// Per backend, the digest whose listener is registered (`None`: the
    /// active adapter has none).
    listening: RwLock<HashMap<String, Option<String>>>,
    /// The registry generation the backends were last resolved at
    /// ([`NOT_YET`] before the watcher's first look).
    resolved_generation: std::sync::atomic::AtomicI64,
    commit: commit::Committer,
    /// Seals backend credentials before they are stored.
    secret_key: Arc<SecretKey>,
    /// The backends' connection pools, kept across resolutions.
    pools: crate::capabilities::egress::Pools,
}

impl std::fmt::Debug for Synchronizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synchronizer")
            .field("node", &self.node)
            .finish()
    }
}

/// Which roles a component can play, from its manifest's operations and
/// its exports: an adapter declares search/read/create/write/delete, a
/// mapper import/export.
fn roles(manifest: &Manifest) -> (bool, bool) {
    let ops = |names: &[&str]| {
        manifest
            .models
            .iter()
            .any(|m| m.operations.iter().any(|o| names.contains(&o.as_str())))
    };
    (
        ops(&["search", "read", "create", "write", "delete"]),
        ops(&["import", "export"]),
    )
}

impl Synchronizer {
    pub fn new(
        queue: Arc<Queue>,
        host: Host,
        bus: Arc<EventBus>,
        node: &str,
        settings: SyncSettings,
        secret_key: Arc<SecretKey>,
    ) -> Arc<Synchronizer> {
        for f in [
            IMPORT_RECORD,
            IMPORT_BATCH,
            EXPORT_RECORD,
            DELETE_REMOTE,
            DELETE_LOCAL,
            TASK,
        ] {
            queue.register_guest_function(f);
        }
        // Five edits of a record waiting to be exported are one export:
        // it sends every field changed since the last sync.
        queue.register_coalescing(EXPORT_RECORD);
        Arc::new(Synchronizer {
            commit: commit::Committer::start(queue.storage().clone()),
            storage: queue.storage().clone(),
            services: Services::from_one(Arc::new(StoredServices::new(queue.clone()))),
            queue,
            host,
            bus,
            settings,
            node: node.to_string(),
            backends: RwLock::new(HashMap::new()),
            units: RwLock::new(HashMap::new()),
            listening: RwLock::new(HashMap::new()),
            resolved_generation: std::sync::atomic::AtomicI64::new(NOT_YET),
            secret_key,
            pools: Default::default(),
        })
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.queue
    }

    /// The component host the node's calls run on.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Install a connector component and make it the active version of
    /// its connector ([`Synchronizer::install_as`] with `activate`).
    pub async fn install(&self, bytes: &[u8]) -> Result<InstalledConnector, SyncError> {
        self.install_as(bytes, true, false).await
    }

    /// Install a connector component: it is loaded (type-checked), its
    /// manifest read and validated, and its exports checked against the
    /// operations it declares. Installing the same bytes again changes
    /// nothing. With `activate`, it then becomes the active version
    /// ([`Synchronizer::activate_connector`], which may refuse it; it
    /// stays installed then, inactive).
    pub async fn install_as(
        &self,
        bytes: &[u8],
        activate: bool,
        approve: bool,
    ) -> Result<InstalledConnector, SyncError> {
        let unit = self.host.load(bytes).await?;
        let ctx = Arc::new(CallContext::detached(SandboxLimits::default()));
        let manifest =
            unit.describe(&ctx)
                .await
                .into_result()
                .map_err(|e| SyncError::Connector {
                    name: unit.digest().to_string(),
                    reason: format!("its manifest could not be read: {e}"),
                })?;
        let exports = unit.exports();
        let (adapter, mapper) = roles(&manifest);
        let bad = |reason: String| SyncError::Connector {
            name: format!("{} {}", manifest.name, manifest.version),
            reason,
        };
        if adapter && !exports.adapter {
            return Err(bad("declares adapter operations (search, read, create, write, delete) but does not export the adapter interface".into()));
        }
        if mapper && !exports.mapper {
            return Err(bad(
                "declares import or export but does not export the mapper interface".into(),
            ));
        }
        if !adapter && !mapper {
            return Err(bad("declares no operations on any model, so it can serve as neither adapter nor mapper".into()));
        }
        let installed = InstalledConnector {
            digest: unit.digest().to_string(),
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            backend_kind: manifest.backend_kind.clone(),
            backend_versions: manifest.backend_versions.clone(),
            manifest: serde_json::to_string(&manifest).map_err(|e| bad(e.to_string()))?,
            installed_at: now_ms(),
            active: false,
        };
        self.storage.install_connector(&installed, bytes).await?;
        self.units
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(installed.digest.clone(), unit);
        if activate {
            return self.activate_connector(&installed.digest, approve).await;
        }
        self.connector(&installed.digest).await
    }

    /// An installed component by digest (`sha256:…`, or a unique prefix
    /// of its hex).
    pub async fn connector(&self, digest: &str) -> Result<InstalledConnector, SyncError> {
        let want = digest.strip_prefix("sha256:").unwrap_or(digest);
        let all = self.storage.connectors().await?;
        let found: Vec<_> = all
            .into_iter()
            .filter(|c| {
                c.digest
                    .strip_prefix("sha256:")
                    .unwrap_or(&c.digest)
                    .starts_with(want)
            })
            .collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(SyncError::NotFound(format!(
                "no installed connector has digest {digest}; `junction connector list` shows them"
            ))),
            n => Err(SyncError::NotFound(format!(
                "{n} installed connectors have a digest starting with {digest}; give more of it"
            ))),
        }
    }

    /// Make an installed component the active version of its connector:
    /// new calls use it, calls already running finish on the version they
    /// started with. Refused, with the old version still active, when a
    /// configured backend it would serve as adapter fails its `check`, or
    /// when a backend served today would be left without a unit.
    ///
    /// A version that requests more than the active one of its connector
    /// (a model or operation, an event, a host, a secret) is refused unless
    /// `approve` says the operator accepts the difference.
    pub async fn activate_connector(
        &self,
        digest: &str,
        approve: bool,
    ) -> Result<InstalledConnector, SyncError> {
        let target = self.connector(digest).await?;
        if !approve && let Some((active, more)) = self.escalation(&target).await? {
            return Err(SyncError::NeedsApproval {
                connector: format!("{} {}", target.name, target.version),
                active,
                digest: target.digest.clone(),
                more: Box::new(more),
            });
        }
        self.preflight(&target, approve).await?;
        self.storage
            .activate_connector(&target.digest, now_ms())
            .await?;
        self.reload_listening().await?;
        self.connector(&target.digest).await
    }

    /// Make the version that was active before the current one active
    /// again, as safely as an activation.
    pub async fn rollback_connector(&self, name: &str) -> Result<InstalledConnector, SyncError> {
        let digest = self
            .storage
            .rollback_connector(name, now_ms())
            .await?
            .ok_or_else(|| {
                SyncError::NotFound(format!(
                    "connector {name:?} has no earlier version to roll back to"
                ))
            })?;
        self.reload_listening().await?;
        self.connector(&digest).await
    }

    /// Remove an installed component that is not active.
    pub async fn remove_connector(&self, digest: &str) -> Result<InstalledConnector, SyncError> {
        let target = self.connector(digest).await?;
        if target.active {
            return Err(SyncError::Connector {
                name: format!("{} {}", target.name, target.version),
                reason: "is the active version and backends may be using it; activate another version (or roll back) first".into(),
            });
        }
        self.storage.remove_connector(&target.digest).await?;
        self.units
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&target.digest);
        Ok(target)
    }

    /// What `target` requests beyond the active version of its connector
    /// (`None`: nothing more, or no version is active yet), with that
    /// version's name.
    pub async fn escalation(
        &self,
        target: &InstalledConnector,
    ) -> Result<Option<(String, crate::grants::Requests)>, SyncError> {
        let installed = self.installed().await?;
        let Some((_, target_manifest)) = installed.iter().find(|(c, _)| c.digest == target.digest)
        else {
            return Ok(None);
        };
        let Some((active, active_manifest)) = installed
            .iter()
            .find(|(c, _)| c.active && c.name == target.name && c.digest != target.digest)
        else {
            return Ok(None);
        };
        let more = crate::grants::Requests::of(target_manifest)
            .beyond(&crate::grants::Requests::of(active_manifest));
        Ok((!more.is_empty()).then(|| (format!("{} {}", active.name, active.version), more)))
    }

    /// Before `target` becomes active: every configured backend must still
    /// resolve, and each one it would serve as adapter must pass `check`.
    /// Refuse an activation that would break a configured backend, or —
    /// unless `approve` — give a backend's credential and data to a
    /// component that requests more than the units serving it now (another
    /// connector that would take the backend over included).
    async fn preflight(&self, target: &InstalledConnector, approve: bool) -> Result<(), SyncError> {
        let installed = self.installed().await?;
        let refuse = |reason: String| SyncError::Refused {
            connector: format!("{} {}", target.name, target.version),
            reason,
        };
        let after: Vec<(Candidate, Manifest)> = installed
            .iter()
            .filter(|(c, _)| c.name != target.name || c.digest == target.digest)
            .map(|(c, m)| {
                let mut c = c.clone();
                c.active = c.active || c.digest == target.digest;
                (c, m.clone())
            })
            .collect();
        for config in self.backend_configs().await? {
            let before = self.resolve_among(config.clone(), &installed).await;
            let now = self.resolve_among(config.clone(), &after).await;
            match (before, now) {
                (Ok(_), Err(e)) => {
                    return Err(refuse(format!(
                        "backend {:?} would be left without a unit: {e}",
                        config.name
                    )));
                }
                (Ok(was), Ok(units))
                    if !approve
                        && (was.adapter_labels() != units.adapter_labels()
                            || was.mapper_labels() != units.mapper_labels())
                        && !units.requests.beyond(&was.requests).is_empty() =>
                {
                    return Err(SyncError::NeedsApproval {
                        connector: format!("{} {}", target.name, target.version),
                        active: format!("{} of backend {:?}", was.adapter_labels(), config.name),
                        digest: target.digest.clone(),
                        more: Box::new(units.requests.beyond(&was.requests)),
                    });
                }
                (_, Ok(units)) => {
                    let target_adapter = units
                        .adapters
                        .iter()
                        .find(|a| a.unit.digest() == target.digest);
                    if let Some(a) = target_adapter {
                        let report = a.unit.check(&units.ctx, &units.ctx.settings).await;
                        if let Err(e) = report.into_result() {
                            return Err(refuse(format!(
                                "its check against backend {:?} failed: {e}",
                                config.name
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Forget resolved backends and resolve them again now, so that
    /// listeners follow the active versions.
    async fn reload_listening(&self) -> Result<(), SyncError> {
        // Read before resolving: a change landing meanwhile is newer than
        // what is recorded, so the watcher resolves once more.
        let generation = self.storage.registry_generation().await?;
        self.reload();
        for (backend, e) in self.resolve_all().await? {
            tracing::warn!(backend, error = %e, "backend not ready");
        }
        self.resolved_generation
            .store(generation, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// `check` a configured backend with every adapter serving it; their
    /// lines and labels (joined by `; ` and `, `).
    pub async fn check_backend(&self, name: &str) -> Result<(String, String), SyncError> {
        let units = self.backend(name).await?;
        let mut lines = Vec::new();
        for a in &units.adapters {
            let line = a
                .unit
                .check(&units.ctx, &units.ctx.settings)
                .await
                .into_result()
                .map_err(|e| SyncError::Connector {
                    name: a.label.clone(),
                    reason: format!("check against backend {name:?} failed: {e}"),
                })?;
            lines.push(line);
        }
        Ok((lines.join("; "), units.adapter_labels()))
    }

    /// Store a backend's configuration (validated) and resolve its units,
    /// so that a configuration no installed connector serves is refused
    /// with the candidates listed.
    pub async fn configure(&self, config: &BackendConfig) -> Result<Arc<BackendUnits>, SyncError> {
        config.validate()?;
        let units = self.resolve(config.clone()).await?;
        self.put_backend(config).await?;
        self.activate(units.clone());
        Ok(units)
    }

    async fn put_backend(&self, config: &BackendConfig) -> Result<(), SyncError> {
        // Credentials never reach the database in clear.
        let sealed = config.sealed(&self.secret_key);
        let text = serde_json::to_string(&sealed).map_err(|e| SyncError::StoredBackend {
            name: config.name.clone(),
            reason: e.to_string(),
        })?;
        self.storage
            .put_backend(&config.name, &config.kind, &config.version, &text, now_ms())
            .await?;
        Ok(())
    }

    /// Store a backend's configuration (validated) even if no installed
    /// connector serves it yet (a service starting from its config file
    /// before connectors are installed); what keeps it from resolving is
    /// returned, for the operator.
    pub async fn store_backend(
        &self,
        config: &BackendConfig,
    ) -> Result<Option<SyncError>, SyncError> {
        config.validate()?;
        self.put_backend(config).await?;
        // Only this backend's resolution is stale; the others stay cached.
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&config.name);
        let failed = self.backend(&config.name).await.err();
        if failed.is_some() {
            self.listen_unresolved(
                &config.name,
                Some(&(config.grants.clone(), config.jobs.clone())),
            );
        }
        Ok(failed)
    }

    /// Remove a configured backend: its configuration goes (and with
    /// `how.purge` its bindings and state), its listener stops here at
    /// once and on other nodes when they next follow the registry. Refused
    /// while it has unfinished jobs unless `how.cancel_jobs`.
    pub async fn remove_backend(
        &self,
        name: &str,
        how: crate::storage::RemoveBackend,
    ) -> Result<crate::storage::RemovedBackend, SyncError> {
        let removed = self
            .storage
            .remove_backend(name, how, now_ms())
            .await?
            .ok_or_else(|| {
                SyncError::NotFound(format!(
                    "backend {name:?} is not configured; `junction backend list` shows the configured ones"
                ))
            })?;
        self.reload_listening().await?;
        Ok(removed)
    }

    /// Forget resolved backends, so that the next job resolves them again
    /// against the installed connectors and stored configurations.
    pub fn reload(&self) {
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The installed components, as registry candidates with their
    /// manifests.
    async fn installed(&self) -> Result<Vec<(Candidate, Manifest)>, SyncError> {
        let mut out = Vec::new();
        for c in self.storage.connectors().await? {
            let manifest: Manifest =
                serde_json::from_str(&c.manifest).map_err(|e| SyncError::Connector {
                    name: format!("{} {}", c.name, c.version),
                    reason: format!("its stored manifest is unreadable: {e}"),
                })?;
            let (adapter, mapper) = roles(&manifest);
            let candidate = Candidate {
                active: c.active,
                digest: c.digest,
                name: c.name,
                version: c.version,
                backend_kind: c.backend_kind,
                backend_versions: c.backend_versions,
                adapter,
                mapper,
                models: manifest.models.iter().map(|m| m.name.clone()).collect(),
            };
            out.push((candidate, manifest));
        }
        Ok(out)
    }

    async fn unit(&self, digest: &str) -> Result<Unit, SyncError> {
        if let Some(u) = self
            .units
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            return Ok(u.clone());
        }
        let bytes = self
            .storage
            .connector_component(digest)
            .await?
            .ok_or_else(|| SyncError::Connector {
                name: digest.to_string(),
                reason: "was removed while in use".into(),
            })?;
        let unit = self.host.load(&bytes).await?;
        self.units
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), unit.clone());
        Ok(unit)
    }

    /// The configured backends.
    pub async fn backend_configs(&self) -> Result<Vec<BackendConfig>, SyncError> {
        self.storage
            .backends()
            .await?
            .into_iter()
            .map(|b| parse_backend(b, &self.secret_key))
            .collect()
    }

    /// Resolve every configured backend not resolved yet (registering its
    /// listener); the backends that could not be resolved, with the reason.
    pub async fn resolve_all(&self) -> Result<Vec<(String, SyncError)>, StorageError> {
        let mut failed = Vec::new();
        let stored = self.storage.backends().await?;
        // A backend removed (here or on another node) stops listening.
        self.listening
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| {
                let keep = stored.iter().any(|b| &b.name == name);
                if !keep {
                    self.bus.set_listener(&format!("backend:{name}"), None);
                    self.queue.notify.set(&format!("backend:{name}"), None);
                }
                keep
            });
        for stored in stored {
            if self.cached(&stored.name).is_some() {
                continue;
            }
            let name = stored.name.clone();
            let mut placement = None;
            let resolved = match parse_backend(stored, &self.secret_key) {
                Ok(config) => {
                    placement = Some((config.grants.clone(), config.jobs.clone()));
                    self.resolve(config).await
                }
                Err(e) => Err(e),
            };
            match resolved {
                Ok(units) => self.activate(units),
                Err(e) => {
                    self.listen_unresolved(&name, placement.as_ref());
                    failed.push((name, e));
                }
            }
        }
        Ok(failed)
    }

    /// A backend that cannot be resolved still hears every event (but its
    /// own): each becomes a delivery job that waits until the backend can
    /// be resolved, and then decides with its listener's own patterns, so
    /// no event is lost for it meanwhile.
    fn listen_unresolved(
        &self,
        name: &str,
        placement: Option<&(crate::grants::GrantConfig, crate::grants::JobPlacement)>,
    ) {
        let grants = match placement {
            Some((config, jobs)) => {
                crate::grants::Grants::new(name, &crate::grants::Requests::default(), config, jobs)
            }
            None => crate::grants::Grants::unrestricted(name),
        };
        let listener = Arc::new(deliver::UnresolvedListener {
            backend: name.to_string(),
            grants,
        });
        self.bus
            .set_listener(&format!("backend:{name}"), Some(listener));
        self.listening
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Some(deliver::UNRESOLVED.to_string()));
    }

    fn cached(&self, name: &str) -> Option<Arc<BackendUnits>> {
        self.backends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// A backend's units, resolved through the registry.
    pub async fn backend(&self, name: &str) -> Result<Arc<BackendUnits>, SyncError> {
        if let Some(b) = self.cached(name) {
            return Ok(b);
        }
        let config = self
            .backend_configs()
            .await?
            .into_iter()
            .find(|b| b.name == name)
            .ok_or_else(|| SyncError::UnknownBackend(name.to_string()))?;
        let units = self.resolve(config).await?;
        self.activate(units.clone());
        Ok(units)
    }

    /// Pick and load a backend's units; no side effects, so that a
    /// configuration nothing serves is refused before anything changes.
    async fn resolve(&self, config: BackendConfig) -> Result<Arc<BackendUnits>, SyncError> {
        let installed = self.installed().await?;
        self.resolve_among(config, &installed).await
    }

    /// Resolve among the active ones of `installed`.
    async fn resolve_among(
        &self,
        config: BackendConfig,
        installed: &[(Candidate, Manifest)],
    ) -> Result<Arc<BackendUnits>, SyncError> {
        let candidates: Vec<Candidate> = installed
            .iter()
            .filter(|(c, _)| c.active)
            .map(|(c, _)| c.clone())
            .collect();
        let (kind, version) = (&config.kind, &config.version);
        let manifest = |digest: &str| {
            installed
                .iter()
                .find(|(c, _)| c.digest == digest)
                .map(|(_, m)| m)
        };
        // Every model some fitting adapter claims, connectors by name and
        // each in its manifest's order; each gets its own adapter and mapper.
        let mut models: Vec<&str> = Vec::new();
        for a in crate::registry::fitting(&candidates, UnitRole::Adapter, kind, version)? {
            for m in &a.models {
                if !models.contains(&m.as_str()) {
                    models.push(m);
                }
            }
        }
        let mut picked: Vec<(&str, &Candidate, &Candidate)> = Vec::new();
        for model in &models {
            let a = pick(&candidates, UnitRole::Adapter, kind, version, Some(model))?;
            match pick(&candidates, UnitRole::Mapper, kind, version, Some(model)) {
                Ok(m) => picked.push((model, a, m)),
                // An adapter's model without a mapper is not served; a tie
                // is the operator's to settle.
                Err(RegistryError::NoMatch { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // A lone connector also serves what its manifest does not list.
        let default = match (
            pick(&candidates, UnitRole::Adapter, kind, version, None),
            pick(&candidates, UnitRole::Mapper, kind, version, None),
        ) {
            (Ok(a), Ok(m)) => Ok((a, m)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let default = match default {
            Ok(pair) => Some(pair),
            // Nothing serves the backend at all: the backend-wide reason
            // lists every candidate of the kind.
            Err(e) if picked.is_empty() => return Err(e.into()),
            Err(_) => None,
        };
        let label = |c: &Candidate| format!("{} {}", c.name, c.version);
        let route_of = async |a: &Candidate, m: &Candidate| -> Result<Route, SyncError> {
            Ok(Route {
                adapter: self.unit(&a.digest).await?,
                adapter_label: label(a),
                mapper: Arc::new(self.unit(&m.digest).await?),
                mapper_label: label(m),
                mapper_digest: m.digest.clone(),
            })
        };
        let mut routes = std::collections::BTreeMap::new();
        let mut used: Vec<&Candidate> = Vec::new();
        for (model, a, m) in &picked {
            routes.insert(model.to_string(), route_of(a, m).await?);
            used.extend([*a, *m]);
        }
        let fallback = match default {
            Some((a, m)) => {
                used.extend([a, m]);
                Some(route_of(a, m).await?)
            }
            None => None,
        };
        // The connector's grant is what its components' manifests request
        // (every unit in use together), narrowed by the backend's config.
        let mut requests = crate::grants::Requests::default();
        let mut adapters: Vec<BackendAdapter> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in used {
            if !seen.insert(c.digest.as_str()) {
                continue;
            }
            let Some(manifest) = manifest(&c.digest) else {
                continue;
            };
            requests.extend(&crate::grants::Requests::of(manifest));
            let serving = routes
                .values()
                .chain(fallback.as_ref())
                .find(|r| r.adapter.digest() == c.digest);
            if let Some(route) = serving {
                let unit = route.adapter.clone();
                // An adapter's component is a connector that knows the
                // backend; its listener (if any) turns local events into
                // exports.
                let listens = if unit.exports().listener {
                    manifest.events.clone()
                } else {
                    Vec::new()
                };
                adapters.push(BackendAdapter {
                    unit,
                    label: label(c),
                    listens,
                });
            }
        }
        let ctx = config.context(self.services.clone(), &requests, &self.pools)?;
        let mut listens: Vec<String> = Vec::new();
        for p in adapters.iter().flat_map(|a| &a.listens) {
            if !listens.contains(p) {
                listens.push(p.clone());
            }
        }
        let importable: Vec<String> = models
            .iter()
            .filter(|model| {
                let route = routes.get(**model).or(fallback.as_ref());
                route
                    .and_then(|r| manifest(&r.mapper_digest))
                    .is_some_and(|m| {
                        m.models.iter().any(|x| {
                            x.name == **model && x.operations.iter().any(|o| o == "import")
                        })
                    })
            })
            .map(|m| m.to_string())
            .collect();
        Ok(Arc::new(BackendUnits {
            importable,
            requests,
            routes,
            fallback,
            adapters,
            listens,
            config,
            ctx,
        }))
    }

    /// Put resolved units to use: cache them and make the adapter
    /// component's listener the backend's listener (replacing the one of
    /// a version no longer active; an event being handled finishes on it).
    fn activate(&self, units: Arc<BackendUnits>) {
        let name = units.name().to_string();
        let listener_unit = units.adapters.iter().find(|a| !a.listens.is_empty());
        let listening = listener_unit.map(|a| a.unit.digest().to_string());
        let mut current = self.listening.write().unwrap_or_else(|p| p.into_inner());
        // Replaced whenever the backend is resolved again, not only when its
        // component changes: a reconfigured backend's listener must run
        // with the new settings and grants.
        if listening.is_some() || current.get(&name).is_some_and(Option::is_some) {
            let listener = listener_unit.map(|a| {
                Arc::new(GuestListener {
                    backend: name.clone(),
                    unit: a.unit.clone(),
                    ctx: units.ctx.clone(),
                    patterns: units.listens.clone(),
                }) as Arc<dyn crate::events::Listener>
            });
            self.bus.set_listener(&format!("backend:{name}"), listener);
            current.insert(name.clone(), listening);
        }
        drop(current);
        self.queue
            .set_backend_workers(&name, units.config.jobs.workers);
        self.queue.breakers.set_config(&name, units.config.breaker);
        self.queue
            .notify
            .set(&format!("backend:{name}"), units.config.notify.clone());
        // Validated when the backend was configured.
        self.queue
            .set_backend_retry(&name, units.config.retry_policy().ok().flatten());
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, units);
    }

    /// Use `mapper` for `backend` until the next [`Synchronizer::reload`]
    /// (the sync benchmark's native baseline).
    pub async fn replace_mapper(
        &self,
        backend: &str,
        mapper: Arc<dyn MapperUnit>,
        label: &str,
    ) -> Result<(), SyncError> {
        let b = self.backend(backend).await?;
        let swap = |r: &Route| Route {
            mapper: mapper.clone(),
            mapper_label: label.to_string(),
            ..r.clone()
        };
        let replaced = Arc::new(BackendUnits {
            config: b.config.clone(),
            ctx: b.ctx.clone(),
            routes: b.routes.iter().map(|(m, r)| (m.clone(), swap(r))).collect(),
            fallback: b.fallback.as_ref().map(swap),
            adapters: b.adapters.clone(),
            listens: b.listens.clone(),
            importable: b.importable.clone(),
            requests: b.requests.clone(),
        });
        self.backends
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(backend.to_string(), replaced);
        Ok(())
    }

    /// Register the sync job functions on a worker pool.
    pub fn register(self: &Arc<Self>, pool: &mut WorkerPool) {
        for function in [
            IMPORT_RECORD,
            IMPORT_BATCH,
            EXPORT_RECORD,
            DELETE_REMOTE,
            DELETE_LOCAL,
            DELIVER,
            RECONCILE,
            TASK,
        ] {
            pool.register(
                function,
                Arc::new(SyncHandler {
                    sync: self.clone(),
                    function,
                }),
            );
        }
        pool.register(
            crate::queue::breaker::PROBE,
            Arc::new(probe::ProbeHandler { sync: self.clone() }),
        );
    }

    /// Take the lease `key` for this job, or fail with a retry that does
    /// not count as a try: another worker is syncing the same thing.
    pub(crate) async fn lock(&self, key: &str, holder: &str) -> Result<(), JobFailure> {
        let now = now_ms();
        let until = now + self.settings.lease.as_millis() as i64;
        match self
            .commit
            .lock(vec![key.to_string()], holder, now, until)
            .await
            .map(|v| v.first().copied().unwrap_or(false))
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobFailure::Retry {
                after: Some(Duration::from_millis(500)),
                count_try: false,
                kind: "locked".into(),
                message: format!("{key} is being synced by another worker"),
            }),
            Err(e) => Err(storage_failure(e)),
        }
    }

    pub(crate) async fn unlock(&self, key: &str, holder: &str) {
        if let Err(e) = self.commit.unlock(vec![key.to_string()], holder).await {
            // The lease expires on its own; only its holder's speed suffers.
            tracing::warn!(key, error = %e, "could not release a sync lease");
        }
    }

    /// Run `work` under the lease `key` and give the lease back however it
    /// ended. `work` is built by the caller but starts only once the lease
    /// is held.
    pub(crate) async fn leased<T>(
        &self,
        key: &str,
        holder: &str,
        work: impl Future<Output = Result<T, JobFailure>>,
    ) -> Result<T, JobFailure> {
        self.lock(key, holder).await?;
        let result = work.await;
        self.unlock(key, holder).await;
        result
    }
}

/// A stored configuration read back, its credential opened with `key`.
fn parse_backend(stored: StoredBackend, key: &SecretKey) -> Result<BackendConfig, SyncError> {
    let config: BackendConfig =
        serde_json::from_str(&stored.config).map_err(|e| SyncError::StoredBackend {
            name: stored.name.clone(),
            reason: e.to_string(),
        })?;
    config.opened(key).map_err(|e| SyncError::StoredBackend {
        name: stored.name,
        reason: e.to_string(),
    })
}

/// A storage failure inside a flow: transient unless it is a conflict.
pub(crate) fn storage_failure(e: StorageError) -> JobFailure {
    match e {
        StorageError::VersionConflict { .. } => JobFailure::Retry {
            after: Some(Duration::from_millis(200)),
            count_try: false,
            kind: "conflict".into(),
            message: e.to_string(),
        },
        StorageError::Rejected(m) => JobFailure::fail("rejected", m),
        other => JobFailure::retry("storage", other.to_string()),
    }
}

/// The arguments every sync job carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    /// Must match the job's backend when both are given: the job's (set
    /// by the host) is the one a flow runs for.
    #[serde(default)]
    backend: Option<String>,
    /// Every function but a task's names one (checked in `run_flow`).
    #[serde(default)]
    model: String,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    local_id: Option<String>,
    #[serde(default)]
    force: bool,
    /// Export: the changed local fields (`None` maps all).
    #[serde(default)]
    fields: Option<Vec<String>>,
    /// Batch: import in this job instead of one job per record.
    #[serde(default)]
    direct: bool,
    /// Batch: search from this RFC 3339 time instead of the cursor.
    #[serde(default)]
    since: Option<String>,
    /// Delivery: the outbox event the listener hears.
    #[serde(default)]
    event: Option<i64>,
    /// Reconcile: delete even above the backend's share limit.
    #[serde(default)]
    confirm: bool,
    /// Delete-local: only if the backend answers not-found for it now.
    #[serde(default)]
    verify: bool,
    /// Task: the connector's task to run.
    #[serde(default)]
    task: Option<String>,
    /// Task: its arguments (a JSON object; none is `{}`).
    #[serde(default)]
    args: Option<serde_json::Value>,
}

/// The units serving `model` of backend `b`; a job for a model no unit
/// claims fails naming the backend's models.
pub(crate) fn route<'a>(b: &'a BackendUnits, model: &str) -> Result<&'a Route, JobFailure> {
    b.route(model)
        .map_err(|e| JobFailure::fail("config", e.to_string()))
}

fn required<'a>(
    value: &'a Option<String>,
    field: &str,
    function: &str,
) -> Result<&'a str, JobFailure> {
    value.as_deref().ok_or_else(|| {
        JobFailure::fail(
            "bad-arguments",
            format!("{function} needs \"{field}\" in its arguments"),
        )
    })
}

struct SyncHandler {
    sync: Arc<Synchronizer>,
    function: &'static str,
}

impl SyncHandler {
    async fn run_flow(&self, job: &Job, trail: &mut Trail) -> Result<String, JobFailure> {
        let args: Args = serde_json::from_str(&job.args).map_err(|e| {
            JobFailure::fail(
                "bad-arguments",
                format!("{} arguments are invalid: {e}", self.function),
            )
        })?;
        if args.model.is_empty() && self.function != TASK && self.function != DELIVER {
            return Err(JobFailure::fail(
                "bad-arguments",
                format!("{} needs \"model\" in its arguments", self.function),
            ));
        }
        let name = match (&job.backend, &args.backend) {
            (Some(job_backend), Some(named)) if job_backend != named => {
                return Err(JobFailure::fail(
                    "bad-arguments",
                    format!(
                        "{} runs for backend {job_backend:?} but its arguments name backend {named:?}; \
                 a job acts only for the backend it was enqueued for",
                        self.function
                    ),
                ));
            }
            (Some(b), _) | (None, Some(b)) => b.clone(),
            (None, None) => {
                return Err(JobFailure::fail(
                    "bad-arguments",
                    format!(
                        "{} needs a backend (the job's, or \"backend\" in its arguments)",
                        self.function
                    ),
                ));
            }
        };
        let backend = self.sync.backend(&name).await.map_err(|e| match e {
            SyncError::Storage(e) => storage_failure(e),
            // Configured but not servable now (no connector serves it, its
            // component does not load, its configuration does not parse):
            // the operator can fix that, so its jobs wait without spending
            // tries, instead of failing while the fix is on its way.
            e @ (SyncError::Registry(_)
            | SyncError::Load(_)
            | SyncError::Connector { .. }
            | SyncError::Backend(_)
            | SyncError::StoredBackend { .. }) => JobFailure::Retry {
                after: Some(unresolved_wait(now_ms() - job.created_at)),
                count_try: false,
                kind: "unresolved".to_string(),
                message: format!(
                    "backend {name:?} cannot be resolved: {e}; its jobs wait until it can \
                     (install or activate a connector serving it, or fix its configuration), \
                     or cancel them"
                ),
            },
            other => JobFailure::fail("config", other.to_string()),
        })?;
        // The adapter serving the job's model (the one that talks to the
        // backend), for the job's record.
        trail.digest = backend
            .route(&args.model)
            .map(|r| r.adapter.digest().to_string())
            .ok()
            .or_else(|| {
                backend
                    .adapters
                    .first()
                    .map(|a| a.unit.digest().to_string())
            });
        // Leases named after the job lapse when the job stops running,
        // even if this node dies holding them.
        // One token per attempt: a later attempt takes over what an
        // attempt that died left leased; this attempt's concurrent parts
        // never take each other's leases.
        let holder = format!(
            "job-{}.{:08x}:{}",
            job.id,
            rand::random::<u32>(),
            self.sync.node
        );
        let s = &self.sync;
        match self.function {
            IMPORT_RECORD => {
                let id = required(&args.external_id, "external_id", self.function)?;
                let outcome = s
                    .import_record(&backend, &args.model, id, args.force, &holder, trail)
                    .await?;
                Ok(outcome.to_string())
            }
            IMPORT_BATCH => {
                let report = s
                    .import_batch(
                        &backend,
                        &args.model,
                        batch::BatchRun {
                            direct: args.direct,
                            force: args.force,
                            since: args.since.as_deref(),
                        },
                        &holder,
                        trail,
                    )
                    .await?;
                Ok(report.to_string())
            }
            EXPORT_RECORD => {
                let id = required(&args.local_id, "local_id", self.function)?;
                s.export_record(
                    &backend,
                    &args.model,
                    id,
                    args.fields.as_deref(),
                    &holder,
                    trail,
                )
                .await
            }
            DELETE_REMOTE => {
                let id = required(&args.local_id, "local_id", self.function)?;
                s.delete_remote(&backend, &args.model, id, &holder, trail)
                    .await
            }
            DELETE_LOCAL => {
                let id = required(&args.external_id, "external_id", self.function)?;
                s.delete_local(&backend, &args.model, id, args.verify, &holder, trail)
                    .await
            }
            RECONCILE => {
                s.reconcile(&backend, &args.model, args.confirm, &holder, trail)
                    .await
            }
            TASK => {
                let task = required(&args.task, "task", self.function)?;
                let task_args = args.args.clone().unwrap_or_else(|| serde_json::json!({}));
                s.run_task(&backend, task, &task_args, trail).await
            }
            DELIVER => {
                let event = args.event.ok_or_else(|| {
                    JobFailure::fail(
                        "bad-arguments",
                        format!("{DELIVER} needs \"event\" in its arguments"),
                    )
                })?;
                s.deliver(&backend, event, trail).await
            }
            other => Err(JobFailure::fail(
                "bad-function",
                format!("{other} is not a sync function"),
            )),
        }
    }
}

#[async_trait]
impl Handler for SyncHandler {
    async fn run(&self, job: &Job) -> Handled {
        let mut trail = Trail::default();
        let result = self.run_flow(job, &mut trail).await;
        trail.into_handled(result)
    }
}
