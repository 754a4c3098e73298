//! Tying process logs to work: the spans the runtime opens, and their
//! optional export to an OpenTelemetry collector over OTLP.
//!
//! Spans, each a child of the one before when they nest:
//! - `job` (`queue::dispatch`): one try of a job — `job.id`,
//!   `job.function`, `job.backend`, `job.try`, `job.channel`, and the
//!   `job.outcome` once it ended (`done`, `retry`, `failed`);
//! - `guest_call` (`host::call`): one export of a component —
//!   `guest.export`, `backend`, `connector.digest`, and `guest.outcome`
//!   (`ok` or the error's kind);
//! - `wit-bindgen import` (generated with the bindings): each
//!   `junction:connector` import a guest calls, at TRACE level;
//! - `http_request` (`capabilities::egress`): one outbound request of a
//!   guest — `http.method`, `server.address` (the host it asked for),
//!   `http.status` or `error` (its backend is its call's).
//!
//! Attributes carry ids and names the host checked (job ids, function and
//! backend names, digests, export names, methods); never a request's path,
//! headers or body, nor a guest's log text.
//!
//! Export is off unless `junction.toml` has `[telemetry] otlp_endpoint`:
//! spans then go, batched on the tokio runtime, to
//! `<otlp_endpoint>/v1/traces` as OTLP over HTTP (protobuf). The stderr log
//! keeps its own filter (`JUNCTION_LOG`); the export has `filter`.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};

/// `[telemetry]` in `junction.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL, such as
    /// `http://127.0.0.1:4318`; spans are posted to `/v1/traces` under it.
    /// Unset: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// The share of traces kept (0 to 1); a job's spans are kept or
    /// dropped together.
    pub sample_ratio: f64,
    /// Which spans are exported, in `JUNCTION_LOG`'s syntax.
    pub filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "junction".to_string(),
            sample_ratio: 1.0,
            filter: DEFAULT_FILTER.to_string(),
        }
    }
}

/// The runtime's own spans, and the bindings' spans of each import a guest
/// calls (TRACE).
pub const DEFAULT_FILTER: &str =
    "junction_runtime=info,junction_runtime::capabilities::bindings=trace";

/// A `[telemetry]` setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.{key}: {reason}")]
pub struct TelemetryError {
    pub key: &'static str,
    pub reason: String,
}

impl TelemetryConfig {
    /// Check every setting; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        let bad = |key, reason: String| Err(TelemetryError { key, reason });
        if let Some(endpoint) = &self.otlp_endpoint {
            let uri: http::Uri = match endpoint.parse() {
                Ok(uri) => uri,
                Err(e) => {
                    return bad(
                        "otlp_endpoint",
                        format!("{endpoint:?} is not a URL ({e}); write it as http://host:4318"),
                    );
                }
            };
            match uri.scheme_str() {
                Some("http") => {}
                Some("https") => {
                    return bad(
                        "otlp_endpoint",
                        format!(
                            "{endpoint:?}: only http:// is spoken; send to an OpenTelemetry Collector beside the node (http://127.0.0.1:4318), which forwards over TLS"
                        ),
                    );
                }
                _ => {
                    return bad(
                        "otlp_endpoint",
                        format!("{endpoint:?} must start with http://"),
                    );
                }
            }
            if uri.host().is_none_or(str::is_empty) {
                return bad("otlp_endpoint", format!("{endpoint:?} names no host"));
            }
            if uri.query().is_some() {
                return bad(
                    "otlp_endpoint",
                    format!("{endpoint:?}: give the base URL only; /v1/traces is added"),
                );
            }
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 128 {
            return bad(
                "service_name",
                "must be 1 to 128 characters, such as \"junction\"".to_string(),
            );
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return bad(
                "sample_ratio",
                format!(
                    "{} is not between 0 and 1; 1 keeps every trace",
                    self.sample_ratio
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.filter) {
            return bad(
                "filter",
                format!("{e}; write it like JUNCTION_LOG, such as \"{DEFAULT_FILTER}\""),
            );
        }
        Ok(())
    }

    /// Where spans are posted.
    pub fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_ref()
            .map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
    }
}

/// The export pipeline of a node, flushed by [`Export::shutdown`].
pub struct Export {
    provider: SdkTracerProvider,
}

impl Export {
    /// Build the exporter for `config` (`None` when export is off). Must
    /// run inside the tokio runtime: batches are sent from a task on it.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Export>, TelemetryError> {
        config.validate()?;
        let Some(url) = config.traces_url() else {
            return Ok(None);
        };
        let client = opentelemetry_http::hyper::HyperClient::with_default_connector(
            Duration::from_secs(10),
            None,
        );
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelemetryError {
                key: "otlp_endpoint",
                reason: format!("the exporter could not be built: {e}"),
            })?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .build();
        Ok(Some(Export { provider }))
    }

    /// The `tracing` layer that hands spans to the exporter, filtered by
    /// `config.filter`.
    pub fn layer<S>(&self, config: &TelemetryConfig) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        use tracing_subscriber::Layer as _;
        let filter = tracing_subscriber::EnvFilter::builder()
            .parse(&config.filter)
            .unwrap_or_else(|_| DEFAULT_FILTER.into());
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("junction"))
            .with_filter(filter)
    }

    /// Send what is still batched and stop.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("telemetry: the last spans could not be exported: {e}");
        }
    }
}
