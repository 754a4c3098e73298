//! `cargo bench -p junction-runtime --bench languages`: the same mapping
//! (a local customer to a CRM contact, `mapper.map-export`) done by the
//! Rust (`tests/fixtures/crm-mapper`), Python (`connectors/crm-python`,
//! componentize-py) and JavaScript (`connectors/crm-js`, componentize-js)
//! components, and natively as a baseline:
//!
//! - size of the component;
//! - first load: compile (Cranelift) plus the type-checking instantiation
//!   `Host::load` does, on an empty artifact cache;
//! - cached load: what a restart pays — a new engine loading the compiled
//!   artifact from the cache (mapped), plus the same instantiation;
//! - per call, median: a fresh instance for every call
//!   (`warm_instances = 0`) and a warm instance from the pool (the default);
//! - records/s with two calls at once (this machine has two cores), warm;
//! - memory per instance: resident memory of 16 idle warm instances (one
//!   per backend), divided by 16.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_runtime::model::LocalRecord;
use junction_runtime::{CallContext, Host, HostConfig, SandboxLimits, Unit};

const RECORDS: usize = 2_000;

fn customers() -> Vec<LocalRecord> {
    let first = ["Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana"];
    let last = ["Silva", "Lee", "Wang", "Okafor", "Berg", "Costa", "Novak"];
    (0..RECORDS)
        .map(|i| {
            let (f, l) = (first[i % first.len()], last[i % last.len()]);
            LocalRecord {
                model: "customer".into(),
                id: format!("customer-{i}"),
                data: serde_json::json!({
                    "email": format!("{}.{}{i}@Example.com", f.to_lowercase(), l.to_lowercase()),
                    "first_name": f,
                    "last_name": l,
                    "phone": format!("+351 21 {:03} {:04}", i % 1000, i),
                    "city": "Porto",
                })
                .to_string(),
                version: 1,
                updated_at: "2026-01-02T03:04:05Z".into(),
            }
        })
        .collect()
}

fn ctx() -> Arc<CallContext> {
    Arc::new(CallContext::detached(SandboxLimits::default()))
}

fn host(cache: &Path, warm_instances: u32) -> Host {
    Host::new(HostConfig {
        cache_dir: Some(cache.to_path_buf()),
        max_instances: 64,
        warm_instances,
        ..HostConfig::default()
    })
    .unwrap()
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

async fn map(unit: &Unit, ctx: &Arc<CallContext>, record: &LocalRecord) {
    let out = unit
        .map_export(ctx, "customer", record.clone(), None)
        .await
        .into_result()
        .unwrap();
    black_box(out);
}

async fn per_call(unit: &Unit, ctx: &Arc<CallContext>, records: &[LocalRecord]) -> Duration {
    for r in &records[..50] {
        map(unit, ctx, r).await;
    }
    let mut times = Vec::with_capacity(records.len());
    for r in records {
        let started = Instant::now();
        map(unit, ctx, r).await;
        times.push(started.elapsed());
    }
    median(times)
}

async fn records_per_second(unit: &Unit, ctx: &Arc<CallContext>, records: &[LocalRecord]) -> f64 {
    let started = Instant::now();
    let halves: Vec<_> = records
        .chunks(records.len().div_ceil(2))
        .map(|chunk| {
            let (unit, ctx, chunk) = (unit.clone(), ctx.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for r in &chunk {
                    map(&unit, &ctx, r).await;
                }
            })
        })
        .collect();
    for h in halves {
        h.await.unwrap();
    }
    records.len() as f64 / started.elapsed().as_secs_f64()
}

struct Row {
    name: &'static str,
    size: usize,
    first_load: Duration,
    compile: Duration,
    cached_load: Duration,
    deserialize: Duration,
    fresh_call: Duration,
    warm_call: Duration,
    rate: f64,
    memory: Option<u64>,
}

async fn measure(name: &'static str, path: &str, records: &[LocalRecord]) -> Row {
    let bytes = std::fs::read(path).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let first = host(cache.path(), 0).load(&bytes).await.unwrap();
    let first_load = started.elapsed();
    assert!(!first.compile_info().cached);
    let compile = first.compile_info().duration;
    drop(first);

    // A restart: a new engine, the artifact from the cache.
    let fresh_host = host(cache.path(), 0);
    let started = Instant::now();
    let fresh = fresh_host.load(&bytes).await.unwrap();
    let cached_load = started.elapsed();
    assert!(fresh.compile_info().cached);

    let ctx = ctx();
    let fresh_call = per_call(&fresh, &ctx, &records[..records.len() / 4]).await;

    let warm_host = host(cache.path(), 16);
    let warm = warm_host.load(&bytes).await.unwrap();
    let warm_call = per_call(&warm, &ctx, records).await;
    let rate = records_per_second(&warm, &ctx, records).await;

    // 16 backends, one idle warm instance each.
    let before = resident_bytes();
    let ctxs: Vec<_> = (0..16).map(|_| self::ctx()).collect();
    for c in &ctxs {
        map(&warm, c, &records[0]).await;
    }
    assert!(warm.warm_instances() >= 16);
    let memory = before
        .zip(resident_bytes())
        .map(|(b, a)| a.saturating_sub(b) / 16);
    Row {
        name,
        size: bytes.len(),
        first_load,
        compile,
        cached_load,
        deserialize: fresh.compile_info().duration,
        fresh_call,
        warm_call,
        rate,
        memory,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("languages benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let records = customers();
    runtime.block_on(async {
        let mut rows = Vec::new();
        for (name, path) in [
            ("Rust (wit-bindgen)", junction_test_artifacts::CRM_MAPPER),
            ("Python (componentize-py)", junction_test_artifacts::CRM_PYTHON),
            ("JavaScript (componentize-js)", junction_test_artifacts::CRM_JS_MAPPER),
        ] {
            let row = measure(name, path, &records).await;
            println!(
                "{name}: size {:.1} MB, first load {} (compile {}), cached load {} (deserialize {}), \
                 per call fresh {} / warm {}, {:.0} records/s warm (2 at once), {} per instance",
                row.size as f64 / 1e6,
                ms(row.first_load),
                ms(row.compile),
                ms(row.cached_load),
                ms(row.deserialize),
                us(row.fresh_call),
                us(row.warm_call),
                row.rate,
                row.memory
                    .map_or("n/a".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            );
            rows.push(row);
        }
        // The same mapping compiled natively, for scale.
        let started = Instant::now();
        for r in &records {
            let data: serde_json::Value = serde_json::from_str(&r.data).unwrap();
            black_box(
                fixture_crm_mapper::customer_to_contact("customer", &r.id, &data, None, "customer")
                    .unwrap()
                    .to_string(),
            );
        }
        let native = records.len() as f64 / started.elapsed().as_secs_f64();
        println!("native Rust (no sandbox): {native:.0} records/s on one core");

        println!();
        println!(
            "| mapper | size | first load (of it: compile) | cached load (of it: deserialize) | per call, fresh instance | per call, warm instance | records/s, warm, 2 at once | memory per instance |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {:.1} MB | {} ({}) | {} ({}) | {} | {} | {:.0} | {} |",
                r.name,
                r.size as f64 / 1e6,
                ms(r.first_load),
                ms(r.compile),
                ms(r.cached_load),
                ms(r.deserialize),
                us(r.fresh_call),
                us(r.warm_call),
                r.rate,
                r.memory
                    .map_or("n/a".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            );
        }
    });
}
