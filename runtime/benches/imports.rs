//! `cargo bench -p junction-runtime --bench imports`: a direct import of
//! 7,000 CRM records (2,000 companies, 5,000 deals, each deal after its
//! company) through the companies-and-deals connector in Python
//! (`connectors/crm-deals-python`, componentize-py), JavaScript
//! (`crm-deals-js`, componentize-js) and Rust (`crm-deals-rust`), each on
//! a fresh SQLite node of its own against the same CRM, records per second
//! end to end; then, on the same node, 21,000 one-job-per-record imports
//! (three more backends on the same CRM) and the same direct import again,
//! twice, each time alongside the same import on a control node that
//! took the same records by direct imports and ran no jobs (the same data,
//! another history), to see whether a long-running node slows down apart
//! from the size of its data and the machine's own drift. Side
//! by side in one run, as the machine is noisy. `IMPORTS_QUICK=1` runs
//! the direct imports on fresh nodes only; `IMPORTS_ONLY=python|js|rust`
//! one language.

use std::time::{Duration, Instant};

use junction_demo_crm::{Crm, CrmConfig, Seed};
use junction_runtime::backend::BackendConfig;
use junction_runtime::sync::batch::batch_jobs;
use serde_json::json;

#[allow(dead_code)]
mod common;

const MODELS: [&str; 2] = ["company", "deal"];

fn backend(crm: &Crm, name: &str) -> BackendConfig {
    serde_json::from_value(json!({
        "name": name, "kind": "crm", "version": "3.0.0",
        "base_url": crm.base_url(), "allow_internal": [crm.addr.to_string()],
        "auth": {"type": "basic", "username": "junction", "password": "crm-secret"},
    }))
    .unwrap()
}

/// A node of its own (SQLite in a temporary folder) with the connector
/// installed and `backends` configured on the CRM.
struct Bench(common::Bench);

impl Bench {
    async fn start(crm: &Crm, component: &str, backends: &[String]) -> Bench {
        let b = common::Bench::start(None).await;
        b.node
            .sync
            .install(&std::fs::read(component).unwrap())
            .await
            .unwrap();
        for name in backends {
            b.node.sync.configure(&backend(crm, name)).await.unwrap();
        }
        Bench(b)
    }

    /// The database file and its write-ahead log, in MiB.
    fn sizes(&self) -> String {
        let size = |name: &str| {
            std::fs::metadata(self.0.dir.path().join(name))
                .map_or(0.0, |m| m.len() as f64 / 1048576.0)
        };
        format!(
            "database {:.1} MiB, WAL {:.1} MiB",
            size("bench.db"),
            size("bench.db-wal")
        )
    }

    /// Fresh instances the connector has made so far (calls no warm
    /// instance served).
    async fn instantiations(&self, backend: &str) -> u64 {
        let unit = self
            .0
            .node
            .sync
            .backend(backend)
            .await
            .unwrap()
            .route("deal")
            .unwrap()
            .adapter
            .clone();
        unit.instantiations()
    }

    /// Import into `backend`: records per second and fresh instances.
    async fn import(&self, backend: &str, direct: bool) -> (f64, u64, i64, Duration) {
        let made = self.instantiations(backend).await;
        let started = Instant::now();
        self.0
            .node
            .queue
            .enqueue_batch(&batch_jobs(backend, &MODELS, direct))
            .await
            .unwrap();
        self.0.settle().await;
        let elapsed = started.elapsed();
        let records = self.0.bound(backend).await;
        let rate = records as f64 / elapsed.as_secs_f64();
        (
            rate,
            self.instantiations(backend).await - made,
            records,
            elapsed,
        )
    }
}

/// The figures of one language: a direct import on each of two fresh
/// nodes; then, unless quick, 21,000 one-job-per-record imports on the
/// first, and the direct import again on both, alternating, twice. The
/// second node ran nothing in between: what it loses is the machine's and
/// the process's drift, not the long-running node's.
async fn language(crm: &Crm, label: &str, component: &str, quick: bool) {
    let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let aged = Bench::start(
        crm,
        component,
        &names(&["fresh", "jobs-1", "jobs-2", "jobs-3", "later-1", "later-2"]),
    )
    .await;
    let (fresh, made, records, elapsed) = aged.import("fresh", true).await;
    println!(
        "{label:<10} direct import, fresh node:       {records} records in {:.2} s = {fresh:>5.0} records/s ({made} fresh instances)",
        elapsed.as_secs_f64(),
    );
    if quick {
        aged.0.stop().await;
        return;
    }
    let control = Bench::start(
        crm,
        component,
        &names(&["new-0", "fill-1", "fill-2", "fill-3", "new-1", "new-2"]),
    )
    .await;
    let (control_fresh, ..) = control.import("new-0", true).await;
    println!(
        "{label:<10} direct import, control node:     {control_fresh:>5.0} records/s (a second fresh node, which takes the same records by direct imports and runs no jobs)"
    );
    // The control holds as many records as the long-running node will:
    // what differs between them is the history of jobs, not the data.
    for name in ["fill-1", "fill-2", "fill-3"] {
        control.import(name, true).await;
    }
    for name in ["jobs-1", "jobs-2", "jobs-3"] {
        let (rate, _, records, elapsed) = aged.import(name, false).await;
        println!(
            "{label:<10} one job per record ({name}):   {records} records in {:.2} s = {rate:>5.0} records/s",
            elapsed.as_secs_f64(),
        );
    }
    println!(
        "{label:<10} after the jobs: long-running node {}; control node {}",
        aged.sizes(),
        control.sizes()
    );
    for round in 1..=2 {
        let (other, ..) = control.import(&format!("new-{round}"), true).await;
        let (later, made, records, elapsed) = aged.import(&format!("later-{round}"), true).await;
        println!(
            "{label:<10} direct import, after those jobs: {records} records in {:.2} s = {later:>5.0} records/s ({:+.0} % against its fresh import; {made} fresh instances) | control node alongside {other:.0} records/s ({:+.0} % against its fresh import) | long-running against control {:+.0} %",
            elapsed.as_secs_f64(),
            (later / fresh - 1.0) * 100.0,
            (other / control_fresh - 1.0) * 100.0,
            (later / other - 1.0) * 100.0,
        );
    }
    control.0.stop().await;
    aged.0.stop().await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("imports benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let quick = std::env::var_os("IMPORTS_QUICK").is_some();
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
        for (label, component) in [
            ("python", junction_test_artifacts::CRM_DEALS_PYTHON),
            ("js", junction_test_artifacts::CRM_DEALS_JS),
            ("rust", junction_test_artifacts::CRM_DEALS_RUST),
        ] {
            if std::env::var("IMPORTS_ONLY").is_ok_and(|only| only != label) {
                continue;
            }
            language(&crm, label, component, quick).await;
        }
    });
}
