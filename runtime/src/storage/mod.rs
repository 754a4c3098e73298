//! Storage: the one place that knows SQL.
//!
//! [`Storage`] is the boundary the rest of the runtime uses; [`sqlite`]
//! implements it on an embedded SQLite file (WAL, busy timeout,
//! `BEGIN IMMEDIATE` for writes). A PostgreSQL implementation will satisfy
//! the same trait and pass the same conformance suite
//! (`runtime/tests/it/storage.rs`), which is written against the trait.
//! Migrations are embedded in the binary and applied on open.

mod migrate;
pub mod sqlite;

use async_trait::async_trait;

use crate::queue::job::{
    Completion, Enqueued, Job, JobAuditEntry, JobFilter, JobId, JobLogLine, JobState, NewJob,
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
}

/// How many jobs are in each state and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub state: JobState,
    pub channel: String,
    pub count: i64,
}

/// The storage boundary. Every method is one transaction.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Store a batch of jobs, all or none. A job whose identity key matches
    /// a live job (waiting, pending or enqueued) is not stored; its entry
    /// says so and carries the live job's id.
    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<Vec<Enqueued>, StorageError>;

    /// Ready candidates for a claim (pending, eta passed, channel not full),
    /// in run order: priority, then eta, then id. `mark_started` takes them.
    async fn candidates(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<(JobId, String)>, StorageError>;

    /// Mark these pending jobs started under a lease; returns the ones that
    /// were still pending (another node may have taken some).
    async fn mark_started(
        &self,
        ids: &[JobId],
        request: &ClaimRequest,
    ) -> Result<Vec<Job>, StorageError>;

    /// Record finished tries: done, retry or failed, with logs and audit;
    /// releases dependents of jobs that are done.
    async fn complete(&self, completions: &[Completion], now: i64) -> Result<(), StorageError>;

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

    /// Cancel a job that has not finished, and every job that depends on it.
    async fn cancel(&self, id: JobId, now: i64) -> Result<Vec<JobId>, StorageError>;

    /// Put a failed or cancelled job back in the queue, tries reset.
    async fn requeue(&self, id: JobId, now: i64) -> Result<(), StorageError>;

    /// Mark a job that has not finished as done by hand (releases dependents).
    async fn mark_done(&self, id: JobId, now: i64) -> Result<(), StorageError>;

    async fn job(&self, id: JobId) -> Result<Option<Job>, StorageError>;
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StorageError>;
    async fn job_log(&self, id: JobId) -> Result<Vec<JobLogLine>, StorageError>;
    async fn job_audit(&self, id: JobId) -> Result<Vec<JobAuditEntry>, StorageError>;
    async fn parents(&self, id: JobId) -> Result<Vec<JobId>, StorageError>;
    async fn counts(&self) -> Result<Vec<StateCount>, StorageError>;

    /// Delete done and cancelled jobs finished before `before`, at most
    /// `batch` of them; returns how many were deleted.
    async fn purge(&self, before: i64, batch: u32) -> Result<u64, StorageError>;
}
