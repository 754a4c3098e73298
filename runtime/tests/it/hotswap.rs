//! Hot swap under load: 2,000 import jobs run while a new version of the
//! connector is activated and then rolled back. No job may fail, and the
//! job records show both digests.

use std::collections::HashMap;
use std::time::Duration;

use junction_demo_shop::{Faults, Seed, ShopConfig};
use junction_runtime::queue::job::JobState;
use junction_runtime::sync::IMPORT_RECORD;

use super::api::{digest, rebuilt};
use super::sync::{batch, import, world_with};

const JOBS: usize = 2_000;

async fn finished(w: &super::sync::World) -> i64 {
    w.storage
        .counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| matches!(c.state, JobState::Done | JobState::Failed))
        .map(|c| c.count)
        .sum()
}

async fn wait_for(w: &super::sync::World, at_least: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while finished(w).await < at_least {
        assert!(tokio::time::Instant::now() < deadline, "jobs stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A shop with `JOBS` products.
pub(crate) fn catalogue() -> ShopConfig {
    ShopConfig {
        seed: Seed {
            seed: 11,
            categories: 4,
            products: JOBS,
            customers: 1,
            orders: 0,
        },
        ..ShopConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_and_a_rollback_under_load_fail_no_job() {
    swap_under_load(world_with(catalogue(), "2.4.6").await).await;
}

/// Import `JOBS` products one job each; activate a new version a third of
/// the way, roll back at two thirds; nothing fails, both digests ran.
pub(crate) async fn swap_under_load(w: super::sync::World) {
    w.run(vec![batch("category")]).await;
    let before = finished(&w).await;
    let original = digest(junction_connectors::MAGENTO);
    let next = rebuilt(junction_connectors::MAGENTO, "hot-swap");
    // The swap must land while jobs still run. Compile the new version
    // now (the install then finds it in the shared artifact cache instead
    // of compiling mid-run), and give the shop some latency: with warm
    // instances 2,000 local imports can otherwise all finish within the
    // time a busy 2-core machine takes to compile one component.
    w.node.sync.host().load(&next).await.unwrap();
    w.shop.set_faults(Faults {
        latency: Duration::from_millis(5),
        ..Faults::default()
    });

    let specs = (1..=JOBS)
        .map(|i| import("product", &format!("DS-{i:05}")))
        .collect::<Vec<_>>();
    w.node.queue.enqueue_batch(&specs).await.unwrap();

    // A third of the way: the new version; two thirds: back to the old.
    wait_for(&w, before + (JOBS / 3) as i64).await;
    let swapped = w.node.sync.install(&next).await.unwrap();
    assert!(swapped.active);
    let at_swap = finished(&w).await;
    wait_for(&w, before + (2 * JOBS / 3) as i64).await;
    let back = w.node.sync.rollback_connector("magento").await.unwrap();
    assert_eq!(back.digest, original);
    let at_rollback = finished(&w).await;
    w.settle().await;

    assert!(
        w.failed().await.is_empty(),
        "{:?}",
        w.failed().await.first()
    );
    let jobs: Vec<_> = w
        .jobs(IMPORT_RECORD)
        .await
        .into_iter()
        .filter(|j| j.args.contains("DS-"))
        .collect();
    assert_eq!(jobs.len(), JOBS);
    let mut by_digest: HashMap<String, usize> = HashMap::new();
    for j in &jobs {
        assert_eq!(
            j.state,
            JobState::Done,
            "job {}: {:?}",
            j.id,
            j.error_message
        );
        *by_digest
            .entry(
                j.connector_digest
                    .clone()
                    .expect("every job records its connector"),
            )
            .or_default() += 1;
    }
    let on_next = by_digest.get(&digest(&next)).copied().unwrap_or(0);
    let on_original = by_digest.get(&original).copied().unwrap_or(0);
    eprintln!(
        "hot swap: {on_original} jobs on the original, {on_next} on the new version; swap after {at_swap}, rollback after {at_rollback} finished"
    );
    assert_eq!(on_next + on_original, JOBS, "{by_digest:?}");
    assert!(
        on_next > 0 && on_original > 0,
        "both versions ran: {by_digest:?}"
    );
    assert!(
        on_original as i64 > at_swap - before,
        "the old version ran again after the rollback: {by_digest:?}, swap at {at_swap}, rollback at {at_rollback}"
    );
    assert_eq!(w.bound("product").await, JOBS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_on_the_database_follows_an_activation() {
    let w = super::sync::world().await;
    let other =
        junction_runtime::node::Node::start(w.storage.clone(), super::sync::node_config("node-b"))
            .await
            .unwrap();
    let original = digest(junction_connectors::MAGENTO);
    let adapter = |node: &junction_runtime::node::Node| {
        let sync = node.sync.clone();
        async move {
            sync.backend("shop").await.unwrap().adapters[0]
                .unit
                .digest()
                .to_string()
        }
    };
    assert_eq!(adapter(&other).await, original);
    let next = rebuilt(junction_connectors::MAGENTO, "other-node");
    w.node.sync.install(&next).await.unwrap();
    assert_eq!(
        adapter(&w.node).await,
        digest(&next),
        "at once on the installing node"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while adapter(&other).await != digest(&next) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node-b still runs the old version"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And its jobs run the new version.
    other
        .queue
        .enqueue(import("product", "DS-00003"))
        .await
        .unwrap();
    w.settle().await;
    assert!(other.settle(Duration::from_secs(30)).await.unwrap());
    let ran: Vec<_> = w
        .jobs(IMPORT_RECORD)
        .await
        .into_iter()
        .filter_map(|j| j.connector_digest)
        .collect();
    assert!(ran.iter().all(|d| *d == digest(&next)), "{ran:?}");
    other.stop(Duration::from_secs(5)).await.unwrap();
}

/// The probe's backend, for the behaviour test below.
fn probe_backend(server: &super::support::Server) -> junction_runtime::backend::BackendConfig {
    serde_json::from_value(serde_json::json!({
        "name": "probe",
        "kind": "probe",
        "version": "1.2.0",
        "base_url": server.origin(),
        "allow_internal": [server.addr.to_string()],
    }))
    .unwrap()
}

fn import_echo(id: &str) -> junction_runtime::queue::JobSpec {
    junction_runtime::queue::JobSpec::new(
        IMPORT_RECORD,
        serde_json::json!({"backend": "probe", "model": "echo", "external_id": id}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_running_at_a_swap_finish_on_the_old_version_and_later_jobs_map_the_new_way() {
    let (_dir, storage, node) = super::sync::fresh_node().await;
    let server = super::support::Server::start().await;
    let old = std::fs::read(junction_test_artifacts::PROBE).unwrap();
    let next = std::fs::read(junction_test_artifacts::PROBE_NEXT).unwrap();
    node.sync.install(&old).await.unwrap();
    node.sync.configure(&probe_backend(&server)).await.unwrap();
    // Compiled before the swap, so the activation lands within the reads.
    node.sync.host().load(&next).await.unwrap();
    let data_of = |id: &'static str| {
        let storage = storage.clone();
        async move {
            let b = storage
                .binding("probe", "echo", id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("echo {id} is not bound"));
            let r = storage.record("echo", &b.local_id).await.unwrap().unwrap();
            serde_json::from_str::<serde_json::Value>(&r.data).unwrap()
        }
    };

    // Two imports whose read takes a second are running...
    let slow = ["slow-1", "slow-2"];
    let ids: Vec<i64> = node
        .queue
        .enqueue_batch(&slow.map(import_echo))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = futures_util::future::join_all(ids.iter().map(|id| storage.job(*id))).await;
        if jobs
            .iter()
            .all(|j| j.as_ref().unwrap().as_ref().unwrap().state == JobState::Started)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow imports never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...when 0.1.1, which maps differently, becomes the active version.
    let swapped = node.sync.install(&next).await.unwrap();
    assert!(swapped.active && swapped.version == "0.1.1", "{swapped:?}");
    for id in &ids {
        let job = storage.job(*id).await.unwrap().unwrap();
        assert_eq!(
            job.state,
            JobState::Started,
            "still in its call at the swap"
        );
    }
    // A job enqueued after the swap runs on the new version.
    node.queue
        .enqueue_batch(&[import_echo("after-1")])
        .await
        .unwrap();
    assert!(node.settle(Duration::from_secs(60)).await.unwrap());

    let old_digest = digest(&old);
    let next_digest = digest(&next);
    for (id, job) in slow.iter().zip(&ids) {
        let job = storage.job(*job).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{:?}", job.error_message);
        assert_eq!(job.connector_digest.as_deref(), Some(old_digest.as_str()));
        // Read and mapped by 0.1.0 from start to end: no half-swapped job.
        let data = data_of(id).await;
        assert_eq!(data, serde_json::json!({"id": id}), "{id}");
    }
    let after = w_job(&*storage, "after-1").await;
    assert_eq!(after.state, JobState::Done, "{:?}", after.error_message);
    assert_eq!(
        after.connector_digest.as_deref(),
        Some(next_digest.as_str())
    );
    assert_eq!(
        data_of("after-1").await,
        serde_json::json!({"id": "after-1", "mapped_by": "0.1.1"})
    );
    node.stop(Duration::from_secs(5)).await.unwrap();
}

/// The import job of echo `id`.
async fn w_job(
    storage: &dyn junction_runtime::storage::Storage,
    id: &str,
) -> junction_runtime::queue::job::Job {
    storage
        .jobs(&junction_runtime::queue::job::JobFilter {
            function: Some(IMPORT_RECORD.to_string()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.args.contains(&format!("\"{id}\"")))
        .unwrap_or_else(|| panic!("no import job of echo {id}"))
}
