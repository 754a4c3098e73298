//! The job handler behind every sync function: it parses a job's
//! arguments, resolves its backend and runs the flow (import, batch,
//! export, delete, deliver, reconcile, task), turning what the guest
//! calls left behind into the job's outcome.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::queue::job::Job;
use crate::queue::now_ms;
use crate::queue::worker::{Handled, Handler, JobFailure, WorkerPool};
use crate::storage::StorageError;

use super::{
    BackendUnits, DELETE_LOCAL, DELETE_REMOTE, DELIVER, EXPORT_RECORD, IMPORT_BATCH, IMPORT_RECORD,
    RECONCILE, Route, SyncError, Synchronizer, TASK, batch, probe, unresolved_wait,
};

use super::trail::Trail;

impl Synchronizer {
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
