//! Jobs: listing, one job's detail, manual and bulk actions, enqueueing
//! and starting syncs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::capabilities::egress::AuditEntry;
use crate::queue::job::{Enqueued, Job, JobAction, JobState};

/// A stored job, its arguments as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    pub function: String,
    /// Its arguments (a JSON value; text when they are not JSON).
    #[schema(value_type = Object)]
    pub args: Value,
    pub backend: Option<String>,
    pub state: JobState,
    /// Lower runs first.
    pub priority: i32,
    /// Runs no earlier than this, Unix milliseconds.
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
    /// The node running (or that last ran) it.
    pub node: Option<String>,
    pub worker: Option<String>,
    /// The connector version that ran it.
    pub connector_digest: Option<String>,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        JobView {
            id: j.id,
            function: j.function.clone(),
            args: serde_json::from_str(&j.args).unwrap_or_else(|_| Value::String(j.args.clone())),
            backend: j.backend.clone(),
            state: j.state,
            priority: j.priority,
            eta: j.eta,
            channel: j.channel.clone(),
            identity_key: j.identity_key.clone(),
            max_retries: j.max_retries,
            tries: j.tries,
            description: j.description.clone(),
            result: j.result.clone(),
            error_kind: j.error_kind.clone(),
            error_message: j.error_message.clone(),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            lease_until: j.lease_until,
            node: j.node.clone(),
            worker: j.worker.clone(),
            connector_digest: j.connector_digest.clone(),
        }
    }
}

/// A job after `cancel`, with every job the cancel reached (it and the
/// jobs depending on it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelledJob {
    #[serde(flatten)]
    pub job: JobView,
    pub cancelled: Vec<i64>,
}

/// One job with everything it left behind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    pub job: JobView,
    pub logs: Vec<JobLog>,
    /// Its outbound HTTP requests, as the sandbox saw them.
    pub audit: Vec<JobAudit>,
    /// Jobs it waits for.
    pub parents: Vec<i64>,
    /// Jobs waiting for it.
    pub children: Vec<i64>,
    /// The first 50 parents and children in full.
    pub graph: Vec<Neighbour>,
}

/// A log line a try left.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobLog {
    pub try_number: u32,
    pub level: String,
    /// `guest`, `stdout`, `stderr` or `host`.
    pub source: String,
    pub message: String,
}

/// An outbound request a try made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobAudit {
    pub try_number: u32,
    pub entry: AuditEntry,
}

/// A parent or child of a job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Neighbour {
    pub id: i64,
    pub function: String,
    pub state: JobState,
    pub description: Option<String>,
    pub relation: Relation,
}

/// How a neighbour relates to the job shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Parent,
    Child,
}

/// Query of `GET /api/v1/jobs`: newest first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    #[param(value_type = Option<JobState>)]
    pub state: Option<String>,
    pub channel: Option<String>,
    pub backend: Option<String>,
    pub function: Option<String>,
    /// Enqueued at or after this RFC 3339 time.
    pub created_after: Option<String>,
    /// Enqueued before this RFC 3339 time.
    pub created_before: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Which jobs a bulk action acts on; at least one condition.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSelection {
    #[schema(value_type = Option<JobState>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Enqueued at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<String>,
    /// Enqueued before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<String>,
}

/// Body of `POST /api/v1/jobs/bulk`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `requeue`, `cancel` or `done`.
    #[schema(value_type = JobAction)]
    pub action: String,
    pub filter: JobSelection,
    /// Only count what the filter matches.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a bulk action did (or, dry, would do).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkAnswer {
    /// Jobs matched when the action began.
    pub matched: u64,
    /// Jobs changed (a cancel counts the dependents cancelled with them).
    pub changed: u64,
    /// Jobs left alone: their state had moved on, or they were purged.
    pub skipped: u64,
    /// Transactions it took.
    pub pages: u64,
    pub dry_run: bool,
    /// The action (`POST /api/v1/jobs/bulk` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<JobAction>,
}

/// Body of `POST /api/v1/sync/import`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    pub backend: String,
    /// One model; all the backend's importable models (in dependency
    /// order) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Import in the batch job itself instead of one job per record.
    #[serde(default)]
    pub direct: bool,
    /// Search from this RFC 3339 time instead of the stored cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Import every record found (from the beginning unless `since`),
    /// even those synced since their last change, writing every field.
    #[serde(default)]
    pub force: bool,
}

/// Body of `POST /api/v1/sync/export`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub backend: String,
    pub model: String,
    pub local_id: String,
}

/// Body of `POST /api/v1/sync/reconcile`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    pub backend: String,
    pub model: String,
    /// Delete even more than the backend's `reconcile.max_delete_percent`
    /// of the bound records.
    #[serde(default)]
    pub confirm: bool,
}

/// Body of `POST /api/v1/sync/task`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    pub backend: String,
    /// A task the backend's connector declares (`junction connector
    /// inspect` lists them).
    pub task: String,
    /// Its arguments (a JSON object; none is `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: Option<serde_json::Value>,
}

/// The jobs a sync started.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Started {
    pub jobs: Vec<StartedJob>,
}

/// One job a sync started.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartedJob {
    pub id: i64,
    pub model: String,
    /// The same sync was already waiting; this is its job.
    pub deduplicated: bool,
}

/// One job of `POST /api/v1/jobs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// A registered job function.
    pub function: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub args: Option<Value>,
    pub backend: Option<String>,
    pub channel: Option<String>,
    pub priority: Option<u32>,
    pub identity_key: Option<String>,
    pub max_retries: Option<u32>,
    /// Run no earlier than this many milliseconds from now.
    pub delay_ms: Option<u64>,
    pub description: Option<String>,
}

/// Body of `POST /api/v1/jobs`: 1 to 10,000 jobs, enqueued all or none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    pub jobs: Vec<NewJob>,
}

/// The jobs enqueued, in the order sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnqueueAnswer {
    pub jobs: Vec<Enqueued>,
}

impl BulkAnswer {
    /// The answer for a queue's bulk report.
    pub fn from_report(
        r: crate::queue::BulkReport,
        dry_run: bool,
        action: Option<JobAction>,
    ) -> BulkAnswer {
        BulkAnswer {
            matched: r.matched,
            changed: r.changed,
            skipped: r.skipped,
            pages: r.pages,
            dry_run,
            action,
        }
    }
}
