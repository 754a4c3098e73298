//! Storage: the one place that knows SQL.
//!
//! [`Storage`] is the boundary the rest of the runtime uses. [`sql`]
//! implements it once, generic over a [`sql::Dialect`] that holds only
//! what the databases really do differently; [`sqlite`] (an embedded file,
//! the default) and [`postgres`] (several nodes on one database) are the
//! two dialects. One conformance suite (`runtime/tests/it/storage/`),
//! written against the trait, runs on both. Migrations are embedded in
//! the binary and applied on open.

pub mod copy;
mod migrate;
pub mod postgres;
mod put;
mod rows;
pub mod sql;
pub mod sqlite;
pub mod types;

use async_trait::async_trait;

use crate::model::{Event, LocalRecord};
use crate::storage::types::{
    Acted, Completion, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine,
    JobState, NewJob,
};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the database at {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("database migration {version} ({name}) failed: {reason}")]
    Migration {
        version: i64,
        name: &'static str,
        reason: String,
    },
    #[error(
        "the database schema is at version {found}, newer than this junction ({supported}); upgrade junction"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("job {0} does not exist")]
    NoSuchJob(JobId),
    #[error("job {id} is {state}; {action} needs a job that is {expected}")]
    WrongState {
        id: JobId,
        state: JobState,
        action: &'static str,
        expected: &'static str,
    },
    #[error("job {child} depends on {parent}, which does not exist")]
    MissingParent { child: usize, parent: JobId },
    #[error("record {model} {id} is at version {found}, not {expected}; read it again and retry")]
    VersionConflict {
        model: String,
        id: String,
        expected: u64,
        found: u64,
    },
    #[error("{0}")]
    Rejected(String),
    /// The backend still has unfinished jobs (their count).
    #[error(
        "backend {backend:?} has {jobs} unfinished jobs; wait for them, or remove it with its jobs cancelled \
         (`junction backend remove {backend} --cancel-jobs`)"
    )]
    BackendBusy { backend: String, jobs: u64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a claim asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub node: String,
    pub worker: String,
    pub now: i64,
    pub lease_until: i64,
    /// At most this many jobs.
    pub limit: u32,
    /// Configured channels that are full: no job in them or under them.
    pub full_channels: Vec<String>,
    /// Sequential channels: skipped while they hold a failed job.
    pub sequential_channels: Vec<String>,
    /// Capacities that hold across every node on the database (configured
    /// channels below root): a claim takes no job that would put more jobs
    /// in such a channel, or under it, than its capacity.
    pub shared_limits: Vec<(String, u32)>,
    /// Backends that hold their share of this node's claims: no job of
    /// theirs (jobs of no backend are always eligible).
    pub held_backends: Vec<String>,
}

/// Which of `candidates` (id, channel; in run order) a claim may take,
/// given the jobs running in each channel on all nodes and the shared
/// limits. Shared by the implementations, which call it inside the
/// transaction that claims.
pub(crate) fn admit(
    candidates: &[(JobId, String)],
    running: &[(String, i64)],
    limits: &[(String, u32)],
) -> Vec<JobId> {
    let under = |channel: &str, limit: &str| {
        channel == limit
            || channel
                .strip_prefix(limit)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    let mut used: Vec<i64> = limits
        .iter()
        .map(|(limit, _)| {
            running
                .iter()
                .filter(|(c, _)| under(c, limit))
                .map(|(_, n)| n)
                .sum()
        })
        .collect();
    let mut out = Vec::new();
    for (id, channel) in candidates {
        let applies: Vec<usize> = (0..limits.len())
            .filter(|i| under(channel, &limits[*i].0))
            .collect();
        if applies.iter().all(|i| used[*i] < i64::from(limits[*i].1)) {
            for i in applies {
                used[i] += 1;
            }
            out.push(*id);
        }
    }
    out
}

/// How many jobs are in each state and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub state: JobState,
    pub channel: String,
    pub count: i64,
}

/// A change to a local record, as the synchronizer or an operator makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    pub model: String,
    pub id: String,
    /// A JSON object, as text.
    pub data: String,
    /// Refuse the write unless the record is at this version (0 = must not
    /// exist yet); `None` writes whatever is there.
    pub expected_version: Option<u64>,
    /// The backend an import came from, so its listeners do not export the
    /// change straight back to it.
    pub origin_backend: Option<String>,
    /// Bind the record to its external id in the same transaction (an
    /// import), even when the data did not change.
    pub bind: Option<BindWrite>,
    /// Replace the record's natural keys (checked by
    /// `features::check_keys`) in the same transaction, even when the data
    /// did not change; `None` leaves them.
    pub keys: Option<Vec<crate::features::MatchKey>>,
}

/// The binding an import writes with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindWrite {
    pub backend: String,
    pub external_id: String,
    /// When the record was read from the backend (Unix ms).
    pub sync_date: i64,
    /// The mapped values as synced (a JSON object); `None` keeps the last.
    pub synced: Option<String>,
}

/// An external id ↔ local id pair and when it was last synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub backend: String,
    pub model: String,
    pub external_id: String,
    pub local_id: String,
    /// Unix ms.
    pub sync_date: i64,
    /// The mapped values as last synced (a JSON object), if recorded.
    pub synced: Option<String>,
}

/// A connector component installed in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledConnector {
    pub digest: String,
    pub name: String,
    pub version: String,
    pub backend_kind: String,
    pub backend_versions: String,
    /// The manifest as JSON.
    pub manifest: String,
    pub installed_at: i64,
    /// The version of its connector (by name) that new calls use.
    pub active: bool,
}

/// A node of the database's node registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub name: String,
    pub version: String,
    pub host: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Set by a clean stop.
    pub stopped_at: Option<i64>,
    /// Jobs it holds now (claimed or running).
    pub running: i64,
}

/// An open circuit breaker: the backend's jobs wait until a probe after
/// `retry_at` succeeds (see `queue::breaker`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenBreaker {
    pub backend: String,
    /// Consecutive outage failures that opened it.
    pub failures: i64,
    /// The last failure's description (the outbound request that failed).
    pub reason: String,
    pub opened_at: i64,
    /// When the next probe may run.
    pub retry_at: i64,
    /// Milliseconds between probes now; doubles after each failed probe.
    pub cool_down: i64,
    /// Probes that failed since it opened.
    pub probes: i64,
}

/// A backend's configuration as stored (JSON of `BackendConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBackend {
    pub name: String,
    pub config: String,
    pub updated_at: i64,
}

/// How [`Storage::remove_backend`] treats what the backend leaves behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveBackend {
    /// Cancel its unfinished jobs (and the jobs depending on them) instead
    /// of refusing.
    pub cancel_jobs: bool,
    /// Delete its bindings and state too. Kept otherwise, so that a
    /// backend added again under the same name binds to the same records
    /// instead of duplicating them.
    pub purge: bool,
}

/// What [`Storage::remove_backend`] removed besides the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovedBackend {
    pub cancelled_jobs: u64,
    pub bindings: u64,
    pub state_keys: u64,
}

/// One write of a [`Storage::write_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Lock {
        keys: Vec<String>,
        holder: String,
        now: i64,
        until: i64,
    },
    Unlock {
        keys: Vec<String>,
        holder: String,
    },
    Put {
        writes: Vec<RecordWrite>,
        now: i64,
    },
}

/// What one [`WriteOp`] did, as its own method would have answered.
#[derive(Debug)]
pub enum WriteDone {
    Locked(Vec<bool>),
    Unlocked,
    Put(Vec<PutOutcome>),
}

/// What one write of [`Storage::put_records`] did: the stored record and
/// its event, `None` when nothing changed, or why it was refused.
pub type PutOutcome = Result<Option<(LocalRecord, StoredEvent)>, StorageError>;

/// An event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub event: Event,
    pub created_at: i64,
}

/// The storage boundary. Every method is one transaction.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Store a batch of jobs, all or none. A job whose identity key matches
    /// a live job (waiting, pending or enqueued) is not stored; its entry
    /// says so and carries the live job's id.
    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<Vec<Enqueued>, StorageError>;
    /// Wake-ups when another process may have made jobs due (enqueued,
    /// released, retried), for databases that can push them; `None` means
    /// poll. A burst arrives as one wake-up.
    async fn wakeups(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        None
    }

    /// Ready candidates for a claim (pending, eta passed, channel not full),
    /// in run order: priority, then eta, then id. `claim` takes them.
    async fn candidates(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<(JobId, String)>, StorageError>;

    /// Claim these pending jobs for `request.node` under a lease (state
    /// `enqueued`); returns the ones that were still pending (another node
    /// may have taken some).
    async fn claim(&self, ids: &[JobId], request: &ClaimRequest) -> Result<Vec<Job>, StorageError>;

    /// Claim the first `request.limit` ready jobs in run order, for a
    /// request that filters no channel (no full, sequential or shared
    /// channel): `candidates` and `claim` in one go, which a database may
    /// do in one statement. Returned in run order.
    async fn claim_next(&self, request: &ClaimRequest) -> Result<Vec<Job>, StorageError> {
        let ids: Vec<JobId> = self
            .candidates(request)
            .await?
            .into_iter()
            .take(request.limit as usize)
            .map(|(id, _)| id)
            .collect();
        self.claim(&ids, request).await
    }

    /// In one transaction: mark claimed jobs that began running as
    /// `started` (`begun`: id and start time), and record finished tries —
    /// done, retry or failed, with logs and audit — releasing dependents of
    /// jobs that are done.
    async fn complete(
        &self,
        completions: &[Completion],
        begun: &[(JobId, i64)],
        now: i64,
    ) -> Result<(), StorageError>;

    /// Extend the lease of running jobs held by `node`.
    async fn heartbeat(
        &self,
        node: &str,
        ids: &[JobId],
        lease_until: i64,
    ) -> Result<(), StorageError>;

    /// Return started or enqueued jobs whose lease expired to the queue,
    /// counting a try (or failing them when out of tries). Returns their ids.
    async fn requeue_expired(&self, now: i64) -> Result<Vec<JobId>, StorageError>;

    /// Give jobs `node` holds back to the queue without counting a try
    /// (graceful shutdown).
    async fn release(&self, node: &str, ids: &[JobId], now: i64) -> Result<(), StorageError>;

    /// An operator's action on `ids`, in one transaction: each job the
    /// action applies to is changed, the others are reported skipped
    /// (their state moved on since they were listed) or missing.
    async fn act(&self, action: JobAction, ids: &[JobId], now: i64) -> Result<Acted, StorageError>;

    /// Cancel a job that has not finished, and every job that depends on it.
    async fn cancel(&self, id: JobId, now: i64) -> Result<Vec<JobId>, StorageError> {
        Ok(self.act_on_one(JobAction::Cancel, id, now).await?.changed)
    }

    /// Put a failed or cancelled job back in the queue, tries reset.
    async fn requeue(&self, id: JobId, now: i64) -> Result<(), StorageError> {
        self.act_on_one(JobAction::Requeue, id, now).await.map(drop)
    }

    /// Mark a job that has not finished as done by hand (releases dependents).
    async fn mark_done(&self, id: JobId, now: i64) -> Result<(), StorageError> {
        self.act_on_one(JobAction::Done, id, now).await.map(drop)
    }

    /// `act` on one job, whose wrong state or absence is an error.
    async fn act_on_one(
        &self,
        action: JobAction,
        id: JobId,
        now: i64,
    ) -> Result<Acted, StorageError> {
        let acted = self.act(action, &[id], now).await?;
        if let Some(&(id, state)) = acted.skipped.first() {
            return Err(StorageError::WrongState {
                id,
                state,
                action: action.verb(),
                expected: action.expected(),
            });
        }
        if !acted.missing.is_empty() {
            return Err(StorageError::NoSuchJob(id));
        }
        Ok(acted)
    }

    /// How many jobs `filter` matches (paging and limit ignored).
    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StorageError>;

    async fn job(&self, id: JobId) -> Result<Option<Job>, StorageError>;
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StorageError>;
    async fn job_log(&self, id: JobId) -> Result<Vec<JobLogLine>, StorageError>;
    async fn job_audit(&self, id: JobId) -> Result<Vec<JobAuditEntry>, StorageError>;
    async fn parents(&self, id: JobId) -> Result<Vec<JobId>, StorageError>;
    /// The jobs waiting on `id`.
    async fn children(&self, id: JobId) -> Result<Vec<JobId>, StorageError>;
    /// Per channel, the ETA of the oldest job that is due but not started
    /// (pending or enqueued with `eta <= now`): the queue's lag.
    async fn oldest_due(&self, now: i64) -> Result<Vec<(String, i64)>, StorageError>;
    /// Jobs by state and channel, read from counts the database keeps as
    /// jobs change: the same cost at ten jobs as at ten million.
    async fn counts(&self) -> Result<Vec<StateCount>, StorageError>;
    /// Fold the kept counts into one row per channel and state (called by
    /// the queue's maintenance so that `counts` stays a few rows).
    async fn compact_counts(&self) -> Result<(), StorageError>;

    /// Delete done and cancelled jobs in `scope` finished before `before`,
    /// at most `batch` of them; returns how many were deleted.
    async fn purge(
        &self,
        before: i64,
        batch: u32,
        scope: &crate::storage::types::PurgeScope,
    ) -> Result<u64, StorageError>;

    /// Create or update a local record and put its `record-created` or
    /// `record-written` event (with the changed top-level fields) in the
    /// outbox, in one transaction. An update that changes nothing stores
    /// nothing and returns `None`.
    async fn put_record(
        &self,
        write: &RecordWrite,
        now: i64,
    ) -> Result<Option<(LocalRecord, StoredEvent)>, StorageError> {
        self.put_records(std::slice::from_ref(write), now)
            .await?
            .pop()
            .unwrap_or(Ok(None))
    }

    /// [`Storage::put_record`] for many records in one transaction. Each
    /// write is applied or refused on its own (a version conflict, a
    /// binding taken by another record, data that is not an object); the
    /// outer error is for the transaction as a whole.
    async fn put_records(
        &self,
        writes: &[RecordWrite],
        now: i64,
    ) -> Result<Vec<PutOutcome>, StorageError>;

    /// Delete a local record and put its `record-deleted` event in the
    /// outbox. `None` when there was no such record.
    async fn delete_record(
        &self,
        model: &str,
        id: &str,
        origin_backend: Option<&str>,
        now: i64,
    ) -> Result<Option<StoredEvent>, StorageError>;

    async fn record(&self, model: &str, id: &str) -> Result<Option<LocalRecord>, StorageError>;

    /// Many records of one model by id (those that exist).
    async fn records_of(
        &self,
        model: &str,
        ids: &[String],
    ) -> Result<Vec<LocalRecord>, StorageError>;

    /// The local records of `model` holding any of `keys` (values as
    /// `MatchKey::stored_value` stores them): (key, local id) pairs.
    async fn records_by_keys(
        &self,
        model: &str,
        keys: &[crate::features::MatchKey],
    ) -> Result<Vec<(crate::features::MatchKey, String)>, StorageError>;

    /// Records of a model in id order, after `after` when given.
    async fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LocalRecord>, StorageError>;

    /// Put a custom event in the outbox.
    async fn emit(&self, event: &Event, now: i64) -> Result<StoredEvent, StorageError>;

    /// Outbox events not dispatched yet, oldest first.
    async fn undispatched(&self, limit: u32) -> Result<Vec<StoredEvent>, StorageError>;

    /// How many jobs of `backend` are live (waiting, pending, claimed or
    /// running), counting no further than `up_to` + 1.
    async fn live_jobs(&self, backend: &str, up_to: u64) -> Result<u64, StorageError>;

    /// One outbox event, dispatched or not (a listener's delivery job
    /// reads it when it runs).
    async fn event(&self, id: i64) -> Result<Option<StoredEvent>, StorageError>;

    /// Enqueue the jobs events caused and mark them dispatched, in one
    /// transaction: an event's jobs exist exactly once, or not yet. `None`
    /// for an event already dispatched (by another dispatcher).
    async fn dispatch(
        &self,
        events: &[(i64, Vec<NewJob>)],
        now: i64,
    ) -> Result<Vec<Option<Vec<Enqueued>>>, StorageError>;

    async fn binding_to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<String>, StorageError>;
    async fn binding_to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<String>, StorageError>;
    /// Bind the pair; `Rejected` when either id is bound to another.
    /// `synced` replaces the values as last synced; `None` keeps them.
    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: i64,
        synced: Option<&str>,
    ) -> Result<(), StorageError>;

    async fn binding(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<Binding>, StorageError>;
    /// The bindings of many external ids of one model (those that exist).
    async fn bindings_of(
        &self,
        backend: &str,
        model: &str,
        external_ids: &[String],
    ) -> Result<Vec<Binding>, StorageError>;
    async fn binding_of_local(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<Binding>, StorageError>;
    /// The newest jobs (at most `limit`) naming a record: by its local id,
    /// or by one of its `(backend, external id)`s, newest first.
    async fn record_jobs(
        &self,
        model: &str,
        local_id: &str,
        external: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<Job>, StorageError>;
    /// The newest events (at most `limit`) about a local record.
    async fn record_events(
        &self,
        model: &str,
        local_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError>;
    /// Store a notification for `target`, unless `max` already wait for
    /// it (then it is counted as dropped); whether it was stored.
    async fn notify_add(
        &self,
        target: &str,
        note: &crate::storage::types::Notification,
        max: u64,
    ) -> Result<bool, StorageError>;
    /// The oldest notifications waiting for `target` (at most `limit`), and
    /// how many were dropped since the last call.
    async fn notify_take(
        &self,
        target: &str,
        limit: u32,
    ) -> Result<(Vec<crate::storage::types::Notification>, u64), StorageError>;
    /// Forget notifications that were sent, and `dropped` of the count of
    /// dropped ones (that the call reported).
    async fn notify_done(
        &self,
        target: &str,
        ids: &[i64],
        dropped: u64,
    ) -> Result<(), StorageError>;
    /// Remove the binding of a local record; `false` when there was none.
    async fn unbind(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<bool, StorageError>;
    /// Bindings per model of a backend.
    async fn binding_counts(&self, backend: &str) -> Result<Vec<(String, i64)>, StorageError>;
    /// A page of a backend's bindings of `model`, by external id after
    /// `after`.
    async fn bindings_page(
        &self,
        backend: &str,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Binding>, StorageError>;

    /// Take the leases `keys` for `holder` until `until` (Unix ms), in one
    /// transaction; per key, `false` when another holder has it and it has
    /// not lapsed. A holder named `job-<id>…` is that job: its leases lapse
    /// as soon as the job is no longer claimed or running (a crashed node's
    /// jobs go back to pending), not only at `until`, and another try of the
    /// same job takes them over (a job never runs twice at once, so a lease
    /// of its earlier try belongs to a try that is gone); PostgreSQL keeps a
    /// job's leases as advisory locks, which a node that goes away frees
    /// at once. Other holders' leases (a schedule's period) last until
    /// `until` whatever happens to the process that took them.
    async fn lock(
        &self,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError>;
    /// Give leases back (those `holder` still has).
    async fn unlock(&self, keys: &[String], holder: &str) -> Result<(), StorageError>;

    /// Several lease and record writes in one transaction, in order, each
    /// answered as its own method would (the synchronizer's group commit:
    /// concurrent jobs share a transaction instead of queueing for the
    /// writer one by one).
    async fn write_batch(&self, ops: &[WriteOp]) -> Result<Vec<WriteDone>, StorageError>;

    /// Store a connector component (inactive); `false` when that digest
    /// was there.
    async fn install_connector(
        &self,
        connector: &InstalledConnector,
        component: &[u8],
    ) -> Result<bool, StorageError>;
    async fn connectors(&self) -> Result<Vec<InstalledConnector>, StorageError>;
    async fn connector_component(&self, digest: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Remove an installed connector; `false` when there was none. Its
    /// activations go with it.
    async fn remove_connector(&self, digest: &str) -> Result<bool, StorageError>;
    /// Make an installed component the active version of its connector
    /// (the others of that name become inactive); `false` when no such
    /// digest is installed.
    async fn activate_connector(&self, digest: &str, now: i64) -> Result<bool, StorageError>;
    /// Make the version active before the current one again; the digest
    /// now active, or `None` when there is nothing to go back to.
    async fn rollback_connector(
        &self,
        name: &str,
        now: i64,
    ) -> Result<Option<String>, StorageError>;
    /// A number that changes whenever connectors or backends change, on
    /// any node.
    async fn registry_generation(&self) -> Result<i64, StorageError>;

    /// Open a backend's circuit breaker unless it is open already; true
    /// when this call opened it (another node may have first).
    async fn open_breaker(&self, breaker: &OpenBreaker) -> Result<bool, StorageError>;
    /// Every open breaker, by backend.
    async fn breakers(&self) -> Result<Vec<OpenBreaker>, StorageError>;
    /// A probe of an open breaker failed: the next waits twice as long
    /// (at most `max_cool_down` ms) from `now`.
    async fn breaker_probe_failed(
        &self,
        backend: &str,
        reason: &str,
        now: i64,
        max_cool_down: i64,
    ) -> Result<(), StorageError>;
    /// Close a backend's breaker (a probe succeeded, or an operator closed
    /// it); true when it was open.
    async fn close_breaker(&self, backend: &str) -> Result<bool, StorageError>;

    /// Pause (`paused`) or resume a backend or channel (`kind`: `backend`
    /// or `channel`); true when that changed anything.
    async fn set_paused(
        &self,
        kind: &str,
        name: &str,
        paused: bool,
        now: i64,
    ) -> Result<bool, StorageError>;
    /// What is paused: kind, name and since when.
    async fn paused(&self) -> Result<Vec<(String, String, i64)>, StorageError>;

    /// Record that `node` is alive (its heartbeat); the first beat of a
    /// start also sets `started_at` and clears `stopped_at`.
    async fn node_beat(&self, node: &NodeInfo) -> Result<(), StorageError>;
    /// Mark a node stopped (a clean stop).
    async fn node_stopped(&self, name: &str, now: i64) -> Result<(), StorageError>;
    /// Every node that ever ran on this database, with the jobs it holds.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, StorageError>;

    /// The schema version (the last migration applied).
    async fn schema_version(&self) -> Result<i64, StorageError>;
    /// A page of a table's rows, for `db copy`.
    async fn dump(
        &self,
        table: &copy::Table,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<Vec<copy::Cell>>, StorageError>;
    /// A transaction that `db copy` writes into.
    async fn loader(&self) -> Result<Box<dyn copy::Loader>, StorageError>;

    /// Create or replace a backend's configuration.
    async fn put_backend(
        &self,
        name: &str,
        kind: &str,
        version: &str,
        config: &str,
        now: i64,
    ) -> Result<(), StorageError>;
    async fn backends(&self) -> Result<Vec<StoredBackend>, StorageError>;
    /// Remove a backend's configuration in one transaction; `None` when
    /// no backend has that name. Refused (`BackendBusy`) while it has
    /// unfinished jobs, unless `how.cancel_jobs`.
    async fn remove_backend(
        &self,
        name: &str,
        how: RemoveBackend,
        now: i64,
    ) -> Result<Option<RemovedBackend>, StorageError>;

    async fn state_get(&self, backend: &str, key: &str) -> Result<Option<String>, StorageError>;
    /// A backend's state keys starting with `prefix`, in key order, with
    /// their values and when they were last written.
    async fn state_list(
        &self,
        backend: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StorageError>;
    /// Remove one state key; whether it existed.
    async fn state_delete(&self, backend: &str, key: &str) -> Result<bool, StorageError>;
    /// Set a state value. With `quota`, refused (`Rejected`, naming the
    /// limit) when the backend's keys under the quota's prefix would then
    /// number more than `max_keys` or hold more than `max_bytes` (keys
    /// and values), checked in the writing transaction.
    async fn state_set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        now: i64,
        quota: Option<&StateQuota>,
    ) -> Result<(), StorageError>;
}

/// How much state a backend's connector may keep (`state_set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateQuota {
    /// The keys it counts: those starting with this.
    pub prefix: String,
    pub max_keys: u64,
    pub max_bytes: u64,
}

impl StateQuota {
    /// The refusal, if writing `key` = `value` would go over: `keys` and
    /// `bytes` are the prefix's usage now, `old` the length of the key's
    /// current value if it has one (rewriting a key adds no key).
    pub fn check_write(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        (keys, bytes): (u64, u64),
        old: Option<u64>,
    ) -> Result<(), StorageError> {
        let size = (key.len() + value.len()) as u64;
        let (keys, bytes) = match old {
            Some(old) => (keys, (bytes + size).saturating_sub(key.len() as u64 + old)),
            None => (keys + 1, bytes + size),
        };
        self.check(backend, keys, bytes)
    }

    /// The refusal, if the usage after the write (`keys`, `bytes`) is over.
    pub fn check(&self, backend: &str, keys: u64, bytes: u64) -> Result<(), StorageError> {
        if keys > self.max_keys {
            return Err(StorageError::Rejected(format!(
                "the state of backend {backend:?} already holds {} keys, its limit \
                 (limits.max_state_keys): reuse keys instead of making new ones",
                self.max_keys
            )));
        }
        if bytes > self.max_bytes {
            return Err(StorageError::Rejected(format!(
                "the state of backend {backend:?} would hold {bytes} bytes, over its limit of {} \
                 (limits.max_state_bytes)",
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// Top-level fields that differ between two JSON objects.
pub(crate) fn changed_fields(
    old: &serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let mut fields: Vec<String> = new
        .iter()
        .filter(|(k, v)| !old.get(*k).is_some_and(|o| crate::model::same_value(o, v)))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    fields.sort();
    fields
}

pub(crate) fn json_object(
    text: &str,
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, StorageError> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(StorageError::Rejected(format!(
            "{what} must be a JSON object"
        ))),
        Err(e) => Err(StorageError::Rejected(format!("{what} is not JSON: {e}"))),
    }
}
