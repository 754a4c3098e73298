//! Webhook intake, the synchronizer's half: a call the API has verified
//! (`api::hooks`: signature, size, replay window) is handed to the
//! connector that declares the webhook's name (`webhooks.on-webhook`), and
//! the jobs it returns are admitted under the backend's grants exactly as
//! a listener's are (`jobs::admit`), then enqueued together — all or none.

use crate::error::{CallError, GuestError};
use crate::features::Webhook;
use crate::queue::job::Enqueued;
use crate::queue::{JobSpec, QueueError};

use super::trail::Trail;
use super::{SyncError, Synchronizer};

/// Why a webhook call was not taken; each maps to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// No backend of that name, no secret for it, or no connector of it
    /// declares the webhook.
    #[error("{0}")]
    NotFound(String),
    /// The connector asks the sender to try again later.
    #[error("{message}")]
    Later { after_seconds: u32, message: String },
    /// The connector refused the call, or a job it returned was refused.
    #[error("{0}")]
    Refused(String),
    /// The call failed in the sandbox or the queue.
    #[error("{0}")]
    Failed(String),
}

impl Synchronizer {
    /// The signing secret of `backend`'s webhooks, when it takes any.
    pub async fn webhook_secret(&self, backend: &str) -> Result<Option<String>, IntakeError> {
        let b = self.backend(backend).await.map_err(|e| match e {
            SyncError::NotFound(_) | SyncError::UnknownBackend(_) => {
                IntakeError::NotFound(format!(
                    "there is no backend named {:?}",
                    crate::text::truncate(&crate::text::clean(backend), 80)
                ))
            }
            SyncError::Storage(e) => IntakeError::Failed(e.to_string()),
            // Configured but not servable yet (no connector installed, a
            // component that does not load): the sender should come back.
            other => IntakeError::Later {
                after_seconds: 30,
                message: format!("backend {backend} cannot take webhooks yet: {other}"),
            },
        })?;
        match &b.config.webhooks {
            None => Ok(None),
            Some(w) => w.secret.resolve().map(Some).map_err(|e| {
                IntakeError::Failed(format!("backend {backend}'s webhook secret: {e}"))
            }),
        }
    }

    /// Hand a verified call to the connector declaring `hook.name`, and
    /// enqueue the jobs it returns.
    pub async fn take_webhook(
        &self,
        backend: &str,
        hook: &Webhook,
    ) -> Result<Vec<Enqueued>, IntakeError> {
        let b = self
            .backend(backend)
            .await
            .map_err(|e| IntakeError::Failed(e.to_string()))?;
        let mut trail = Trail::default();
        let mut owner = None;
        for adapter in &b.adapters {
            let features = adapter.unit.features(&b.ctx).await.map_err(|e| {
                IntakeError::Failed(format!("reading the features of {}: {e}", adapter.label))
            })?;
            if features.accepts_webhook(&hook.name) {
                owner = Some(adapter);
                break;
            }
        }
        let Some(adapter) = owner else {
            return Err(IntakeError::NotFound(format!(
                "no connector serving backend {backend} takes a webhook named {:?}",
                crate::text::truncate(&crate::text::clean(&hook.name), 80)
            )));
        };
        let report = adapter.unit.on_webhook(&b.ctx, backend, hook).await;
        let requests = match trail.take(report) {
            Ok(requests) => requests,
            Err(CallError::Guest(GuestError::NothingToDo { .. }, _)) => Vec::new(),
            Err(CallError::Guest(
                GuestError::Retryable {
                    after_seconds,
                    message,
                },
                _,
            )) => {
                return Err(IntakeError::Later {
                    after_seconds,
                    message,
                });
            }
            Err(CallError::Guest(
                GuestError::RateLimited {
                    reset_seconds,
                    message,
                },
                _,
            )) => {
                return Err(IntakeError::Later {
                    after_seconds: reset_seconds,
                    message,
                });
            }
            Err(e @ CallError::Guest(..)) => {
                return Err(IntakeError::Refused(format!("{}: {e}", adapter.label)));
            }
            Err(e) => return Err(IntakeError::Failed(format!("{}: {e}", adapter.label))),
        };
        let limit = b.ctx.limits.max_jobs_per_call;
        if requests.len() > limit {
            crate::metrics::global().quota(backend, "jobs-per-call");
            return Err(IntakeError::Refused(format!(
                "the connector returned {} jobs for one webhook call, over the limit of {limit} per call (limits.max_jobs_per_call)",
                requests.len()
            )));
        }
        let quota = Some((&b.ctx.limits).into());
        let specs = requests
            .into_iter()
            .map(|request| {
                crate::capabilities::jobs::admit(backend, &b.ctx.grants, request)
                    .map(|spec| JobSpec { quota, ..spec })
                    .map_err(|reason| {
                        IntakeError::Refused(format!(
                            "a job the connector returned was refused: {reason}"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        self.queue.enqueue_batch(&specs).await.map_err(|e| match e {
            QueueError::Quota { .. } => IntakeError::Later {
                after_seconds: 5,
                message: e.to_string(),
            },
            QueueError::Storage(e) => IntakeError::Failed(e.to_string()),
            other => {
                IntakeError::Refused(format!("a job the connector returned was refused: {other}"))
            }
        })
    }
}
