//! Jobs as the queue's users name them. The types are the storage's
//! vocabulary (`storage::types`: storage holds jobs and must not depend on
//! the queue that runs them); this module re-exports them where callers
//! look for them.

pub use crate::storage::types::{
    Acted, Completion, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine,
    JobState, NewJob, Outcome, Parent, local_record_key, record_key, remote_record_key,
};
