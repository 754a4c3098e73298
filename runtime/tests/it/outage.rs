//! Riding out a backend outage: the demo shop answers every request 503
//! for far longer than every retry of the jobs in flight would last; its
//! circuit breaker opens, no job fails or spends its tries while it is
//! open, probes keep failing until the shop is back, then one closes the
//! breaker and every job completes.

use std::time::{Duration, Instant};

use junction_demo_shop::Faults;
use junction_runtime::queue::job::JobState;
use junction_runtime::sync::IMPORT_RECORD;
use serde_json::json;

use super::api::{TOKEN, call, router};
use super::sync::{World, backend, import, world};

/// The shop backend reconfigured with a `retry` policy and a `breaker`.
async fn with_policies(w: &World, retry: serde_json::Value, breaker: serde_json::Value) {
    let mut config = serde_json::to_value(backend(&w.shop, "2.4.6")).unwrap();
    config["retry"] = retry;
    config["breaker"] = breaker;
    w.node
        .sync
        .configure(&serde_json::from_value(config).unwrap())
        .await
        .unwrap();
}

/// The shop answers every request 503.
fn shop_down(w: &World) {
    w.shop.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
}

/// Imports of DS-00001 to DS-00010, each with `tries` tries.
fn imports(tries: u32) -> Vec<junction_runtime::queue::JobSpec> {
    (1..=10)
        .map(|i| {
            let mut spec = import("product", &format!("DS-{i:05}"));
            spec.request.max_retries = Some(tries);
            spec
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_longer_than_every_retry_fails_nothing() {
    let w = world().await;
    // Retries that would all be spent within a second, and a breaker that
    // opens after three outage failures and probes every 300-600 ms.
    with_policies(
        &w,
        json!({"base": 50, "cap": 200}),
        json!({"failures": 3, "cool_down": 300, "max_cool_down": 600}),
    )
    .await;
    shop_down(&w);
    w.node.queue.enqueue_batch(&imports(3)).await.unwrap();

    // Down for 5 s: five times what three tries at 50-200 ms take.
    let down = Instant::now();
    let mut opened = None;
    let mut probes = 0;
    while down.elapsed() < Duration::from_secs(5) {
        if let Some(b) = w.storage.breakers().await.unwrap().pop() {
            opened.get_or_insert(b.opened_at);
            probes = probes.max(b.probes);
        }
        let failed = w.failed().await;
        assert!(
            failed.is_empty(),
            "no job fails during the outage: {failed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(opened.is_some(), "the breaker opened");
    assert!(
        probes >= 2,
        "probes failed while the shop was down: {probes}"
    );
    // The operator sees it: the API, and the metric.
    let app = router(&w);
    let (_, v) = call(&app, "GET", "/api/v1/backends/shop", Some(TOKEN), None).await;
    let state = v["breaker"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(state == "open" || state == "half-open", "{v}");
    assert!(
        v["breaker"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{v}"
    );
    let (_, text) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("junction_backend_breaker_open{backend=\"shop\"} 1"),
        "{text}"
    );
    let status = w
        .node
        .sync
        .check_backend("shop")
        .await
        .expect_err("the shop is still down");
    assert!(status.to_string().contains("503"), "{status}");

    w.shop.set_faults(Faults::default());
    w.settle().await;
    assert!(
        w.storage.breakers().await.unwrap().is_empty(),
        "a probe closed the breaker"
    );
    let (_, v) = call(&app, "GET", "/api/v1/backends/shop", Some(TOKEN), None).await;
    assert_eq!(v["breaker"]["state"], "closed", "{v}");
    let jobs = w.jobs(IMPORT_RECORD).await;
    assert_eq!(jobs.len(), 10);
    for job in &jobs {
        assert_eq!(job.state, JobState::Done, "{job:?}");
        assert!(job.tries <= 3, "{job:?}");
    }
    assert!(
        w.jobs(junction_runtime::queue::breaker::PROBE)
            .await
            .iter()
            .all(|j| j.state == JobState::Done),
        "probes end done, saying whether they closed the breaker"
    );
}

/// An hour's outage at a thousandth of the time: the default policies
/// scaled down 1,000 times (retries from 5 ms up to 3.6 s, the breaker
/// probing after 30 ms up to 600 ms) and the shop down for 3.6 s, while
/// imports run and local edits are exported. Nothing fails, no event is
/// lost, the operator is told once that the breaker opened, and everything
/// is done once the shop is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_long_outage_at_a_thousandth_of_the_time_loses_and_fails_nothing() {
    let w = world().await;
    w.import_all().await;
    with_policies(
        &w,
        json!({"base": 5, "cap": 3600}),
        json!({"failures": 5, "cool_down": 30, "max_cool_down": 600}),
    )
    .await;
    let (hook, url) = super::repair::Hook::start().await;
    w.node.queue.notify.set(
        junction_runtime::queue::notify::GLOBAL,
        Some(serde_json::from_value(json!({"url": url, "interval": 1000})).unwrap()),
    );
    shop_down(&w);
    // Imports, and local edits whose exports the listener enqueues.
    // Two tries each: without the breaker, spent within the outage.
    w.node.queue.enqueue_batch(&imports(2)).await.unwrap();
    let edited: Vec<String> = (1..=5).map(|i| format!("DS-{i:05}")).collect();
    for (i, sku) in edited.iter().enumerate() {
        w.edit_local("product", sku, |d| d["price"] = json!(100.5 + i as f64))
            .await;
    }
    let down = Instant::now();
    while down.elapsed() < Duration::from_millis(3600) {
        let failed = w.failed().await;
        assert!(
            failed.is_empty(),
            "no job fails during the outage: {failed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.shop.set_faults(Faults::default());
    w.settle().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    assert!(
        w.storage.breakers().await.unwrap().is_empty(),
        "closed again"
    );
    let imports = w.jobs(IMPORT_RECORD).await;
    assert!(
        imports.iter().all(|j| j.state == JobState::Done),
        "{imports:?}"
    );
    let exports = w.jobs(junction_runtime::sync::EXPORT_RECORD).await;
    assert_eq!(exports.len(), 5, "one export per edit: {exports:?}");
    assert!(
        w.jobs(junction_runtime::sync::DELIVER)
            .await
            .iter()
            .all(|j| j.state == JobState::Done),
        "no dead event"
    );
    assert!(
        exports.iter().all(|j| j.state == JobState::Done),
        "{exports:?}"
    );
    // The shop has the edits.
    for (i, sku) in edited.iter().enumerate() {
        assert_eq!(
            w.shop.product(sku).unwrap()["price"],
            json!(100.5 + i as f64),
            "{sku}"
        );
    }
    let calls = hook.until(1).await;
    let told: Vec<String> = calls
        .iter()
        .flat_map(|c| super::repair::kinds(&c.2))
        .collect();
    assert!(
        told.iter().any(|k| k == "breaker-opened"),
        "the operator is told: {told:?}"
    );
    assert!(
        told.iter().all(|k| k == "breaker-opened"),
        "and told of nothing failed: {told:?}"
    );
}
