//! The storage's vocabulary: jobs (states, what is enqueued, what a
//! finished try reports, with its log lines and outbound requests), purge
//! scopes, notifications and the clock. Defined here, below the queue, the
//! host and the capabilities that use them, so that storage depends on
//! none of them; those modules re-export what is theirs to name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A job's id.
pub type JobId = i64;

/// A job's state. `wait_dependencies` → `pending` → `started` → `done`,
/// with `failed` and `cancelled` as the other ends; `enqueued` is a job a
/// node has claimed but not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    WaitDependencies,
    Pending,
    Enqueued,
    Started,
    Done,
    Cancelled,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::WaitDependencies,
        JobState::Pending,
        JobState::Enqueued,
        JobState::Started,
        JobState::Done,
        JobState::Cancelled,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::WaitDependencies => "wait_dependencies",
            JobState::Pending => "pending",
            JobState::Enqueued => "enqueued",
            JobState::Started => "started",
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Done, cancelled or failed: nothing runs it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Cancelled | JobState::Failed
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job a dependency points at: one already stored, or one earlier in the
/// same enqueue batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Parent {
    Stored(JobId),
    InBatch(usize),
}

/// A validated job, ready to store. Build it with `Queue::prepare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub function: String,
    /// A JSON object, as text.
    pub args: String,
    pub backend: Option<String>,
    pub priority: i32,
    /// Unix milliseconds; not before.
    pub eta: i64,
    pub channel: String,
    pub identity_key: Option<String>,
    /// 0 means unlimited.
    pub max_retries: u32,
    pub description: Option<String>,
    pub parents: Vec<Parent>,
    /// The record its arguments name ([`record_key`]), for a record's
    /// timeline; `None` for jobs about no record.
    pub record: Option<String>,
}

/// The key of a local record (`model`, local `id`) in jobs' `record`:
/// unambiguous whatever the ids hold.
pub fn local_record_key(model: &str, id: &str) -> String {
    bounded(serde_json::json!(["local", model, id]).to_string())
}

/// The key of a backend's record (`model`, external `id`).
pub fn remote_record_key(backend: &str, model: &str, id: &str) -> String {
    bounded(serde_json::json!(["remote", backend, model, id]).to_string())
}

/// Keys longer than this are stored as their SHA-256: an index entry has
/// a size limit (PostgreSQL's B-tree about 2.7 KB), and ids come from
/// backends and connectors.
const MAX_RECORD_KEY: usize = 256;

fn bounded(key: String) -> String {
    use sha2::{Digest, Sha256};
    if key.len() <= MAX_RECORD_KEY {
        return key;
    }
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// The record a job's arguments name: `model` with `local_id`, else with
/// `external_id` of the job's backend.
pub fn record_key(args: &serde_json::Value, backend: Option<&str>) -> Option<String> {
    let model = args.get("model")?.as_str()?;
    if let Some(id) = args.get("local_id").and_then(|v| v.as_str()) {
        return Some(local_record_key(model, id));
    }
    let id = args.get("external_id")?.as_str()?;
    Some(remote_record_key(backend?, model, id))
}

/// What enqueueing one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enqueued {
    #[schema(value_type = i64)]
    pub id: JobId,
    /// A live job with the same identity key existed; this is its id.
    pub deduplicated: bool,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub function: String,
    pub args: String,
    pub backend: Option<String>,
    pub state: JobState,
    pub priority: i32,
    pub eta: i64,
    pub channel: String,
    pub identity_key: Option<String>,
    pub max_retries: u32,
    pub tries: u32,
    pub description: Option<String>,
    pub result: Option<String>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub lease_until: Option<i64>,
    pub node: Option<String>,
    pub worker: Option<String>,
    pub connector_digest: Option<String>,
}

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done {
        result: Option<String>,
    },
    /// Run again at `eta`; `count_try` false for lock contention and the like.
    Retry {
        eta: i64,
        count_try: bool,
        kind: String,
        message: String,
    },
    Failed {
        kind: String,
        message: String,
    },
}

/// A finished try, with what it left behind.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: JobId,
    pub outcome: Outcome,
    pub finished_at: i64,
    pub connector_digest: Option<String>,
    pub log: Vec<LogLine>,
    pub audit: Vec<AuditEntry>,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub channel: Option<String>,
    pub backend: Option<String>,
    pub function: Option<String>,
    /// Only jobs enqueued at or after this time (Unix milliseconds).
    pub created_after: Option<i64>,
    /// Only jobs enqueued before this time (Unix milliseconds).
    pub created_before: Option<i64>,
    /// Only ids below this (for paging, newest first).
    pub before: Option<JobId>,
    pub limit: u32,
}

impl JobFilter {
    /// Whether the filter names anything beyond paging: a bulk action
    /// over every job must be asked for by name, never by omission.
    pub fn narrows(&self) -> bool {
        self.state.is_some()
            || self.channel.is_some()
            || self.backend.is_some()
            || self.function.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
    }
}

/// What an operator does to jobs by hand, one at a time or in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// A failed or cancelled job back to the queue, tries reset.
    Requeue,
    /// An unfinished job, and every job that depends on it, cancelled.
    Cancel,
    /// A job that is not done marked done (its dependents may start).
    Done,
    /// A failed job set aside for good: cancelled, with the jobs waiting
    /// on it, and purged with the other finished jobs (a dead event the
    /// operator chose not to deliver).
    Discard,
}

impl JobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Requeue => "requeue",
            JobAction::Cancel => "cancel",
            JobAction::Done => "done",
            JobAction::Discard => "discard",
        }
    }

    pub fn parse(text: &str) -> Option<JobAction> {
        [
            JobAction::Requeue,
            JobAction::Cancel,
            JobAction::Done,
            JobAction::Discard,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }

    /// Whether the action applies to a job in `state`.
    pub fn applies_to(self, state: JobState) -> bool {
        match self {
            JobAction::Requeue => matches!(state, JobState::Failed | JobState::Cancelled),
            JobAction::Cancel => !state.is_final(),
            JobAction::Done => state != JobState::Done,
            JobAction::Discard => state == JobState::Failed,
        }
    }

    /// The states it applies to, as an error message says them.
    pub fn expected(self) -> &'static str {
        match self {
            JobAction::Requeue => "failed or cancelled",
            JobAction::Cancel => "not finished",
            JobAction::Done => "not done",
            JobAction::Discard => "failed",
        }
    }

    /// How an error message names it.
    pub fn verb(self) -> &'static str {
        match self {
            JobAction::Requeue => "requeue",
            JobAction::Cancel => "cancel",
            JobAction::Done => "mark done",
            JobAction::Discard => "discard",
        }
    }
}

/// What one operator action over a set of jobs did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Acted {
    /// Jobs it changed: for a cancel, the dependents cancelled with them.
    pub changed: Vec<JobId>,
    /// Jobs it left alone because their state had moved on.
    pub skipped: Vec<(JobId, JobState)>,
    /// Jobs that no longer exist (purged).
    pub missing: Vec<JobId>,
}

/// A job's stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobLogLine {
    pub try_number: u32,
    pub level: String,
    pub source: String,
    pub message: String,
}

/// A job's stored outbound HTTP audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobAuditEntry {
    pub try_number: u32,
    pub entry: AuditEntry,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Guest,
    Stdout,
    Stderr,
    /// The host's own note about the log (lines it dropped).
    Host,
}

/// Severity, as the contract's `log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub source: LogSource,
    pub message: String,
}

/// One outbound request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// The path, with query parameter names but not their values.
    pub path: String,
    pub status: Option<u16>,
    /// Why the host refused the request, if it did.
    pub denied: Option<String>,
    /// Why the exchange failed after it was allowed, if it did.
    pub error: Option<String>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub duration_ms: u64,
}

/// Which finished jobs one purge pass may delete: those in `subtree`
/// (every channel when `None`) and not in any of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeScope {
    pub subtree: Option<String>,
    pub except: Vec<String>,
}

/// One notification, stored until sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    #[serde(skip)]
    pub id: i64,
    pub kind: String,
    pub backend: Option<String>,
    /// What it is about: `job 42`, `backend shop`.
    pub subject: String,
    pub message: String,
    pub at: i64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
