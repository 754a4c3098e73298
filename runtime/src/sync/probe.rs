//! The circuit breaker's probe (`junction.probe-backend`, see
//! `queue::breaker`): the backend's `check`, run once an open breaker's
//! cool-down is over. Success closes the breaker and the backend's jobs
//! are claimed again; failure keeps it open twice as long (up to the
//! backend's `max_cool_down`). The probe job itself always ends done, its
//! result saying which.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::Synchronizer;
use crate::queue::job::Job;
use crate::queue::now_ms;
use crate::queue::worker::{Handled, Handler, JobFailure};

pub(crate) struct ProbeHandler {
    pub sync: Arc<Synchronizer>,
}

#[async_trait]
impl Handler for ProbeHandler {
    async fn run(&self, job: &Job) -> Handled {
        let backend = serde_json::from_str::<serde_json::Value>(&job.args)
            .ok()
            .and_then(|v| v["backend"].as_str().map(str::to_string));
        let Some(backend) = backend else {
            return Handled::failed(JobFailure::fail(
                "invalid-args",
                "a probe's arguments name the backend: {\"backend\": \"name\"}",
            ));
        };
        let queue = &self.sync.queue;
        let storage = queue.storage();
        let outcome = match self.sync.check_backend(&backend).await {
            Ok((line, _)) => match storage.close_breaker(&backend).await {
                Ok(_) => {
                    tracing::info!(backend, "probe succeeded: the circuit breaker is closed");
                    Ok(json!({"closed": true, "check": line}))
                }
                Err(e) => Err(e),
            },
            Err(e) => {
                let max = queue.breakers.config(&backend).max_cool_down.as_millis() as i64;
                let reason = crate::queue::breaker::reason(&format!("probe failed: {e}"));
                tracing::warn!(backend, %reason, "the circuit breaker stays open");
                storage
                    .breaker_probe_failed(&backend, &reason, now_ms(), max)
                    .await
                    .map(|()| json!({"closed": false, "error": reason}))
            }
        };
        match outcome {
            Ok(result) => {
                if let Ok(open) = storage.breakers().await {
                    queue.breakers.refresh(&open);
                }
                queue.wake.notify_one();
                Handled::done(Some(result.to_string()))
            }
            Err(e) => Handled::failed(JobFailure::retry("storage", e.to_string())),
        }
    }
}
