//! What the guest calls of one sync job leave behind — log lines and the
//! HTTP audit of every call, in order — and how a call's error becomes the
//! job's outcome, with the step that failed named in the message.

use crate::capabilities::egress::AuditEntry;
use crate::error::{CallError, GuestError};
use crate::host::{CallReport, LogLine};
use crate::queue::worker::{Handled, JobFailure};

#[derive(Debug, Default)]
pub struct Trail {
    pub log: Vec<LogLine>,
    pub audit: Vec<AuditEntry>,
    /// The component the job ran (its adapter's).
    pub digest: Option<String>,
}

impl Trail {
    /// Keep a call's log and audit; return its result.
    pub fn take<T>(&mut self, report: CallReport<T>) -> Result<T, CallError> {
        self.log.extend(report.log);
        self.audit.extend(report.audit);
        report.result
    }

    /// Append another trail (of a task run alongside).
    pub fn absorb(&mut self, other: Trail) {
        self.log.extend(other.log);
        self.audit.extend(other.audit);
    }

    /// Keep a call's trail; a failure becomes the job's, prefixed with
    /// `step` (what the synchronizer was doing).
    pub fn call<T>(&mut self, step: &str, report: CallReport<T>) -> Result<T, JobFailure> {
        self.take(report).map_err(|e| failure(step, &e))
    }

    /// Like [`Trail::call`], but the guest saying there was nothing to do
    /// is `None`, not a failure.
    pub fn call_unless_nothing_to_do<T>(
        &mut self,
        step: &str,
        report: CallReport<T>,
    ) -> Result<Option<T>, JobFailure> {
        match self.take(report) {
            Ok(v) => Ok(Some(v)),
            Err(e) if nothing_to_do(&e).is_some() => Ok(None),
            Err(e) => Err(failure(step, &e)),
        }
    }

    /// The job's outcome. The guest saying there was nothing to do, at
    /// any step, ends the job done, its result saying why (OCA's
    /// `NothingToDoJob`): it is not a failure and is never retried.
    pub fn into_handled(self, result: Result<String, JobFailure>) -> Handled {
        let result = match result {
            Err(JobFailure::Fail { kind, message }) if kind == NOTHING_TO_DO => {
                Ok(format!("skipped: {message}"))
            }
            other => other,
        };
        Handled {
            result: Some(result.map(Some)),
            log: self.log,
            audit: self.audit,
            connector_digest: self.digest,
        }
    }
}

/// A call's error as the job's failure, its message prefixed with `step`.
/// The guest saying there was nothing to do reads as that, not as an
/// error, since the job will end done with it.
pub fn failure(step: &str, e: &CallError) -> JobFailure {
    if let Some(reason) = nothing_to_do(e) {
        return JobFailure::fail(NOTHING_TO_DO, format!("{step}: nothing to do: {reason}"));
    }
    prefixed(step, JobFailure::from(e))
}

/// Put `step: ` in front of a failure's message.
pub fn prefixed(step: &str, f: JobFailure) -> JobFailure {
    match f {
        JobFailure::Retry {
            after,
            count_try,
            kind,
            message,
        } => JobFailure::Retry {
            after,
            count_try,
            kind,
            message: format!("{step}: {message}"),
        },
        JobFailure::Fail { kind, message } => JobFailure::Fail {
            kind,
            message: format!("{step}: {message}"),
        },
    }
}

/// The kind of a failure that is the guest saying there was nothing to
/// do (`GuestError::NothingToDo`).
const NOTHING_TO_DO: &str = "nothing-to-do";

/// Whether a failure is the guest saying there was nothing to do.
pub fn declined(f: &JobFailure) -> bool {
    matches!(f, JobFailure::Fail { kind, .. } if kind == NOTHING_TO_DO)
}

/// Whether a call's error is the guest saying there was nothing to do.
pub fn nothing_to_do(e: &CallError) -> Option<&str> {
    match e {
        CallError::Guest(GuestError::NothingToDo { message }, _) => Some(message),
        _ => None,
    }
}
