//! Which guest listeners hear an event, and the `junction.deliver` job
//! each one gets (the synchronizer runs it: `sync::deliver`). Here rather
//! than in the synchronizer because the bus routes events with it, and the
//! bus must not depend on the synchronizer.

use serde_json::json;

use super::pattern_matches;
use crate::grants::Grants;
use crate::model::{Event, JobRequest};
use crate::queue::JobSpec;
use crate::storage::StoredEvent;

pub const DELIVER: &str = "junction.deliver";

/// Tries one delivery gets before it is left failed (dead-lettered).
pub const LISTENER_TRIES: u32 = 8;

/// Whether `backend`'s listener, asking for `patterns`, hears `event`.
pub fn hears(backend: &str, patterns: &[String], grants: &Grants, event: &Event) -> bool {
    // The "no export" marker: a change imported from this backend is never
    // sent back to it. The listener hears only what its manifest asks for
    // and the operator granted: the event's pattern and its model.
    event.origin_backend.as_deref() != Some(backend)
        && patterns.iter().any(|p| pattern_matches(p, event))
        && grants.event(event)
}

/// The delivery job of `stored` to `backend`'s listener.
pub fn delivery(backend: &str, grants: &Grants, stored: &StoredEvent) -> JobSpec {
    let event = &stored.event;
    JobSpec {
        request: JobRequest {
            function: DELIVER.to_string(),
            args: json!({"backend": backend, "model": event.model, "event": stored.id}).to_string(),
            channel: Some(grants.channel.clone()),
            priority: Some(grants.min_priority.max(10)),
            // One live delivery per event and backend, even if the
            // dispatch of the event is repeated.
            identity_key: Some(format!("deliver:{backend}:{}", stored.id)),
            max_retries: Some(LISTENER_TRIES),
            description: Some(format!(
                "event {} ({}:{}) to the listener of {backend}",
                stored.id,
                crate::text::truncate(&event.name, 128),
                crate::text::truncate(&event.model, 128),
            )),
            eta: None,
        },
        backend: Some(backend.to_string()),
        ..JobSpec::default()
    }
}
