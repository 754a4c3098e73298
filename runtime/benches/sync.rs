//! `cargo bench -p junction-runtime --bench sync`: a full import of
//! demo-shop (10,000 products, 2,000 orders, their 1,000 customers and 20
//! categories) through the Magento connector on a fresh SQLite file,
//! records per second end to end — and, in the same run, the same import
//! with the connector's mapping code compiled natively (no sandbox) in
//! place of the mapper component, for the sandbox's overhead ratio.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use junction_connector_magento::mapping::{self, Shape};
use junction_demo_shop::{Seed, Shop, ShopConfig};
use junction_guest::mapping::Binder;
use junction_runtime::CallContext;
use junction_runtime::backend::BackendConfig;
use junction_runtime::error::{CallError, GuestError};
use junction_runtime::host::CallReport;
use junction_runtime::model::{Dependency, LocalDependency, LocalRecord, RemoteRecord};
use junction_runtime::storage::Storage;
use junction_runtime::sync::MapperUnit;
use junction_runtime::sync::batch::batch_jobs;
use serde_json::json;

#[allow(dead_code)]
mod common;
use common::Bench;

const MODELS: [&str; 4] = ["category", "customer", "product", "order"];

fn seed() -> Seed {
    Seed {
        seed: 42,
        categories: 20,
        products: 10_000,
        customers: 1_000,
        orders: 2_000,
    }
}

/// The Magento connector's mapping code, compiled into this benchmark.
struct NativeMagento {
    storage: Arc<dyn Storage>,
}

/// The bindings a record's relations need, read from storage before the
/// (synchronous) mapping code runs — as the guest reads them through its
/// binder import.
struct PrefetchedBinder(HashMap<(String, String), String>);

impl Binder for PrefetchedBinder {
    fn to_local(&self, model: &str, external_id: &str) -> Option<String> {
        self.0
            .get(&(model.to_string(), external_id.to_string()))
            .cloned()
    }
    fn to_external(&self, _model: &str, _local_id: &str) -> Option<String> {
        None
    }
}

fn report<T>(result: Result<T, junction_guest::Error>, started: Instant) -> CallReport<T> {
    CallReport {
        result: result.map_err(|e| {
            CallError::Guest(
                GuestError::Permanent {
                    message: e.to_string(),
                },
                "native",
            )
        }),
        log: Vec::new(),
        log_truncated: false,
        audit: Vec::new(),
        audit_dropped: 0,
        duration: started.elapsed(),
        digest: "native".into(),
    }
}

fn guest_record(r: &RemoteRecord) -> junction_guest::RemoteRecord {
    junction_guest::RemoteRecord {
        external_id: r.external_id.clone(),
        updated_at: r.updated_at.clone(),
        data: serde_json::from_str(&r.data).unwrap_or_default(),
    }
}

fn guest_local(r: LocalRecord) -> junction_guest::LocalRecord {
    junction_guest::LocalRecord {
        data: serde_json::from_str(&r.data).unwrap_or_default(),
        model: r.model,
        id: r.id,
        version: r.version,
        updated_at: r.updated_at,
    }
}

#[async_trait]
impl MapperUnit for NativeMagento {
    async fn dependencies(
        &self,
        _ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<Vec<Dependency>> {
        let started = Instant::now();
        let r = mapping::dependencies(model, &guest_record(record), Shape::Current).map(|deps| {
            deps.into_iter()
                .map(|d| Dependency {
                    model: d.model,
                    external_id: d.external_id,
                })
                .collect()
        });
        report(r, started)
    }

    async fn map_import(
        &self,
        ctx: &Arc<CallContext>,
        model: &str,
        record: &RemoteRecord,
    ) -> CallReport<String> {
        let started = Instant::now();
        let record = guest_record(record);
        let mut bound = HashMap::new();
        for d in mapping::dependencies(model, &record, Shape::Current).unwrap_or_default() {
            if let Ok(Some(local)) = self
                .storage
                .binding_to_local(&ctx.backend.name, &d.model, &d.external_id)
                .await
            {
                bound.insert((d.model, d.external_id), local);
            }
        }
        let r = mapping::map_import(model, &record, &PrefetchedBinder(bound), Shape::Current)
            .map(|v| v.to_string());
        report(r, started)
    }

    async fn map_export(
        &self,
        _ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
        changed: Option<Vec<String>>,
    ) -> CallReport<String> {
        let started = Instant::now();
        let r = mapping::map_export(
            model,
            &guest_local(record),
            changed.as_deref(),
            Shape::Current,
        )
        .map(|v| v.to_string());
        report(r, started)
    }

    async fn export_dependencies(
        &self,
        _ctx: &Arc<CallContext>,
        model: &str,
        record: LocalRecord,
    ) -> CallReport<Vec<LocalDependency>> {
        let started = Instant::now();
        let deps = mapping::export_dependencies(model, &guest_local(record))
            .into_iter()
            .map(|d| LocalDependency {
                model: d.model,
                local_id: d.local_id,
            })
            .collect();
        report(Ok(deps), started)
    }
}

struct Run {
    records: i64,
    elapsed: Duration,
}

async fn import(shop: &Shop, native: bool, direct: bool, concurrency: usize) -> Run {
    let b = Bench::start(Some(concurrency)).await;
    let (node, storage) = (&b.node, &b.storage);
    node.sync
        .install(junction_connectors::MAGENTO)
        .await
        .unwrap();
    let config: BackendConfig = serde_json::from_value(json!({
        "name": "shop", "kind": "magento", "version": "2.4.6",
        "base_url": shop.base_url(), "allow_internal": [shop.addr.to_string()],
        "auth": {"type": "bearer", "token": shop.issue_token()},
    }))
    .unwrap();
    node.sync.configure(&config).await.unwrap();
    if native {
        node.sync
            .replace_mapper(
                "shop",
                Arc::new(NativeMagento {
                    storage: storage.clone(),
                }),
                "native",
            )
            .await
            .unwrap();
    }
    let started = Instant::now();
    node.queue
        .enqueue_batch(&batch_jobs("shop", &MODELS, direct))
        .await
        .unwrap();
    b.settle().await;
    let elapsed = started.elapsed();
    let records = b.bound("shop").await;
    b.stop().await;
    Run { records, elapsed }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("sync benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let shop = Shop::start(
            ShopConfig {
                seed: seed(),
                ..ShopConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let s = seed();
        let expected = (s.categories + s.products + s.customers + s.orders) as i64;
        println!(
            "full import of demo-shop: {} products, {} orders, {} customers, {} categories ({} records)",
            s.products, s.orders, s.customers, s.categories, expected
        );
        let concurrency = std::env::var("JUNCTION_BENCH_CONCURRENCY")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(8);
        let modes: Vec<bool> = match std::env::var("JUNCTION_BENCH_MODE").as_deref() {
            Ok("direct") => vec![true],
            Ok("jobs") => vec![false],
            _ => vec![true, false],
        };
        for direct in modes {
            let mode = if direct { "direct (batch imports in its job)" } else { "one job per record" };
            let mut rows = Vec::new();
            for native in [false, true, false, true] {
                let run = import(&shop, native, direct, concurrency).await;
                assert_eq!(run.records, expected);
                rows.push((native, run.elapsed));
                println!(
                    "  {mode:<36} {:<22} {:>6.2} s  {:>7.0} records/s",
                    if native { "mapper native" } else { "mapper sandboxed" },
                    run.elapsed.as_secs_f64(),
                    run.records as f64 / run.elapsed.as_secs_f64()
                );
            }
            let best = |n: bool| rows.iter().filter(|r| r.0 == n).map(|r| r.1).min().unwrap();
            println!(
                "  {mode:<36} sandbox overhead (best of 2 each): {:.2}x native",
                best(false).as_secs_f64() / best(true).as_secs_f64()
            );
        }
    });
}
