//! Capability: `junction:connector/jobs`. A guest enqueues work; the request
//! is validated here so that a bad one is the guest's `permanent` error and
//! nothing half-enqueued reaches the queue.

use super::{ServiceError, host_failure};
use crate::host::bindings::jobs::Host;
use crate::host::bindings::types::{Error, JobRequest as WitJobRequest};
use crate::host::store::CallState;
use crate::model::JobRequest;

/// Arguments larger than this are refused: jobs carry ids, not payloads.
pub const MAX_ARGS_BYTES: usize = 256 * 1024;

/// Validate a job request; the message names the field.
pub fn validate(request: &JobRequest) -> Result<(), String> {
    let f = &request.function;
    if f.is_empty()
        || f.len() > 128
        || !f
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "job function {f:?} must be 1 to 128 letters, digits, '-', '_' or '.'"
        ));
    }
    if request.args.len() > MAX_ARGS_BYTES {
        return Err(format!(
            "job args are {} bytes, over the limit of {MAX_ARGS_BYTES}",
            request.args.len()
        ));
    }
    match serde_json::from_str::<serde_json::Value>(&request.args) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => return Err("job args must be a JSON object".to_string()),
        Err(e) => return Err(format!("job args are not JSON: {e}")),
    }
    if let Some(eta) = &request.eta {
        crate::model::parse_timestamp(eta).map_err(|r| format!("job eta {r}"))?;
    }
    if let Some(channel) = &request.channel
        && (channel.is_empty() || channel.split('.').any(str::is_empty))
    {
        return Err(format!(
            "job channel {channel:?} must be dot-separated names such as root.shop"
        ));
    }
    Ok(())
}

impl Host for CallState {
    async fn enqueue(&mut self, request: WitJobRequest) -> wasmtime::Result<Result<String, Error>> {
        let request = JobRequest::from(request);
        if let Err(reason) = validate(&request) {
            return Ok(Err(Error::Permanent(reason)));
        }
        match self
            .ctx
            .services
            .jobs
            .enqueue(&self.ctx.backend.name, &request)
            .await
        {
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
        assert!(validate(&req("{}")).is_ok());
        assert!(validate(&req("[]")).unwrap_err().contains("JSON object"));
        assert!(validate(&req("{")).unwrap_err().contains("not JSON"));
        let mut r = req("{}");
        r.eta = Some("tomorrow".into());
        assert!(validate(&r).unwrap_err().contains("eta"));
        r.eta = Some("2026-11-29T10:00:00Z".into());
        assert!(validate(&r).is_ok());
        r.function = "bad name".into();
        assert!(validate(&r).unwrap_err().contains("job function"));
        let mut r = req("{}");
        r.channel = Some("root..shop".into());
        assert!(validate(&r).unwrap_err().contains("channel"));
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_ARGS_BYTES));
        assert!(validate(&req(&big)).unwrap_err().contains("over the limit"));
    }
}
