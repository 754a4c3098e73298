//! The admin API through `app()` and `oneshot`, no socket: auth on every
//! route but health, the OpenAPI document matching the router, the JSON
//! error shape, pagination, jobs, records, bindings, connector versions
//! (pinning, refusal, activation, rollback) and the Prometheus metrics.

use std::collections::HashSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use junction_demo_shop::Faults;
use junction_runtime::api::{ApiState, app};
use junction_runtime::queue::job::JobState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::sync::{World, import, world};

pub(crate) const TOKEN: &str = "test-admin-token-0123456789";

/// A component with the same code and another digest, as a rebuild
/// gives: `bytes` with a custom section appended.
pub(crate) fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"junction-build";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub(crate) fn router(w: &World) -> Router {
    app(ApiState::new(&w.node, TOKEN, None))
}

/// One request; the status and the body as JSON (text bodies as a JSON
/// string).
pub(crate) async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some((ct, bytes)) => req.header("content-type", ct).body(Body::from(bytes)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub(crate) async fn get(app: &Router, path: &str) -> Value {
    let (status, v) = call(app, "GET", path, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
    v
}

pub(crate) async fn post(app: &Router, path: &str, body: Value) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        path,
        Some(TOKEN),
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await
}

fn assert_error_shape(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty() && !message.ends_with('.'), "{v}");
}

/// Every route and method the OpenAPI document lists, with sample path
/// parameters.
fn documented() -> Vec<(String, String, bool)> {
    let doc: Value = serde_json::from_str(junction_runtime::api::openapi_json()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let open = op["security"] == json!([]);
            let path = path
                .replace("{digest}", "sha256:00")
                .replace("{name}", "nowhere")
                .replace("{id}", "999999")
                .replace("{model}", "product");
            out.push((method.to_uppercase(), path, open));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_the_admin_token() {
    let w = world().await;
    let app = router(&w);
    let routes = documented();
    assert!(routes.len() >= 25, "{routes:?}");
    for (method, path, open) in &routes {
        for token in [None, Some("wrong-token")] {
            let (status, v) = call(&app, method, path, token, None).await;
            if path.starts_with("/hooks/") {
                // Backends call it, signed with their secret instead (and
                // it is off until the node's configuration turns it on).
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {v}");
                assert_error_shape(&v, "webhooks_off");
            } else if *open {
                assert_eq!(status, StatusCode::OK, "{method} {path} is open: {v}");
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
                assert_error_shape(&v, "unauthorized");
            }
        }
    }
    // The dashboard's shell holds no data and loads without a token.
    let (status, page) = call(&app, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("Admin token"));
    // Unknown routes answer the same error shape.
    let (status, v) = call(&app, "GET", "/api/v1/nothing", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_router() {
    let w = world().await;
    let app = router(&w);
    let doc = get(&app, "/api/v1/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(junction_runtime::api::openapi_json()).unwrap(),
        "the served document is the generated one"
    );
    for (method, path, _) in documented() {
        let body = (method == "POST").then(|| ("application/json", b"{}".to_vec()));
        let (status, v) = call(&app, &method, &path, Some(TOKEN), body).await;
        // A documented route may refuse the sample input, but it exists:
        // never the router's fallback, never "method not allowed".
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.starts_with("no such route"),
            "{method} {path} is documented but not routed"
        );
    }
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_operation_has_typed_schemas() {
    let doc: Value = serde_json::from_str(junction_runtime::api::openapi_json()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut count = 0;
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let name = format!("{} {path}", method.to_uppercase());
            // Client generators name their functions after these.
            assert!(
                operation_ids.insert(op["operationId"].as_str().unwrap().to_string()),
                "{name}: operationId {} is not unique",
                op["operationId"]
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name} has no summary"
            );
            // The error shape answers whatever is not listed.
            assert_eq!(
                op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{name}"
            );
            let ok: Vec<(&String, &Value)> = op["responses"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(code, _)| code.starts_with('2'))
                .collect();
            assert_eq!(ok.len(), 1, "{name} documents one success: {ok:?}");
            let content = &ok[0].1["content"];
            if let Some(schema) = content["application/json"]["schema"].as_object() {
                // A named type (or a list of one), never a bare object:
                // clients generate their types from these. The document
                // itself is the one free-form answer.
                let typed = schema.contains_key("$ref")
                    || schema.contains_key("properties")
                    || path == "/api/v1/openapi.json";
                assert!(typed, "{name} answers an untyped {schema:?}");
            } else {
                assert!(
                    content["text/plain"].is_object(),
                    "{name} answers neither JSON nor text: {content}"
                );
            }
            if let Some(body) = op["requestBody"].as_object() {
                let schemas: Vec<&Value> = body["content"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|c| &c["schema"])
                    .collect();
                assert!(
                    schemas.iter().all(|s| s["$ref"].is_string()),
                    "{name} takes an untyped body: {body:?}"
                );
            }
            if method == "post" || method == "put" {
                let takes_json = op["requestBody"]["content"]["application/json"].is_object();
                let takes_bytes = op["requestBody"]["content"]["application/wasm"].is_object();
                let takes_nothing = op["requestBody"].is_null();
                assert!(takes_json || takes_bytes || takes_nothing, "{name}");
            }
        }
    }
    assert!(count >= 42, "{count} operations");
    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas.contains_key(name), "{r} is not defined");
    }
    // The wire types carry their doc comments into the document.
    assert!(
        schemas["JobView"]["properties"]["eta"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Unix milliseconds")),
        "{}",
        schemas["JobView"]
    );
    assert_eq!(
        doc["paths"]["/health"]["get"]["security"],
        json!([]),
        "/health is open"
    );
    assert_eq!(
        doc["paths"]["/api/v1/jobs"]["get"]["security"],
        json!([{"bearer": []}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_jobs_records_and_bindings_through_the_api() {
    let w = world().await;
    let app = router(&w);
    let health = call(&app, "GET", "/health", None, None).await.1;
    assert_eq!(health["status"], "ok");

    let (status, started) = post(
        &app,
        "/api/v1/sync/import",
        json!({"backend": "shop", "direct": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let models: Vec<&str> = started["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["category", "product", "customer", "order"],
        "dependency order"
    );
    w.settle().await;

    let nodes = get(&app, "/api/v1/nodes").await;
    assert_eq!(nodes["items"][0]["name"], "node-a");
    assert_eq!(nodes["items"][0]["status"], "alive", "{nodes}");

    let backends = get(&app, "/api/v1/backends").await;
    let shop = &backends["items"][0];
    assert_eq!(shop["bindings"]["product"], 40);
    assert_eq!(shop["units"]["adapter"], "magento 0.1.0");
    assert_eq!(
        shop["config"]["auth"]["token"], "***",
        "secrets never leave"
    );
    let check = post(&app, "/api/v1/backends/shop/check", json!({})).await.1;
    assert_eq!(check["ok"], true, "{check}");

    // Pages of two jobs, newest first, never overlapping.
    let first = get(&app, "/api/v1/jobs?state=done&limit=2").await;
    let cursor = first["next"].as_str().expect("a next cursor");
    let second = get(
        &app,
        &format!("/api/v1/jobs?state=done&limit=2&cursor={cursor}"),
    )
    .await;
    let ids = |p: &Value| -> Vec<i64> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&first).len(), 2);
    assert!(ids(&second).iter().all(|id| *id < ids(&first)[1]));
    let bad = call(
        &app,
        "GET",
        "/api/v1/jobs?state=sleeping",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert_error_shape(&bad.1, "bad_request");
    assert!(
        bad.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed")
    );

    let job = get(&app, &format!("/api/v1/jobs/{}", started["jobs"][1]["id"])).await;
    assert_eq!(job["job"]["args"]["model"], "product");
    assert!(
        job["job"]["connector_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        !job["audit"].as_array().unwrap().is_empty(),
        "outbound requests recorded"
    );
    assert_eq!(job["graph"][0]["relation"], "parent", "{job}");

    let records = get(&app, "/api/v1/records/product?limit=5").await;
    assert_eq!(records["items"].as_array().unwrap().len(), 5);
    let id = records["items"][0]["id"].as_str().unwrap();
    let one = get(&app, &format!("/api/v1/records/product/{id}")).await;
    assert!(one["data"]["sku"].is_string(), "{one}");
    let bindings = get(&app, "/api/v1/bindings?backend=shop&model=order&limit=500").await;
    assert_eq!(bindings["items"].as_array().unwrap().len(), 15);
    assert!(bindings["next"].is_null());

    // Export through the API: the job goes through.
    let (status, export) = post(
        &app,
        "/api/v1/sync/export",
        json!({"backend": "shop", "model": "product", "local_id": id}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{export}");
    let (status, v) = post(
        &app,
        "/api/v1/sync/export",
        json!({"backend": "shop", "model": "product", "local_id": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
    let (status, v) = post(
        &app,
        "/api/v1/sync/import",
        json!({"backend": "shop", "model": "invoice"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("imports category, product"),
        "{v}"
    );
    w.settle().await;
    assert!(w.failed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_are_requeued_cancelled_and_marked_done() {
    let w = world().await;
    let app = router(&w);
    w.run(vec![import("product", "NO-SUCH-SKU")]).await;
    let failed = get(&app, "/api/v1/jobs?state=failed").await;
    let id = failed["items"][0]["id"].as_i64().unwrap();
    let shown = get(&app, &format!("/api/v1/jobs/{id}")).await;
    assert!(
        shown["job"]["error_message"]
            .as_str()
            .unwrap()
            .contains("gone from the backend"),
        "{shown}"
    );

    let (status, v) = post(&app, &format!("/api/v1/jobs/{id}/requeue"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    w.settle().await;
    let (status, v) = post(&app, &format!("/api/v1/jobs/{id}/done"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "done");
    let (status, v) = post(&app, &format!("/api/v1/jobs/{id}/cancel"), json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a done job cannot be cancelled"
    );
    assert_error_shape(&v, "wrong_state");
    // Enqueue through the API: all or nothing, unknown functions named.
    let (status, v) = post(
        &app,
        "/api/v1/jobs",
        json!({"jobs": [
        {"function": "junction.noop"}, {"function": "junction.nothing"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("junction.nothing"),
        "{v}"
    );
    let (status, v) = post(&app, "/api/v1/jobs", json!({"jobs": [
        {"function": "junction.sleep", "args": {"ms": 1}, "channel": "root", "description": "nap"}]})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    w.settle().await;
    let nap = get(&app, &format!("/api/v1/jobs/{}", v["jobs"][0]["id"])).await;
    assert_eq!(nap["job"]["state"], "done", "{nap}");
    let (status, v) = post(&app, "/api/v1/jobs/424242/requeue", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&v, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_versions_are_pinned_refused_activated_and_rolled_back() {
    let w = world().await;
    let app = router(&w);
    let list = get(&app, "/api/v1/connectors").await;
    let active: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["active"] == true)
        .collect();
    assert_eq!(active.len(), 2);
    let original = digest(junction_connectors::MAGENTO);
    let next = rebuilt(junction_connectors::MAGENTO, "next");
    let wasm = |b: &[u8]| Some(("application/wasm", b.to_vec()));

    // Pinned by sha256: a different upload is refused and nothing changes.
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/connectors?sha256=00ff",
        Some(TOKEN),
        wasm(&next),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_shape(&v, "digest_mismatch");
    // Not a connector: refused with the reason.
    let broken = std::fs::read(junction_test_artifacts::BROKEN_DESCRIBE).unwrap();
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/connectors",
        Some(TOKEN),
        wasm(&broken),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (status, report) = call(&app, "POST", "/api/v1/inspect", Some(TOKEN), wasm(&next)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["digest"], digest(&next).as_str());
    assert_eq!(report["manifest"]["name"], "magento");
    let (status, v) = call(&app, "POST", "/api/v1/inspect", Some(TOKEN), wasm(&broken)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("describe failed"),
        "{v}"
    );
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/connectors",
        Some(TOKEN),
        wasm(b"not wasm"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error_shape(&v, "not_a_connector");

    // A version whose check fails against the configured backend is
    // refused; the old one keeps serving.
    w.shop.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let pinned = format!(
        "/api/v1/connectors?sha256={}",
        digest(&next).trim_start_matches("sha256:")
    );
    let (status, v) = call(&app, "POST", &pinned, Some(TOKEN), wasm(&next)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_error_shape(&v, "refused");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check against backend \"shop\" failed"),
        "{v}"
    );
    let shop = get(&app, "/api/v1/backends/shop").await;
    assert_eq!(shop["units"]["adapter_digest"], original.as_str());
    w.shop.set_faults(Faults::default());

    // Installed (inactive) by the refused attempt; activating it now works.
    let (status, v) = post(
        &app,
        &format!("/api/v1/connectors/{}/activate", &digest(&next)[..20]),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["active"], true);
    let shop = get(&app, "/api/v1/backends/shop").await;
    assert_eq!(shop["units"]["adapter_digest"], digest(&next).as_str());
    // The active version cannot be removed.
    let (status, v) = call(
        &app,
        "DELETE",
        &format!("/api/v1/connectors/{}", digest(&next)),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let (status, v) = post(
        &app,
        "/api/v1/connectors/rollback",
        json!({"name": "magento"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["digest"], original.as_str());
    let shop = get(&app, "/api/v1/backends/shop").await;
    assert_eq!(shop["units"]["adapter_digest"], original.as_str());
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/connectors/{}", digest(&next)),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = post(
        &app,
        "/api/v1/connectors/rollback",
        json!({"name": "magento"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing earlier to go back to: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let w = world().await;
    w.import_all().await;
    w.run(vec![import("product", "NO-SUCH-SKU")]).await;
    let app = router(&w);
    let (status, text) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let names: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "junction_jobs",
        "junction_sandbox_calls_total",
        "junction_outbound_requests_total",
        "junction_job_duration_seconds_count",
    ] {
        assert!(names.contains(name), "{name} missing from:\n{text}");
    }
    let failed = scrape
        .samples
        .iter()
        .find(|s| s.metric == "junction_jobs" && s.labels.get("state") == Some("failed"))
        .expect("failed jobs counted");
    assert!(matches!(failed.value, prometheus_parse::Value::Gauge(n) if n >= 1.0));
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "junction_sandbox_calls_total"
                && s.labels.get("connector") == Some("magento")
                && s.labels.get("export") == Some("mapper.map-import"))
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "junction_outbound_requests_total"
                && s.labels.get("backend") == Some("shop")
                && s.labels.get("status") == Some("404"))
    );
    assert!(w.failed().await.iter().all(|j| j.state == JobState::Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_backend_refuses_while_it_has_jobs_and_keeps_bindings_unless_purged() {
    let w = world().await;
    let app = router(&w);
    w.import_all().await;
    let bound = get(&app, "/api/v1/backends/shop").await["bindings"]["customer"].clone();
    assert_eq!(bound, json!(12), "customers bound before removal");
    let config = get(&app, "/api/v1/backends/shop").await;

    // A job waiting for an hour keeps the backend: refused, naming the fix.
    let (status, queued) = post(
        &app,
        "/api/v1/jobs",
        json!({"jobs": [{"function": "junction.noop", "backend": "shop", "delay_ms": 3_600_000}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{queued}");
    let (status, refused) = call(&app, "DELETE", "/api/v1/backends/shop", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "backend_busy");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 unfinished jobs") && message.contains("--cancel-jobs"),
        "{message}"
    );
    assert_eq!(
        get(&app, "/api/v1/backends").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // With its jobs cancelled it goes; its bindings stay.
    let (status, removed) = call(
        &app,
        "DELETE",
        "/api/v1/backends/shop?cancel_jobs=true",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["cancelled_jobs"], 1);
    assert_eq!(removed["purged"]["bindings"], 0);
    let id = queued["jobs"][0]["id"].as_i64().unwrap();
    assert_eq!(
        get(&app, &format!("/api/v1/jobs/{id}")).await["job"]["state"],
        "cancelled"
    );
    let (status, gone) = call(&app, "GET", "/api/v1/backends/shop", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    let (status, again) = call(&app, "DELETE", "/api/v1/backends/shop", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");

    // Its listener stopped: a product written locally makes no delivery.
    let product = get(&app, "/api/v1/records/product?limit=1").await["items"][0].clone();
    let mut data = product["data"].clone();
    data["price"] = json!(1234.5);
    w.node
        .bus
        .put_record(&junction_runtime::storage::RecordWrite {
            model: "product".into(),
            id: product["id"].as_str().unwrap().into(),
            data: data.to_string(),
            expected_version: None,
            origin_backend: None,
            bind: None,
            keys: None,
        })
        .await
        .unwrap();
    w.node.bus.dispatch_pending().await.unwrap();
    let deliveries = get(&app, "/api/v1/jobs?function=junction.deliver").await;
    assert_eq!(deliveries["items"], json!([]), "{deliveries}");

    // Added again it finds its bindings; removed with purge they go.
    let mut readded = config["config"].clone();
    readded["auth"] = json!({"type": "bearer", "token": w.shop.issue_token()});
    let (status, body) = post(&app, "/api/v1/backends", readded).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["bindings"]["customer"], 12, "{body}");
    let (status, purged) = call(
        &app,
        "DELETE",
        "/api/v1/backends/shop?purge=true",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{purged}");
    assert!(
        purged["purged"]["bindings"].as_u64().unwrap() >= 12,
        "{purged}"
    );
    assert!(
        purged["purged"]["state_keys"].as_u64().unwrap() >= 1,
        "{purged}"
    );
    let left = get(&app, "/api/v1/bindings?backend=shop&model=customer").await;
    assert_eq!(left["items"], json!([]), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_label_only_configured_channels() {
    let w = world().await;
    let app = router(&w);
    let configured: HashSet<String> = w
        .node
        .queue
        .config()
        .channels
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    // Fifty channels nobody configured, each with a job due at once and
    // one waiting an hour: fifty new series each, if labels followed jobs.
    let jobs: Vec<Value> = (0..50)
        .flat_map(|i| {
            [
                json!({"function": "junction.noop", "channel": format!("root.minted{i}"), "delay_ms": 3_600_000}),
                json!({"function": "junction.noop", "channel": format!("root.minted{i}.deeper"), "delay_ms": 3_600_000}),
            ]
        })
        .collect();
    let (status, v) = post(&app, "/api/v1/jobs", json!({ "jobs": jobs })).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (_, text) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    let text = text.as_str().unwrap().to_string();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let channels: HashSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric.starts_with("junction_jobs") || s.metric.starts_with("junction_queue_lag")
        })
        .filter_map(|s| s.labels.get("channel"))
        .collect();
    assert!(
        channels.iter().all(|c| configured.contains(*c)),
        "only configured channels {configured:?} label series, got {channels:?}"
    );
    let pending: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "junction_jobs" && s.labels.get("state") == Some("pending"))
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(n) => n,
            _ => 0.0,
        })
        .sum();
    assert!(
        pending >= 100.0,
        "the jobs of unconfigured channels are counted under a configured parent:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_names_what_it_refuses_and_shows_what_is_paused() {
    let w = world().await;
    let app = router(&w);
    let (status, v) = post(&app, "/api/v1/backends/no-such/pause", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("no-such"),
        "{v}"
    );
    let (status, v) = post(&app, "/api/v1/channels/shop/pause", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("root"),
        "{v}"
    );

    let (status, v) = post(&app, "/api/v1/backends/shop/pause", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["changed"], true);
    let (_, v) = post(&app, "/api/v1/channels/root.shop/pause", json!({})).await;
    assert_eq!(v["changed"], true, "{v}");
    let v = get(&app, "/api/v1/status").await;
    assert_eq!(v["paused"]["backends"], json!(["shop"]), "{v}");
    assert_eq!(v["paused"]["channels"], json!(["root.shop"]), "{v}");
    assert_eq!(get(&app, "/api/v1/backends/shop").await["paused"], true);

    // A paused backend's import waits; resumed, it runs.
    w.node
        .queue
        .enqueue(import("product", "DS-00001"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let jobs = w.jobs(junction_runtime::sync::IMPORT_RECORD).await;
    assert_eq!(jobs[0].state, JobState::Pending, "{jobs:?}");
    let (_, v) = post(&app, "/api/v1/backends/shop/resume", json!({})).await;
    assert_eq!(v["changed"], true, "{v}");
    w.settle().await;
    let jobs = w.jobs(junction_runtime::sync::IMPORT_RECORD).await;
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:?}");
    let (_, v) = post(&app, "/api/v1/backends/shop/resume", json!({})).await;
    assert_eq!(v["changed"], false, "resuming twice changes nothing: {v}");
}

/// One request with its headers as given; the status, the headers and the
/// body as JSON (or a JSON string when it is not JSON).
async fn raw(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_rejection_answers_the_documented_error_shape() {
    let w = world().await;
    let app = router(&w);
    let auth = format!("Bearer {TOKEN}");
    let json_type = ("content-type", "application/json");
    // method, path, headers, body, expected status and code.
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/jobs",
            vec![json_type],
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/jobs",
            vec![json_type],
            br#"{"jobs": "x"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/jobs",
            vec![],
            br#"{"jobs": []}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "GET",
            "/api/v1/jobs?limit=many",
            vec![],
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            "GET",
            "/api/v1/jobs/not-a-number",
            vec![],
            vec![],
            StatusCode::BAD_REQUEST,
            "bad_path",
        ),
        (
            "DELETE",
            "/api/v1/status",
            vec![],
            vec![],
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "POST",
            "/api/v1/backends",
            vec![json_type],
            vec![b' '; 3 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/jobs",
            vec![json_type],
            vec![b' '; 3 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/connectors",
            vec![("content-type", "application/wasm")],
            vec![0; 65 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "GET",
            "/api/v1/no-such-route",
            vec![],
            vec![],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, mut headers, body, status, code) in cases {
        headers.push(("authorization", &auth));
        let (got, _, v) = raw(&app, method, path, &headers, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| m.len() > 10),
            "{method} {path}: a message a person can act on: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_a_401_names_it() {
    let w = world().await;
    let app = router(&w);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {TOKEN}");
        let (status, _, v) = raw(
            &app,
            "GET",
            "/api/v1/status",
            &[("authorization", &auth)],
            vec![],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {v}");
    }
    let (status, headers, _) = raw(&app, "GET", "/api/v1/status", &[], vec![]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="junction""#);
    let (status, headers, v) = raw(
        &app,
        "GET",
        "/api/v1/status",
        &[("authorization", "Bearer wrong-token")],
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let (status, _, _) = raw(
        &app,
        "GET",
        "/api/v1/status",
        &[("authorization", &format!("Basic {TOKEN}"))],
        vec![],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another scheme is not a bearer token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_too_long_to_be_meant_is_refused_not_wrapped() {
    let w = world().await;
    let app = router(&w);
    for delay in [u64::MAX, 1 << 63, 400_000_000_000] {
        let (status, v) = post(
            &app,
            "/api/v1/jobs",
            json!({"jobs": [{"function": "junction.noop", "delay_ms": delay}]}),
        )
        .await;
        assert!(status.is_client_error(), "{delay}: {status} {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("too long"), "{delay}: {v}");
    }
    assert!(
        w.storage
            .jobs(&junction_runtime::queue::job::JobFilter::default())
            .await
            .unwrap()
            .iter()
            .all(|j| j.function != "junction.noop"),
        "nothing was enqueued"
    );
    let (status, v) = post(
        &app,
        "/api/v1/jobs",
        json!({"jobs": [{"function": "junction.noop", "delay_ms": 3_600_000}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "an hour is fine: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_starts_through_the_api_for_a_model_the_backend_imports() {
    let w = world().await;
    let app = router(&w);
    w.import_all().await;
    let (status, v) = post(
        &app,
        "/api/v1/sync/reconcile",
        json!({"backend": "shop", "model": "invoice"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_error_shape(&v, "unknown_model");
    let (status, v) = post(
        &app,
        "/api/v1/sync/reconcile",
        json!({"backend": "shop", "model": "order"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    w.settle().await;
    let job = get(&app, &format!("/api/v1/jobs/{}", v["jobs"][0]["id"])).await;
    assert_eq!(job["job"]["state"], "done", "{job}");
    assert!(
        job["job"]["result"]
            .as_str()
            .unwrap()
            .contains("0 no longer there"),
        "{job}"
    );
}
