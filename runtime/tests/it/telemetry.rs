//! Spans tie the process's work together and reach an OpenTelemetry
//! collector: `junction serve` with `[telemetry] otlp_endpoint` exports, over
//! OTLP/HTTP, a span per job, per guest call and per outbound request, each
//! nested in the one before, with the ids an operator searches by. The
//! collector here is a real OTLP/HTTP endpoint on loopback that decodes
//! what it is sent with the protocol's own types.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::cli::{config_text, free_port, ok, run, serve};

/// A span as received: its ids and its attributes as text.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    attrs: HashMap<String, String>,
    service: String,
}

impl Got {
    fn attr(&self, key: &str) -> &str {
        self.attrs.get(key).map_or("", String::as_str)
    }
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP trace receiver on loopback: every span posted to
/// `/v1/traces`, decoded.
async fn collector() -> (u16, Arc<Mutex<Vec<Got>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body: Bytes = req.into_body().collect().await?.to_bytes();
                            let status = if path != "/v1/traces" {
                                404
                            } else {
                                match ExportTraceServiceRequest::decode(body) {
                                    Ok(request) => {
                                        store.lock().unwrap().extend(spans_of(request));
                                        200
                                    }
                                    Err(_) => 400,
                                }
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, got)
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<Got> {
    let mut out = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for Span {
                name,
                trace_id,
                span_id,
                parent_span_id,
                attributes,
                ..
            } in scope.spans
            {
                out.push(Got {
                    name,
                    trace: trace_id,
                    id: span_id,
                    parent: parent_span_id,
                    attrs: attributes
                        .into_iter()
                        .map(|a| (a.key, text(&a.value)))
                        .collect(),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_guest_calls_and_requests_reach_the_collector_as_nested_spans() {
    let (collector_port, got) = collector().await;
    let shop = super::sync::small_shop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("junction.toml");
    let port = free_port();
    let text = config_text(port, &shop, "root:4").replacen(
        "\n[[backends]]",
        &format!(
            "\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{collector_port}\"\nservice_name = \"junction-test\"\n\n[[backends]]"
        ),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let server = serve(&config).await;
    let c = config.clone();
    tokio::task::spawn_blocking(move || {
        ok(
            &c,
            &["connector", "install", junction_connectors::MAGENTO_PATH],
        );
        let synced = ok(&c, &["sync", "import", "shop", "--direct"]);
        assert!(synced.contains("product: done"), "{synced}");
    })
    .await
    .unwrap();
    // A clean stop sends what is still batched.
    let out = server.stop().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let spans = got.lock().unwrap().clone();
    let named = |name: &'static str| spans.iter().filter(move |s| s.name == name);
    let by_id: HashMap<&[u8], &Got> = spans.iter().map(|s| (s.id.as_slice(), s)).collect();
    let parent_of = |s: &Got| by_id.get(s.parent.as_slice()).copied();
    assert!(
        spans.iter().all(|s| s.service == "junction-test"),
        "service.name is the configured one: {spans:?}"
    );

    // The product model's batch import: a job span with what identifies it.
    let job = named("job")
        .find(|j| {
            j.attr("job.function") == "junction.import-batch" && j.attr("job.backend") == "shop"
        })
        .unwrap_or_else(|| panic!("no span of the shop's import job: {spans:?}"));
    assert!(job.attr("job.id").parse::<i64>().is_ok(), "{job:?}");
    assert_eq!(job.attr("job.outcome"), "done", "{job:?}");
    assert_eq!(job.attr("job.try"), "1", "{job:?}");

    // Its guest calls nest in it and name the component that ran them.
    let calls: Vec<&Got> = named("guest_call")
        .filter(|c| parent_of(c).is_some_and(|p| p.name == "job"))
        .collect();
    assert!(
        calls
            .iter()
            .any(|c| c.attr("guest.export") == "adapter.search"),
        "a search call inside an import job: {spans:?}"
    );
    for call in &calls {
        assert_eq!(call.attr("backend"), "shop", "{call:?}");
        let digest = call.attr("connector.digest");
        assert!(
            digest
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
            "{call:?}"
        );
        assert_eq!(call.attr("guest.outcome"), "ok", "{call:?}");
        assert_eq!(call.trace, parent_of(call).unwrap().trace);
    }

    // The shop's requests nest in the calls that made them, with the host
    // and the answer's status, and never the path.
    let requests: Vec<&Got> = named("http_request")
        .filter(|r| parent_of(r).is_some_and(|p| p.name == "guest_call"))
        .collect();
    assert!(
        !requests.is_empty(),
        "requests inside guest calls: {spans:?}"
    );
    for r in &requests {
        assert_eq!(r.attr("http.method"), "GET", "{r:?}");
        assert_eq!(r.attr("server.address"), "127.0.0.1", "{r:?}");
        assert_eq!(r.attr("http.status"), "200", "{r:?}");
        assert!(!r.attrs.values().any(|v| v.contains("/rest/")), "{r:?}");
        assert_eq!(r.trace, parent_of(r).unwrap().trace, "{r:?}");
    }
    // Those of the import job's calls share the job's trace: one trace per
    // try, from the claim to the backend's answer.
    assert!(
        requests.iter().any(|r| parent_of(r)
            .and_then(&parent_of)
            .is_some_and(|j| j.name == "job" && j.trace == r.trace)),
        "a request two levels inside a job: {spans:?}"
    );

    // The imports a guest calls, from the generated bindings, nest in its
    // calls too.
    assert!(
        named("wit-bindgen import").any(|s| parent_of(s).is_some_and(|p| p.name == "guest_call")),
        "an import span inside a guest call: {:?}",
        spans
            .iter()
            .map(|s| &s.name)
            .collect::<std::collections::BTreeSet<_>>()
    );
}

#[test]
fn a_telemetry_setting_that_cannot_work_stops_serve_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("junction.toml");
    for (setting, says) in [
        (
            "otlp_endpoint = \"https://collector.example.com\"",
            "telemetry.otlp_endpoint",
        ),
        ("sample_ratio = 2.0", "telemetry.sample_ratio"),
        ("filter = \"junction_runtime=loud\"", "telemetry.filter"),
    ] {
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\nadmin_token = \"{}\"\n\n[telemetry]\n{setting}\n",
                super::cli::TOKEN
            ),
        )
        .unwrap();
        let out = run(&config, &["serve"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{setting}: {err}");
        assert!(err.contains(says), "{setting}: {err}");
        assert!(
            !dir.path().join("data").exists(),
            "nothing started for {setting}"
        );
    }
}
