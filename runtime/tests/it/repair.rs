//! Repairing at scale and by hand: bulk actions over thousands of jobs,
//! their API and its refusals, cursors and forced imports, closing a
//! breaker, a record's timeline, and failure notifications reaching a
//! real webhook.

use std::sync::Arc;

use axum::http::StatusCode;
use junction_runtime::queue::job::{Completion, JobAction, JobFilter, JobState, Outcome};
use junction_runtime::queue::{Queue, QueueConfig};
use serde_json::{Value, json};

use super::api::{TOKEN, call, get, post, router};
use super::storage::{job, start_all, storages};
use super::sync::{import, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_requeue_puts_ten_thousand_failed_jobs_back_page_by_page() {
    for (name, storage, _dir) in storages().await {
        // 10,000 failed jobs.
        for _ in 0..20 {
            let specs: Vec<_> = (0..500).map(|_| job("f")).collect();
            storage.enqueue(&specs, 1).await.unwrap();
            loop {
                let started = start_all(&*storage, 10).await;
                if started.is_empty() {
                    break;
                }
                let failed: Vec<Completion> = started
                    .iter()
                    .map(|id| Completion {
                        id: *id,
                        outcome: Outcome::Failed {
                            kind: "down".into(),
                            message: "backend down".into(),
                        },
                        finished_at: 20,
                        connector_digest: None,
                        log: Vec::new(),
                        audit: Vec::new(),
                    })
                    .collect();
                storage.complete(&failed, &[], 20).await.unwrap();
            }
        }
        let queue = Queue::new(storage.clone(), QueueConfig::default());
        let failed = JobFilter {
            state: Some(JobState::Failed),
            ..JobFilter::default()
        };
        let dry = queue.bulk(JobAction::Requeue, &failed, true).await.unwrap();
        assert_eq!((dry.matched, dry.changed), (10_000, 0), "{name}: a dry run");
        assert_eq!(storage.count_jobs(&failed).await.unwrap(), 10_000);
        let done = queue
            .bulk(JobAction::Requeue, &failed, false)
            .await
            .unwrap();
        assert_eq!(done.changed, 10_000, "{name}: {done:?}");
        assert_eq!(done.pages, 20, "{name}: one transaction per 500 jobs");
        assert_eq!(storage.count_jobs(&failed).await.unwrap(), 0, "{name}");
        let pending = JobFilter {
            state: Some(JobState::Pending),
            ..JobFilter::default()
        };
        assert_eq!(storage.count_jobs(&pending).await.unwrap(), 10_000);
        let sample = storage.jobs(&pending).await.unwrap();
        assert!(sample.iter().all(|j| j.tries == 0), "{name}: tries reset");
        // Without a filter, nothing happens and the answer says what to add.
        let e = queue
            .bulk(JobAction::Cancel, &JobFilter::default(), false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("needs a filter"), "{e}");
        assert_eq!(storage.count_jobs(&pending).await.unwrap(), 10_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_api_counts_first_acts_by_filter_and_names_bad_input() {
    let w = world().await;
    let app = router(&w);
    // Two imports that fail for good (the records are gone), one that works.
    w.run(vec![
        import("product", "NO-SUCH-1"),
        import("product", "NO-SUCH-2"),
        import("product", "DS-00001"),
    ])
    .await;
    let filter = json!({"state": "failed", "backend": "shop"});
    let (status, v) = post(
        &app,
        "/api/v1/jobs/bulk",
        json!({"action": "requeue", "filter": filter, "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["matched"].clone(), v["changed"].clone()),
        (json!(2), json!(0)),
        "{v}"
    );
    assert_eq!(w.failed().await.len(), 2, "a dry run changes nothing");
    let (_, v) = post(
        &app,
        "/api/v1/jobs/bulk",
        json!({"action": "discard", "filter": filter}),
    )
    .await;
    assert_eq!(v["changed"], 2, "{v}");
    assert!(w.failed().await.is_empty());
    let cancelled = get(&app, "/api/v1/jobs?state=cancelled").await;
    assert_eq!(
        cancelled["items"].as_array().unwrap().len(),
        2,
        "{cancelled}"
    );
    // The time filter: nothing was enqueued in the future.
    let (_, v) = post(
        &app,
        "/api/v1/jobs/bulk",
        json!({"action": "requeue", "filter": {"state": "cancelled", "created_after": "2999-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(v["matched"], 0, "{v}");
    for (body, code, needle) in [
        (
            json!({"action": "requeue", "filter": {}}),
            "bad_request",
            "needs a filter",
        ),
        (
            json!({"action": "explode", "filter": {"state": "failed"}}),
            "bad_request",
            "requeue, cancel or done",
        ),
        (
            json!({"action": "requeue", "filter": {"state": "broken"}}),
            "bad_request",
            "not a job state",
        ),
        (
            json!({"action": "requeue", "filter": {"created_after": "yesterday"}}),
            "bad_request",
            "RFC 3339",
        ),
        (
            json!({"action": "requeue", "filter": {"colour": "red"}}),
            "invalid_body",
            "colour",
        ),
    ] {
        let (status, v) = post(&app, "/api/v1/jobs/bulk", body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_are_listed_moved_and_reset_and_a_forced_import_rewrites_every_record() {
    let w = world().await;
    let app = router(&w);
    w.import_all().await;
    let v = get(&app, "/api/v1/backends/shop/cursors").await;
    let models: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["model"].as_str().unwrap())
        .collect();
    assert!(models.contains(&"product"), "{v}");
    let (status, v) = call(
        &app,
        "PUT",
        "/api/v1/backends/shop/cursors/product",
        Some(TOKEN),
        Some((
            "application/json",
            json!({"cursor": "2026-01-02T03:04:05Z"})
                .to_string()
                .into_bytes(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let key = junction_runtime::sync::batch::cursor_key("product");
    assert_eq!(
        w.storage.state_get("shop", &key).await.unwrap().as_deref(),
        Some(v["cursor"].as_str().unwrap())
    );
    let (status, v) = call(
        &app,
        "DELETE",
        "/api/v1/backends/shop/cursors/product",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, v["existed"].clone()),
        (StatusCode::OK, json!(true)),
        "{v}"
    );
    assert_eq!(w.storage.state_get("shop", &key).await.unwrap(), None);

    // A scan interrupted midway shows where it resumes; a reset forgets
    // that too, so the next import really starts from the beginning.
    let resume = junction_runtime::sync::batch::resume_key("customer");
    w.storage
        .state_set(
            "shop",
            &resume,
            &json!({"started": 1, "from": null, "force": false, "page": "7"}).to_string(),
            1,
            None,
        )
        .await
        .unwrap();
    let v = get(&app, "/api/v1/backends/shop/cursors").await;
    let customer = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "customer")
        .unwrap();
    assert_eq!(customer["resumes_at"], "7", "{v}");
    assert!(customer["cursor"].is_string(), "one entry per model: {v}");
    let (status, _) = call(
        &app,
        "DELETE",
        "/api/v1/backends/shop/cursors/customer",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.storage.state_get("shop", &resume).await.unwrap(), None);
    let (status, v) = call(
        &app,
        "PUT",
        "/api/v1/backends/shop/cursors/product",
        Some(TOKEN),
        Some((
            "application/json",
            json!({"cursor": "soon"}).to_string().into_bytes(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, _) = call(
        &app,
        "GET",
        "/api/v1/backends/nowhere/cursors",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Everything is up to date: an ordinary import enqueues nothing, a
    // forced one a job per record, each of which writes every field.
    let (_, v) = post(
        &app,
        "/api/v1/sync/import",
        json!({"backend": "shop", "model": "product", "direct": false}),
    )
    .await;
    w.settle().await;
    let jobs_before = w.jobs(junction_runtime::sync::IMPORT_RECORD).await.len();
    assert!(v["jobs"][0]["id"].is_number(), "{v}");
    let (status, v) = post(
        &app,
        "/api/v1/sync/import",
        json!({"backend": "shop", "model": "product", "force": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    w.settle().await;
    let forced: Vec<_> = w
        .jobs(junction_runtime::sync::IMPORT_RECORD)
        .await
        .into_iter()
        .filter(|j| j.args.contains("\"force\":true"))
        .collect();
    let products = w.storage.records("product", None, 500).await.unwrap().len();
    assert!(products > 0);
    assert_eq!(
        forced.len(),
        products,
        "one forced job per record ({jobs_before} before)"
    );
    assert!(
        forced.iter().all(|j| j.state == JobState::Done),
        "{forced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_closes_an_open_breaker_and_the_jobs_run_at_once() {
    let w = world().await;
    let app = router(&w);
    let storage: Arc<dyn junction_runtime::storage::Storage> = w.storage.clone();
    let now = junction_runtime::queue::now_ms();
    storage
        .open_breaker(&junction_runtime::storage::OpenBreaker {
            backend: "shop".into(),
            failures: 5,
            reason: "test".into(),
            opened_at: now,
            retry_at: now + 3_600_000,
            cool_down: 3_600_000,
            probes: 0,
        })
        .await
        .unwrap();
    w.node
        .queue
        .breakers
        .refresh(&storage.breakers().await.unwrap());
    w.node
        .queue
        .enqueue(import("product", "DS-00001"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let jobs = w.jobs(junction_runtime::sync::IMPORT_RECORD).await;
    assert_eq!(jobs[0].state, JobState::Pending, "held by the open breaker");
    let (status, v) = post(&app, "/api/v1/backends/shop/breaker/close", json!({})).await;
    assert_eq!(
        (status, v["closed"].clone()),
        (StatusCode::OK, json!(true)),
        "{v}"
    );
    w.settle().await;
    let jobs = w.jobs(junction_runtime::sync::IMPORT_RECORD).await;
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:?}");
    assert_eq!(
        get(&app, "/api/v1/backends/shop").await["breaker"]["state"],
        "closed"
    );
    let (_, v) = post(&app, "/api/v1/backends/shop/breaker/close", json!({})).await;
    assert_eq!(
        v["closed"], false,
        "closing a closed breaker changes nothing"
    );
    let (status, _) = post(&app, "/api/v1/backends/nowhere/breaker/close", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_timeline_shows_its_bindings_events_and_jobs() {
    let w = world().await;
    let app = router(&w);
    w.import_all().await;
    // One import of it by external id, one export of it by local id.
    w.run(vec![import("product", "DS-00001")]).await;
    w.edit_local("product", "DS-00001", |d| d["price"] = json!(12.5))
        .await;
    w.settle().await;
    let binding = w
        .storage
        .binding("shop", "product", "DS-00001")
        .await
        .unwrap()
        .expect("imported");
    let v = get(
        &app,
        &format!("/api/v1/records/product/{}/timeline", binding.local_id),
    )
    .await;
    assert_eq!(v["bindings"][0]["external_id"], "DS-00001", "{v}");
    assert_eq!(v["record"]["id"], binding.local_id.as_str(), "{v}");
    let timeline = v["timeline"].as_array().unwrap();
    assert!(
        timeline.iter().any(|e| e["kind"] == "event"),
        "the import's event: {v}"
    );
    let jobs: Vec<&str> = timeline
        .iter()
        .filter(|e| e["kind"] == "job")
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert!(
        jobs.iter()
            .any(|w| w.starts_with("import product DS-00001")),
        "the import job, by external id: {jobs:?}"
    );
    assert!(
        jobs.iter().any(|w| w.starts_with("export product")),
        "the export job, by local id: {jobs:?}"
    );
    assert!(
        timeline
            .windows(2)
            .all(|p| p[0]["at"].as_i64() >= p[1]["at"].as_i64()),
        "newest first: {v}"
    );
    let (status, v) = call(
        &app,
        "GET",
        "/api/v1/records/product/never-was/timeline",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

/// A webhook receiver on loopback: every call's secret header and body,
/// with when it came; answers `status` (changeable).
/// One call the webhook received: when, its secret header, its body.
pub(crate) type Call = (std::time::Instant, Option<String>, Value);

#[derive(Clone, Default)]
pub(crate) struct Hook {
    calls: Arc<std::sync::Mutex<Vec<Call>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
}

impl Hook {
    pub(crate) async fn start() -> (Hook, String) {
        let hook = Hook::default();
        hook.status.store(200, std::sync::atomic::Ordering::SeqCst);
        let h = hook.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                    let h = h.clone();
                    async move {
                        let secret = headers
                            .get("x-junction-secret")
                            .map(|v| v.to_str().unwrap().to_string());
                        h.calls
                            .lock()
                            .unwrap()
                            .push((std::time::Instant::now(), secret, body.0));
                        StatusCode::from_u16(h.status.load(std::sync::atomic::Ordering::SeqCst))
                            .unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (hook, url)
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Wait up to 20 s for `n` calls.
    pub(crate) async fn until(&self, n: usize) -> Vec<Call> {
        for _ in 0..200 {
            if self.calls().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.calls()
    }
}

pub(crate) fn kinds(call: &Value) -> Vec<String> {
    call["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_the_webhook_in_batches_at_most_once_an_interval_and_survive_its_outage() {
    let w = world().await;
    let (global, global_url) = Hook::start().await;
    let (own, own_url) = Hook::start().await;
    w.node.queue.notify.set(
        junction_runtime::queue::notify::GLOBAL,
        Some(serde_json::from_value(json!({"url": global_url, "interval": 1000})).unwrap()),
    );
    // Two imports fail for good at once: one call carries both.
    w.run(vec![
        import("product", "NO-SUCH-1"),
        import("product", "NO-SUCH-2"),
    ])
    .await;
    let calls = global.until(1).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        kinds(&calls[0].2),
        vec!["job-failed", "job-failed"],
        "{:?}",
        calls[0].2
    );
    assert_eq!(calls[0].2["notifications"][0]["backend"], "shop");
    assert!(
        calls[0].2["notifications"][0]["message"]
            .as_str()
            .unwrap()
            .contains("failed for good"),
        "{:?}",
        calls[0].2
    );
    // The webhook is down: nothing is lost, the call comes back one
    // interval on, never sooner.
    global
        .status
        .store(500, std::sync::atomic::Ordering::SeqCst);
    // (Not `run`: a node with a notification waiting to be sent has not
    // settled, and this one waits for the webhook.)
    w.node
        .queue
        .enqueue(import("product", "NO-SUCH-3"))
        .await
        .unwrap();
    let calls = global.until(2).await;
    assert_eq!(calls.len(), 2);
    global
        .status
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let calls = global.until(3).await;
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls[2].2["notifications"][0]["subject"],
        calls[1].2["notifications"][0]["subject"]
    );
    for pair in calls.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= std::time::Duration::from_millis(900),
            "two calls {gap:?} apart, under the 1 s interval"
        );
    }
    // A backend's own webhook, with its secret, takes its failures.
    let mut config = super::sync::backend(&w.shop, "2.4.6");
    config.notify = Some(
        serde_json::from_value(json!({"url": own_url, "secret": "hook-secret", "interval": 1000}))
            .unwrap(),
    );
    w.node.sync.configure(&config).await.unwrap();
    let shown = get(&router(&w), "/api/v1/backends/shop").await;
    assert_eq!(shown["config"]["notify"]["secret"], "***", "{shown}");
    w.run(vec![import("product", "NO-SUCH-4")]).await;
    let calls = own.until(1).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1.as_deref(), Some("hook-secret"));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        global.calls().len(),
        3,
        "the global webhook heard none of it"
    );
    // A bad webhook setting is refused with the key named.
    config.notify = Some(serde_json::from_value(json!({"url": "ftp://x/"})).unwrap());
    let Err(e) = w.node.sync.configure(&config).await else {
        panic!("an ftp:// webhook was accepted");
    };
    assert!(e.to_string().contains("notify"), "{e}");
}
