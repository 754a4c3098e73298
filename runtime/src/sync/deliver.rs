//! `junction.deliver`: one connector listener hearing one event, as a job
//! of its own.
//!
//! The dispatcher never calls a guest. For every guest listener that hears
//! an event (its manifest's pattern, the operator's event and model grants,
//! not the event's own origin) it enqueues one delivery job in the
//! backend's channel, in the transaction that marks the event dispatched.
//! The guest runs here, on a worker, so a listener that fails, panics or
//! loops until its deadline costs its own backend's worker share and
//! nothing else: other backends' deliveries run beside it; its failed
//! tries come back with the queue's back-off, at most `LISTENER_TRIES`
//! times, and then stay failed (the dead letter an operator can inspect,
//! requeue or cancel). The backend's units are resolved when the job runs,
//! so a reconfigured backend's listener decides with its new settings and
//! grants.

use super::trail::Trail;
use super::{BackendUnits, Synchronizer, storage_failure};
use crate::grants::Grants;
use crate::queue::worker::JobFailure;
use crate::queue::{JobSpec, QueueError};
use crate::storage::StoredEvent;

pub use crate::events::delivery::{DELIVER, LISTENER_TRIES, delivery, hears};

/// What `listening` records for a backend heard on behalf of a listener
/// not resolved yet.
pub(crate) const UNRESOLVED: &str = "unresolved";

/// The listener of a backend that cannot be resolved now: every event
/// but the backend's own becomes a delivery job, which waits (spending no
/// try) until the backend resolves and then lets its real listener decide.
pub(crate) struct UnresolvedListener {
    pub backend: String,
    pub grants: Grants,
}

#[async_trait::async_trait]
impl crate::events::Listener for UnresolvedListener {
    fn name(&self) -> String {
        format!("{} (unresolved)", self.backend)
    }

    async fn on_event(
        &self,
        stored: &StoredEvent,
    ) -> Result<Vec<JobSpec>, crate::events::ListenerError> {
        if stored.event.origin_backend.as_deref() == Some(self.backend.as_str()) {
            return Ok(Vec::new());
        }
        Ok(vec![delivery(&self.backend, &self.grants, stored)])
    }
}

impl Synchronizer {
    /// Ask `backend`'s listener which jobs `stored` causes, admitted as
    /// its own jobs (`jobs::admit`); nothing when it no longer hears it.
    /// A refused job fails the whole delivery: none of its jobs is kept.
    pub async fn decide_event(
        &self,
        backend: &BackendUnits,
        stored: &StoredEvent,
        trail: &mut Trail,
    ) -> Result<Vec<JobSpec>, JobFailure> {
        let name = backend.name();
        // Each connector serving the backend whose listener hears it
        // decides, in turn; a failure of one fails (and retries) the whole
        // delivery, whose jobs collapse by identity key when repeated.
        let mut requests = Vec::new();
        for adapter in &backend.adapters {
            if !hears(name, &adapter.listens, &backend.ctx.grants, &stored.event) {
                continue;
            }
            requests.extend(
                trail.call(
                    &format!("deciding on the event ({})", adapter.label),
                    adapter
                        .unit
                        .on_event(&backend.ctx, name, &stored.event)
                        .await,
                )?,
            );
        }
        let limit = backend.ctx.limits.max_jobs_per_call;
        if requests.len() > limit {
            crate::metrics::global().quota(name, "jobs-per-call");
            return Err(JobFailure::fail(
                "limit",
                format!(
                    "the listener returned {} jobs for one event, over the limit of {limit} per call (limits.max_jobs_per_call)",
                    requests.len()
                ),
            ));
        }
        let quota = Some((&backend.ctx.limits).into());
        requests
            .into_iter()
            .map(|request| {
                crate::capabilities::jobs::admit(name, &backend.ctx.grants, request)
                    .map(|spec| JobSpec { quota, ..spec })
                    .map_err(|reason| {
                        JobFailure::fail(
                            "refused",
                            format!("a job the listener returned was refused: {reason}"),
                        )
                    })
            })
            .collect()
    }

    /// The delivery job's work: decide, then enqueue the jobs in one batch.
    pub(crate) async fn deliver(
        &self,
        backend: &BackendUnits,
        event_id: i64,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        let Some(stored) = self
            .storage
            .event(event_id)
            .await
            .map_err(storage_failure)?
        else {
            return Err(JobFailure::fail(
                "event-gone",
                format!("event {event_id} is no longer in the outbox"),
            ));
        };
        let specs = self.decide_event(backend, &stored, trail).await?;
        if specs.is_empty() {
            return Ok("no jobs".to_string());
        }
        match self.queue.enqueue_batch(&specs).await {
            Ok(enqueued) => Ok(format!(
                "enqueued {}",
                enqueued
                    .iter()
                    .map(|e| e.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(QueueError::Storage(e)) => Err(storage_failure(e)),
            // The backend's quota frees up as its jobs finish: try later.
            Err(e @ QueueError::Quota { .. }) => Err(JobFailure::retry("quota", e.to_string())),
            Err(e) => Err(JobFailure::fail(
                "refused",
                format!("a job the listener returned was refused: {e}"),
            )),
        }
    }
}

/// The dead events: deliveries that failed for good (of one backend, or
/// of all). Counting them reads the failed jobs' index alone.
pub fn dead(backend: Option<&str>) -> crate::queue::job::JobFilter {
    crate::queue::job::JobFilter {
        state: Some(crate::queue::job::JobState::Failed),
        function: Some(DELIVER.to_string()),
        backend: backend.map(str::to_string),
        ..Default::default()
    }
}
