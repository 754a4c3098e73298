//! Recurring batch imports and reconciliations: each backend's
//! `schedules` ("import product every 5 minutes", "reconcile product every
//! day") become `junction.import-batch` or `junction.reconcile` jobs. Whether a
//! schedule is due is decided through a lease that lasts one period, so
//! that several nodes on one database start it once per period; the batch
//! job's own lease keeps two runs from overlapping when one runs long.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::batch::batch_job;
use super::reconcile::reconcile_job;
use super::{SyncError, Synchronizer};
use crate::backend::ScheduleTask;
use crate::queue::now_ms;

impl Synchronizer {
    /// Enqueue the batch imports that are due; returns how many.
    pub async fn run_due_schedules(&self) -> Result<usize, SyncError> {
        let mut started = 0;
        for backend in self.backend_configs().await? {
            for s in &backend.schedules {
                let now = now_ms();
                let task = match s.task {
                    ScheduleTask::Import => "",
                    ScheduleTask::Reconcile => ":reconcile",
                };
                let key = format!("schedule:{}:{}{task}", backend.name, s.model);
                // A fresh holder name each time: the lease is taken only
                // once the previous period's has expired.
                let holder = format!("schedule@{}:{now}", self.node);
                let until = now + s.every.as_millis() as i64;
                let taken = self.storage.lock(&[key], &holder, now, until).await?;
                if !taken.first().copied().unwrap_or(false) {
                    continue;
                }
                let mut spec = match s.task {
                    ScheduleTask::Import => batch_job(&backend.name, &s.model, false),
                    ScheduleTask::Reconcile => reconcile_job(&backend.name, &s.model, false),
                };
                spec.request.description = Some(format!(
                    "scheduled {} of {} {} {} (every {} s)",
                    if s.task == ScheduleTask::Import {
                        "import"
                    } else {
                        "reconciliation"
                    },
                    s.model,
                    if s.task == ScheduleTask::Import {
                        "from"
                    } else {
                        "with"
                    },
                    backend.name,
                    s.every.as_secs()
                ));
                self.queue
                    .enqueue(spec)
                    .await
                    .map_err(|e| SyncError::Schedule {
                        backend: backend.name.clone(),
                        model: s.model.clone(),
                        reason: e.to_string(),
                    })?;
                started += 1;
            }
        }
        Ok(started)
    }

    /// Check the schedules every `tick` until the task is aborted.
    pub fn start_schedules(self: &Arc<Self>, tick: Duration) -> JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = sync.run_due_schedules().await {
                    tracing::warn!(error = %e, "scheduled imports could not be checked");
                }
            }
        })
    }
}
