//! The synchronizer: OCA's Importer, BatchImporter, Exporter and Deleter,
//! run by the host for every connector. A connector supplies only adapter
//! and mapper units; locking, binding, dependencies, cursors, retries and
//! the "no export back" marker come from here.
//!
//! This file holds the [`Synchronizer`] itself (its state, settings and
//! errors, the per-record leases); the rest is one concern per module:
//! - `lifecycle`: installing, activating, rolling back and removing
//!   connector components.
//! - `resolve`: backend configurations and their resolution to units
//!   through the [`registry`](crate::registry), cached until
//!   [`Synchronizer::reload`]; `units` is what a backend resolves to.
//! - `handler`: the job handler behind every sync function, registered on
//!   a worker pool by [`Synchronizer::register`].
//! - [`import`], [`batch`], [`export`]: the flows, one per job function
//!   (`junction.import-record`, `junction.import-batch`,
//!   `junction.export-record`, `junction.delete-remote`,
//!   `junction.delete-local`).
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
mod handler;
pub mod import;
mod lifecycle;
mod probe;
pub mod reconcile;
mod resolve;
pub mod schedule;
pub mod task;
pub mod trail;
mod units;
mod watch;
pub mod webhook;

pub(crate) use handler::{route, storage_failure};
pub use units::{BackendAdapter, BackendUnits, MapperUnit, Route};

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::backend::BackendConfigError;
use crate::capabilities::Services;
use crate::capabilities::stored::StoredServices;
use crate::events::EventBus;
use crate::host::{Host, LoadError, Unit};
use crate::queue::worker::JobFailure;
use crate::queue::{Queue, now_ms};
use crate::registry::RegistryError;
use crate::secrets::SecretKey;
use crate::storage::{Storage, StorageError};

/// No registry generation seen yet.
const NOT_YET: i64 = i64::MIN;

pub use crate::model::functions::{
    DELETE_LOCAL, DELETE_REMOTE, EXPORT_RECORD, IMPORT_BATCH, IMPORT_RECORD,
};
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
