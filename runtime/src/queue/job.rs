//! The job model: states, what is enqueued, what a finished try reports.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::capabilities::egress::AuditEntry;
use crate::host::LogLine;

pub type JobId = i64;

/// A job's state. `wait_dependencies` → `pending` → `started` → `done`,
/// with `failed` and `cancelled` as the other ends; `enqueued` is a job a
/// node has claimed but not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

/// What enqueueing one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
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
    /// Only ids below this (for paging, newest first).
    pub before: Option<JobId>,
    pub limit: u32,
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
