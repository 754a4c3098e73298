//! The limits a sandboxed call runs under, with defaults an operator can
//! override per backend.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// CPU, memory and output limits of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxLimits {
    /// Wall-clock time for one call, including time spent waiting on host
    /// calls such as HTTP.
    #[serde(with = "millis")]
    #[schema(value_type = u64)]
    pub deadline: Duration,
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Elements one table may grow to.
    pub table_elements: usize,
    /// Optional fuel budget per call (needs `HostConfig::fuel`).
    pub fuel: Option<u64>,
    /// JSON and text a call may return in total.
    pub max_output_bytes: usize,
    /// Log text (guest logs, stdout, stderr) kept per call; the rest is cut.
    pub max_log_bytes: usize,
    /// Host resources (wasi:http header maps, requests, responses, bodies,
    /// streams, pollables) a call may hold at once; the host keeps them in
    /// its own memory, outside the guest's cap.
    pub max_host_resources: usize,
    /// Bytes one wasi:http header map (fields) may hold in the host.
    pub max_header_bytes: usize,
    /// Jobs one call may enqueue.
    pub max_jobs_per_call: usize,
    /// Jobs of the backend's connector (its own and its listener's) that
    /// may be live at once: waiting, pending or running.
    pub max_pending_jobs: u64,
    /// Jobs the backend's connector may enqueue per minute on one node.
    pub max_jobs_per_minute: u32,
    /// Keys the backend's connector may keep in its state.
    pub max_state_keys: u64,
    /// Bytes (keys and values) the backend's connector may keep in its
    /// state.
    pub max_state_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            deadline: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            fuel: None,
            max_output_bytes: 16 << 20,
            max_log_bytes: 64 << 10,
            max_host_resources: 1000,
            max_header_bytes: 64 << 10,
            max_jobs_per_call: 1000,
            max_pending_jobs: 10_000,
            max_jobs_per_minute: 6_000,
            max_state_keys: 10_000,
            max_state_bytes: 16 << 20,
        }
    }
}

/// Limits on a backend's outbound HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EgressLimits {
    pub max_request_body_bytes: u64,
    pub max_response_body_bytes: u64,
    #[serde(with = "millis")]
    #[schema(value_type = u64)]
    pub connect_timeout: Duration,
    /// From sending the request to the last byte of the response.
    #[serde(with = "millis")]
    #[schema(value_type = u64)]
    pub total_timeout: Duration,
    /// Requests in flight at once to this backend, across all calls.
    pub max_concurrent_requests: usize,
    /// Keep connections open between requests and reuse them (per
    /// backend, only for the same checked address).
    pub keep_alive: bool,
    /// Connections kept open while unused, at most (the least recently
    /// used is closed first); with those in use, a backend never holds
    /// more than `max_concurrent_requests + max_idle_connections`.
    pub max_idle_connections: usize,
    /// An unused kept connection is closed after this long.
    #[serde(with = "millis")]
    #[schema(value_type = u64)]
    pub idle_timeout: Duration,
    /// Offer HTTP/2 to `https` servers (ALPN); HTTP/1.1 otherwise.
    pub http2: bool,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            max_request_body_bytes: 8 << 20,
            max_response_body_bytes: 32 << 20,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(60),
            max_concurrent_requests: 8,
            keep_alive: true,
            max_idle_connections: 8,
            idle_timeout: Duration::from_secs(30),
            http2: true,
        }
    }
}

/// A duration as whole milliseconds in configuration files.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
