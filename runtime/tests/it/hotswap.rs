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
