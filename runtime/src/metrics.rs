//! Process-wide counters for what only happens in memory: guest calls,
//! traps and limit breaches, outbound requests, job durations. The admin
//! API renders them with the gauges it reads from storage (jobs by state,
//! queue lag) as Prometheus text. One registry per process, like the
//! `metrics` crate's global recorder, so that the host, the egress
//! capability and the worker pool count without threading a handle
//! through every call.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the job duration histogram's buckets.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Default)]
struct Inner {
    /// (digest, export, outcome) → calls.
    calls: BTreeMap<(String, String, String), u64>,
    /// (digest, limit) → breaches (deadline, fuel, memory, table, stack).
    breaches: BTreeMap<(String, String), u64>,
    /// (backend, status or "error") → requests that went out.
    requests: BTreeMap<(String, String), u64>,
    /// backend → requests the sandbox refused. By backend only: the host a guest tried is its own choice, and a
    /// label per host would let it grow the series without bound (the
    /// job's audit names the host).
    denied: BTreeMap<String, u64>,
    /// Quota refusals by backend and quota (a fixed set of names).
    quotas: BTreeMap<(String, &'static str), u64>,
    /// Components whose compilation was stopped, by limit (memory, time).
    compiles: BTreeMap<&'static str, u64>,
    /// (function, outcome) → durations.
    jobs: BTreeMap<(String, String), Histogram>,
    /// (backend, opened or reused) → requests.
    connections: BTreeMap<(String, &'static str), u64>,
}

/// The process's counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The process's registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// What a guest call came to, for `junction_sandbox_calls_total`.
#[derive(Debug, Clone, Copy)]
pub enum CallOutcome<'a> {
    Ok,
    /// The guest returned its own error.
    GuestError,
    /// A limit stopped it: `deadline`, `fuel`, `memory`, `table`,
    /// `stack-overflow`.
    Limit(&'a str),
    /// It trapped or broke the contract.
    Trap,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn call(&self, digest: &str, export: &str, outcome: CallOutcome<'_>) {
        self.with(|m| {
            let name = match outcome {
                CallOutcome::Ok => "ok",
                CallOutcome::GuestError => "error",
                CallOutcome::Limit(_) => "limit",
                CallOutcome::Trap => "trap",
            };
            *m.calls
                .entry((digest.into(), export.into(), name.into()))
                .or_default() += 1;
            if let CallOutcome::Limit(limit) = outcome {
                *m.breaches.entry((digest.into(), limit.into())).or_default() += 1;
            }
        });
    }

    /// An outbound request: its status, or `None` when the exchange failed.
    pub fn request(&self, backend: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.with(|m| *m.requests.entry((backend.into(), status)).or_default() += 1);
    }

    /// A guest hit one of its backend's quotas (`quota` is one of the
    /// host's fixed names, never guest text).
    pub fn quota(&self, backend: &str, quota: &'static str) {
        self.with(|m| *m.quotas.entry((backend.into(), quota)).or_default() += 1);
    }

    /// A component's compilation was stopped at `limit` (memory or time).
    pub fn compile_refused(&self, limit: &'static str) {
        self.with(|m| *m.compiles.entry(limit).or_default() += 1);
    }

    /// An outbound request went out on a connection just opened (a TCP
    /// connect, and a TLS handshake for `https`) or on a kept one.
    pub fn connection(&self, backend: &str, reused: bool) {
        let kind = if reused { "reused" } else { "opened" };
        self.with(|m| *m.connections.entry((backend.into(), kind)).or_default() += 1);
    }

    pub fn denied(&self, backend: &str) {
        self.with(|m| *m.denied.entry(backend.into()).or_default() += 1);
    }

    /// A job try ended: `outcome` is done, retry or failed.
    pub fn job(&self, function: &str, outcome: &str, took: Duration) {
        self.with(|m| {
            m.jobs
                .entry((function.into(), outcome.into()))
                .or_default()
                .observe(took.as_secs_f64())
        });
    }

    /// The counters as Prometheus text; `connector` names a digest
    /// (`name`, `version`) for the labels.
    pub fn render(&self, out: &mut String, connector: &dyn Fn(&str) -> (String, String)) {
        self.with(|m| {
            let labels = |digest: &str| {
                let (name, version) = connector(digest);
                format!(
                    "connector=\"{}\",version=\"{}\",digest=\"{}\"",
                    escape(&name),
                    escape(&version),
                    escape(digest)
                )
            };
            header(
                out,
                "junction_sandbox_calls_total",
                "counter",
                "Guest calls by connector, export and outcome (ok, error, limit, trap).",
            );
            for ((digest, export, outcome), n) in &m.calls {
                let _ = writeln!(
                    out,
                    "junction_sandbox_calls_total{{{},export=\"{}\",outcome=\"{}\"}} {n}",
                    labels(digest),
                    escape(export),
                    outcome
                );
            }
            header(
                out,
                "junction_sandbox_traps_total",
                "counter",
                "Guest calls that trapped or broke the contract, by connector.",
            );
            let mut traps: BTreeMap<&str, u64> = BTreeMap::new();
            for ((digest, _, outcome), n) in &m.calls {
                if outcome == "trap" {
                    *traps.entry(digest).or_default() += n;
                }
            }
            for (digest, n) in traps {
                let _ = writeln!(out, "junction_sandbox_traps_total{{{}}} {n}", labels(digest));
            }
            header(
                out,
                "junction_sandbox_limit_breaches_total",
                "counter",
                "Guest calls stopped by a sandbox limit, by connector and limit.",
            );
            for ((digest, limit), n) in &m.breaches {
                let _ = writeln!(
                    out,
                    "junction_sandbox_limit_breaches_total{{{},limit=\"{}\"}} {n}",
                    labels(digest),
                    escape(limit)
                );
            }
            header(
                out,
                "junction_outbound_requests_total",
                "counter",
                "Outbound HTTP requests guests made, by backend and response status (error: no response).",
            );
            for ((backend, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "junction_outbound_requests_total{{backend=\"{}\",status=\"{}\"}} {n}",
                    escape(backend),
                    status
                );
            }
            header(
                out,
                "junction_outbound_connections_total",
                "counter",
                "Outbound requests by backend and the connection they went on: opened (a new connection, with its TLS handshake for https) or reused (kept from an earlier request).",
            );
            for ((backend, kind), n) in &m.connections {
                let _ = writeln!(
                    out,
                    "junction_outbound_connections_total{{backend=\"{}\",connection=\"{kind}\"}} {n}",
                    escape(backend)
                );
            }
            header(
                out,
                "junction_outbound_denied_total",
                "counter",
                "Outbound HTTP requests the sandbox refused, by backend (the job's audit names the host).",
            );
            for (backend, n) in &m.denied {
                let _ = writeln!(
                    out,
                    "junction_outbound_denied_total{{backend=\"{}\"}} {n}",
                    escape(backend)
                );
            }
            header(
                out,
                "junction_quota_refusals_total",
                "counter",
                "Guest requests refused by a quota, by backend and quota.",
            );
            for ((backend, quota), n) in &m.quotas {
                let _ = writeln!(
                    out,
                    "junction_quota_refusals_total{{backend=\"{}\",quota=\"{quota}\"}} {n}",
                    escape(backend)
                );
            }
            header(
                out,
                "junction_compile_refusals_total",
                "counter",
                "Components whose compilation was stopped at a limit (memory, time).",
            );
            for (limit, n) in &m.compiles {
                let _ = writeln!(
                    out,
                    "junction_compile_refusals_total{{limit=\"{limit}\"}} {n}"
                );
            }
            header(
                out,
                "junction_job_duration_seconds",
                "histogram",
                "How long job tries ran on this node, by function and outcome (done, retry, failed).",
            );
            for ((function, outcome), h) in &m.jobs {
                let l = format!(
                    "function=\"{}\",outcome=\"{}\"",
                    escape(function),
                    escape(outcome)
                );
                for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "junction_job_duration_seconds_bucket{{{l},le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "junction_job_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "junction_job_duration_seconds_sum{{{l}}} {}", h.sum);
                let _ = writeln!(
                    out,
                    "junction_job_duration_seconds_count{{{l}}} {}",
                    h.count
                );
            }
        });
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as Prometheus text wants it.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
