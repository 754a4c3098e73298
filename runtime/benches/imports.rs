//! `cargo bench -p junction-runtime --bench imports`: a direct import of
//! 7,000 CRM records (2,000 companies, 5,000 deals, each deal after its
//! company) through the Python companies-and-deals connector
//! (`connectors/crm-deals-python`, componentize-py) on a fresh SQLite
//! node, records per second end to end; then, on the same node, 14,000
//! one-job-per-record imports (two more backends on the same CRM) and the
//! same direct import again, to see whether a long-running node slows
//! down. Side by side in one run, as the machine is noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_demo_crm::{Crm, CrmConfig, Seed};
use junction_runtime::backend::BackendConfig;
use junction_runtime::host::HostConfig;
use junction_runtime::node::{Node, NodeConfig};
use junction_runtime::storage::Storage;
use junction_runtime::storage::sqlite::SqliteStorage;
use junction_runtime::sync::batch::batch_jobs;
use serde_json::json;

const MODELS: [&str; 2] = ["company", "deal"];

fn backend(crm: &Crm, name: &str) -> BackendConfig {
    serde_json::from_value(json!({
        "name": name, "kind": "crm", "version": "3.0.0",
        "base_url": crm.base_url(), "allow_internal": [crm.addr.to_string()],
        "auth": {"type": "basic", "username": "junction", "password": "crm-secret"},
    }))
    .unwrap()
}

/// Import every company and deal into backend `name`; records bound and
/// the time it took.
async fn import(
    node: &Node,
    storage: &Arc<SqliteStorage>,
    name: &str,
    direct: bool,
) -> (i64, Duration) {
    let started = Instant::now();
    node.queue
        .enqueue_batch(&batch_jobs(name, &MODELS, direct))
        .await
        .unwrap();
    assert!(
        node.settle(Duration::from_secs(1800)).await.unwrap(),
        "the import did not finish"
    );
    let elapsed = started.elapsed();
    let failed = storage
        .jobs(&junction_runtime::queue::job::JobFilter {
            state: Some(junction_runtime::queue::job::JobState::Failed),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(failed.is_empty(), "failed jobs: {failed:?}");
    let records = storage
        .binding_counts(name)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    (records, elapsed)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("imports benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let crm = Crm::start(
            CrmConfig {
                seed: Seed {
                    seed: 11,
                    companies: 2_000,
                    contacts: 1_000,
                    deals: 5_000,
                },
                ..CrmConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(SqliteStorage::open(&dir.path().join("bench.db")).await.unwrap());
        let node = Node::start(
            storage.clone(),
            NodeConfig {
                name: "bench".into(),
                host: HostConfig {
                    cache_dir: Some(std::env::temp_dir().join("junction-bench-cache")),
                    ..HostConfig::default()
                },
                ..NodeConfig::default()
            },
        )
        .await
        .unwrap();
        let bytes = std::fs::read(junction_test_artifacts::CRM_DEALS_PYTHON).unwrap();
        node.sync.install(&bytes).await.unwrap();
        for name in ["fresh", "jobs-1", "jobs-2", "later"] {
            node.sync.configure(&backend(&crm, name)).await.unwrap();
        }
        let rate = |(records, elapsed): (i64, Duration)| records as f64 / elapsed.as_secs_f64();
        // The component's fresh instances: calls no warm instance served.
        let unit = node.sync.backend("fresh").await.unwrap().route("deal").unwrap().adapter.clone();
        let made = unit.instantiations();
        let fresh = import(&node, &storage, "fresh", true).await;
        println!(
            "direct import, fresh node:        {} records in {:.2} s = {:.0} records/s ({} fresh instances)",
            fresh.0,
            fresh.1.as_secs_f64(),
            rate(fresh),
            unit.instantiations() - made
        );
        for name in ["jobs-1", "jobs-2"] {
            let jobs = import(&node, &storage, name, false).await;
            println!(
                "one job per record ({name}):     {} records in {:.2} s = {:.0} records/s",
                jobs.0,
                jobs.1.as_secs_f64(),
                rate(jobs)
            );
        }
        let made = unit.instantiations();
        let later = import(&node, &storage, "later", true).await;
        println!("({} fresh instances)", unit.instantiations() - made);
        println!(
            "direct import, after those jobs:  {} records in {:.2} s = {:.0} records/s ({:+.0} % against fresh)",
            later.0,
            later.1.as_secs_f64(),
            rate(later),
            (rate(later) / rate(fresh) - 1.0) * 100.0
        );
        node.stop(Duration::from_secs(5)).await.unwrap();
    });
}
