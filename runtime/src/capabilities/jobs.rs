//! Capability: `junction:connector/jobs`. A guest enqueues work; the request
//! is validated here so that a bad one is the guest's `permanent` error and
//! nothing half-enqueued reaches the queue.
//!
//! A guest's job always runs for the calling backend ([`admit`]): arguments
//! naming another backend are refused, the identity key is put in the
//! backend's own namespace, the channel must lie in the backend's subtree
//! and the priority may be no better than the operator allows. Listener
//! job requests go through the same [`admit`].

use serde_json::Value;

use super::bindings::jobs::Host;
use super::bindings::types::{Error, JobRequest as WitJobRequest};
use super::store::CallState;
use super::{ServiceError, host_failure};
use crate::grants::Grants;
use crate::model::JobRequest;
use crate::queue::JobSpec;

pub use crate::model::{MAX_ARGS_BYTES, MAX_DESCRIPTION_BYTES};

/// The identity key a guest's `key` becomes: in its backend's namespace,
/// so it can never collapse another backend's job or one of the host's
/// own (`batch:…`, `import:…`).
pub fn guest_identity_key(backend: &str, key: &str) -> String {
    format!("guest:{backend}:{key}")
}

/// Which grant a sync function's `model` needs.
fn direction(function: &str) -> &'static [&'static str] {
    match function {
        crate::model::functions::IMPORT_RECORD
        | crate::model::functions::IMPORT_BATCH
        | crate::model::functions::DELETE_LOCAL => &["import"],
        crate::model::functions::EXPORT_RECORD | crate::model::functions::DELETE_REMOTE => {
            &["export"]
        }
        _ => &[],
    }
}

/// Turn a guest's job request for `backend` into what the queue stores,
/// or say why it is refused (nothing is enqueued then).
pub fn admit(backend: &str, grants: &Grants, request: JobRequest) -> Result<JobSpec, String> {
    request.validate()?;
    let mut request = request;
    let mut args: serde_json::Map<String, Value> =
        serde_json::from_str(&request.args).map_err(|e| format!("job args are not JSON: {e}"))?;
    match args.get("backend") {
        None => {
            args.insert("backend".into(), Value::String(backend.to_string()));
        }
        Some(Value::String(named)) if named == backend => {}
        Some(other) => {
            // Quoted short: the value is the guest's and may be large.
            let other = crate::text::truncate(&other.to_string(), 128);
            return Err(format!(
                "job arguments name backend {other}, but this connector runs for backend {backend:?}: \
                 a connector's jobs always run for its own backend; leave \"backend\" out"
            ));
        }
    }
    if let Some(model) = args.get("model") {
        let Value::String(model) = model else {
            return Err(format!(
                "job argument \"model\" must be a string, not {}",
                crate::text::truncate(&model.to_string(), 128)
            ));
        };
        let ops = direction(&request.function);
        if ops.is_empty() {
            grants.model("jobs.enqueue", model)
        } else {
            grants.model_op("jobs.enqueue", model, ops)
        }
        .map_err(|e| e.0)?;
    }
    request.args = Value::Object(args).to_string();
    let subtree = &grants.channel;
    match &request.channel {
        None => request.channel = Some(subtree.clone()),
        Some(c) if c == subtree || c.starts_with(&format!("{subtree}.")) => {}
        Some(c) => {
            let c = crate::text::truncate(c, 128);
            return Err(format!(
                "job channel {c:?} is outside this backend's channels: use {subtree} or a channel below it \
                 (the operator sets the subtree with the backend's jobs.channel)"
            ));
        }
    }
    match request.priority {
        None => request.priority = Some(grants.min_priority.max(10)),
        Some(p) if p < grants.min_priority => {
            return Err(format!(
                "job priority {p} is better than this backend allows: its jobs may take {} or above \
                 (the operator sets it with the backend's jobs.min_priority)",
                grants.min_priority
            ));
        }
        Some(_) => {}
    }
    if let Some(key) = &request.identity_key {
        if key.is_empty() || key.len() > 256 {
            return Err("job identity key must be 1 to 256 bytes".to_string());
        }
        request.identity_key = Some(guest_identity_key(backend, key));
    }
    Ok(JobSpec {
        request,
        backend: Some(backend.to_string()),
        from_guest: true,
        ..JobSpec::default()
    })
}

impl Host for CallState {
    async fn enqueue(&mut self, request: WitJobRequest) -> wasmtime::Result<Result<String, Error>> {
        let request = JobRequest::from(request);
        // Jobs are rows on the node's disk: one call gets a bounded number.
        if self.jobs_enqueued >= self.ctx.limits.max_jobs_per_call {
            crate::metrics::global().quota(&self.ctx.backend.name, "jobs-per-call");
            return Ok(Err(Error::Permanent(format!(
                "this call already enqueued {} jobs, the limit per call (limits.max_jobs_per_call)",
                self.ctx.limits.max_jobs_per_call
            ))));
        }
        self.jobs_enqueued += 1;
        let spec = match admit(&self.ctx.backend.name, &self.ctx.grants, request) {
            Ok(spec) => JobSpec {
                quota: Some((&self.ctx.limits).into()),
                ..spec
            },
            Err(reason) => return Ok(Err(Error::Permanent(reason))),
        };
        match self.ctx.services.jobs.enqueue(&spec).await {
            Ok(id) => Ok(Ok(id)),
            Err(ServiceError::Rejected(m)) => Ok(Err(Error::Permanent(m))),
            Err(e) => Err(host_failure("jobs", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(args: &str) -> JobRequest {
        JobRequest {
            function: "import-record".into(),
            args: args.into(),
            ..JobRequest::default()
        }
    }

    #[test]
    fn bad_requests_name_the_field() {
        assert!(req("{}").validate().is_ok());
        assert!(req("[]").validate().unwrap_err().contains("JSON object"));
        assert!(req("{").validate().unwrap_err().contains("not JSON"));
        let mut r = req("{}");
        r.eta = Some("tomorrow".into());
        assert!(r.validate().unwrap_err().contains("eta"));
        r.eta = Some("2026-11-29T10:00:00Z".into());
        assert!(r.validate().is_ok());
        r.function = "bad name".into();
        assert!(r.validate().unwrap_err().contains("job function"));
        let mut r = req("{}");
        r.channel = Some("root..shop".into());
        assert!(r.validate().unwrap_err().contains("channel"));
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_ARGS_BYTES));
        assert!(req(&big).validate().unwrap_err().contains("over the limit"));
        let mut r = req("{}");
        r.description = Some("d".repeat(MAX_DESCRIPTION_BYTES + 1));
        assert!(r.validate().unwrap_err().contains("job description"));
    }
}
