//! Test helpers in the spirit of OCA's `trap_jobs`: see what was enqueued,
//! assert on it, and run the enqueued jobs inline, without a worker pool.

use std::collections::HashMap;
use std::sync::Arc;

use super::job::{Completion, Job, JobFilter, JobState, Outcome};
use super::worker::{Handler, JobFailure};
use super::{Queue, now_ms};
use crate::storage::{ClaimRequest, StorageError};

/// Traps the jobs of a queue.
pub struct JobTrap {
    queue: Arc<Queue>,
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl JobTrap {
    pub fn new(queue: Arc<Queue>) -> Self {
        JobTrap {
            queue,
            handlers: HashMap::new(),
        }
    }

    /// Run `function` jobs with `handler` in [`JobTrap::perform_enqueued`].
    pub fn handler(&mut self, function: &str, handler: Arc<dyn Handler>) -> &mut Self {
        self.queue.register_function(function);
        self.handlers.insert(function.to_string(), handler);
        self
    }

    /// Jobs waiting to run (pending or waiting for dependencies), oldest first.
    pub async fn enqueued(&self) -> Result<Vec<Job>, StorageError> {
        let mut out = Vec::new();
        for state in [JobState::Pending, JobState::WaitDependencies] {
            out.extend(
                self.queue
                    .storage()
                    .jobs(&JobFilter {
                        state: Some(state),
                        limit: 100_000,
                        ..JobFilter::default()
                    })
                    .await?,
            );
        }
        out.sort_by_key(|j| j.id);
        Ok(out)
    }

    /// Panic unless a waiting job calls `function` with arguments that
    /// contain every field of `args` (a JSON object).
    pub async fn assert_enqueued(&self, function: &str, args: serde_json::Value) -> Job {
        let jobs = self.enqueued().await.expect("listing jobs");
        let wanted = args.as_object().cloned().unwrap_or_default();
        jobs.iter()
            .find(|j| {
                j.function == function
                    && serde_json::from_str::<serde_json::Value>(&j.args)
                        .ok()
                        .and_then(|v| v.as_object().cloned())
                        .is_some_and(|have| wanted.iter().all(|(k, v)| have.get(k) == Some(v)))
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no enqueued {function} job with args {args}; enqueued: {:?}",
                    jobs.iter()
                        .map(|j| (&j.function, &j.args))
                        .collect::<Vec<_>>()
                )
            })
    }

    /// Run every ready job inline, including jobs those jobs enqueue, ETAs
    /// ignored, until none is ready. Returns how many ran.
    pub async fn perform_enqueued(&self) -> Result<usize, StorageError> {
        let storage = self.queue.storage();
        let mut ran = 0;
        loop {
            let now = now_ms();
            let request = ClaimRequest {
                node: "job-trap".into(),
                worker: "inline".into(),
                now: i64::MAX,
                lease_until: i64::MAX,
                limit: 100,
                full_channels: Vec::new(),
                sequential_channels: Vec::new(),
                shared_limits: Vec::new(),
                held_backends: Vec::new(),
            };
            let ids: Vec<i64> = storage
                .candidates(&request)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            if ids.is_empty() {
                return Ok(ran);
            }
            for job in storage.claim(&ids, &request).await? {
                let handled = super::worker::handle(&self.handlers, &job, "the job trap").await;
                let outcome = match handled.result.unwrap_or(Ok(None)) {
                    Ok(result) => Outcome::Done { result },
                    Err(JobFailure::Fail { kind, message })
                    | Err(JobFailure::Retry { kind, message, .. }) => {
                        Outcome::Failed { kind, message }
                    }
                };
                storage
                    .complete(
                        &[Completion {
                            id: job.id,
                            outcome,
                            finished_at: now,
                            connector_digest: handled.connector_digest,
                            log: handled.log,
                            audit: handled.audit,
                        }],
                        &[(job.id, now)],
                        now,
                    )
                    .await?;
                ran += 1;
            }
        }
    }
}
