//! `cargo bench -p junction-runtime --bench distance`: sync at internet
//! distance. The reference shop is served over TLS (a TLS relay with a
//! certificate from a private CA, which the backend's `tls.ca_file`
//! trusts) behind a relay that holds every byte for half a round trip:
//! 0, 20 and 80 ms per round trip. At each distance, a direct import of
//! the shop (categories, customers, products, orders) and a one-job-per-
//! record import of its customers, with connections kept (the default)
//! and with `keep_alive = false`, the direct import with pages of 100
//! (the default) and of 500 records (`page_size`), side by side in one
//! run on fresh SQLite nodes, with the TLS handshakes the relay saw.
//! `DISTANCE_RTTS=0,80` picks the distances.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use junction_backend_kit::tls::{Authority, Delay, TlsCounts, TlsRelay};
use junction_demo_shop::{Seed, Shop, ShopConfig};
use junction_runtime::backend::BackendConfig;
use junction_runtime::sync::batch::batch_jobs;
use serde_json::json;

#[allow(dead_code)]
mod common;
use common::Bench;

const DIRECT: [&str; 4] = ["category", "customer", "product", "order"];
const PER_RECORD: [&str; 1] = ["customer"];

fn seed() -> Seed {
    Seed {
        seed: 42,
        categories: 20,
        products: 2_000,
        customers: 400,
        orders: 400,
    }
}

struct Run {
    records: i64,
    elapsed: Duration,
    handshakes: u64,
    connections: u64,
    /// What the backend's pool says it did.
    pool: junction_runtime::capabilities::egress::PoolStats,
}

/// One import on a fresh node against the shop at `port` (the delay
/// relay, or the TLS relay itself at distance 0).
async fn import(
    shop: &Shop,
    port: u16,
    ca_file: &std::path::Path,
    keep_alive: bool,
    direct: bool,
    page_size: u32,
    counts: &TlsCounts,
) -> Run {
    let b = Bench::start(Some(8)).await;
    let node = &b.node;
    node.sync
        .install(junction_connectors::MAGENTO)
        .await
        .unwrap();
    let config: BackendConfig = serde_json::from_value(json!({
        "name": "shop", "kind": "magento", "version": "2.4.6",
        "base_url": format!("https://127.0.0.1:{port}"),
        "allow_internal": [format!("127.0.0.1:{port}")],
        "auth": {"type": "bearer", "token": shop.issue_token()},
        "tls": {"ca_file": ca_file},
        "egress": {"keep_alive": keep_alive},
        "page_size": page_size,
    }))
    .unwrap();
    node.sync.configure(&config).await.unwrap();
    let models: &[&str] = if direct { &DIRECT } else { &PER_RECORD };
    let (handshakes, connections) = (
        counts.handshakes(),
        counts.connections.load(Ordering::SeqCst),
    );
    let started = Instant::now();
    node.queue
        .enqueue_batch(&batch_jobs("shop", models, direct))
        .await
        .unwrap();
    b.settle().await;
    let elapsed = started.elapsed();
    let pool = node
        .sync
        .backend("shop")
        .await
        .unwrap()
        .ctx
        .egress
        .pool_stats();
    let records = b.bound("shop").await;
    b.stop().await;
    Run {
        records,
        elapsed,
        handshakes: counts.handshakes() - handshakes,
        connections: counts.connections.load(Ordering::SeqCst) - connections,
        pool,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("distance benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let rtts: Vec<u64> = std::env::var("DISTANCE_RTTS")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 20, 80]);
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
        let ca = Authority::new("Junction benchmark CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        // The shop speaks HTTP/1.1; the relay is a TLS pipe to it.
        let relay = TlsRelay::start(
            shop.addr,
            ca.issue(&["127.0.0.1"]).server_config(&[b"http/1.1"], None),
        )
        .await;
        let s = seed();
        println!(
            "demo-shop over TLS (private CA), 8 workers; direct: {} records ({} categories, {} customers, {} products, {} orders); one job per record: {} customers",
            s.categories + s.customers + s.products + s.orders,
            s.categories,
            s.customers,
            s.products,
            s.orders,
            s.customers
        );
        // The first node compiles the connector into the cache; the
        // measured ones load it from there.
        import(&shop, relay.addr.port(), &ca_file, true, true, 100, &relay.counts).await;
        println!(
            "{:>6} {:<20} {:>5} {:<9} {:>8} {:>10} {:>11} {:>12} {:>14}",
            "rtt", "import", "page", "pool", "seconds", "records/s", "handshakes", "connections", "pool reused"
        );
        let mut direct_rates: Vec<(u64, u32, bool, f64)> = Vec::new();
        for &rtt in &rtts {
            let delay = if rtt == 0 {
                None
            } else {
                Some(Delay::start(relay.addr, Duration::from_millis(rtt) / 2).await)
            };
            let port = delay.as_ref().map_or(relay.addr.port(), |d| d.addr.port());
            let runs: [(bool, u32, bool); 6] = [
                (true, 100, true),
                (true, 100, false),
                (true, 500, true),
                (true, 500, false),
                (false, 100, true),
                (false, 100, false),
            ];
            for (direct, page_size, keep_alive) in runs {
                let run = import(&shop, port, &ca_file, keep_alive, direct, page_size, &relay.counts).await;
                let rate = run.records as f64 / run.elapsed.as_secs_f64();
                if direct {
                    direct_rates.push((rtt, page_size, keep_alive, rate));
                }
                println!(
                    "{:>4}ms {:<20} {:>5} {:<9} {:>8.2} {:>10.0} {:>11} {:>12} {:>14}",
                    rtt,
                    if direct { "direct" } else { "one job per record" },
                    page_size,
                    if keep_alive { "kept" } else { "not kept" },
                    run.elapsed.as_secs_f64(),
                    rate,
                    run.handshakes,
                    run.connections,
                    run.pool.reused
                );
            }
        }
        for (rtt, page_size, keep, rate) in &direct_rates {
            let base = direct_rates
                .iter()
                .find(|(r, p, k, _)| *r == 0 && p == page_size && *k)
                .map(|r| r.3);
            if let (Some(base), true) = (base, *rtt > 0) {
                println!(
                    "direct import at {rtt} ms, pages of {page_size}, connections {}: {:.0} % of the same import's kept rate at 0 ms",
                    if *keep { "kept" } else { "not kept" },
                    100.0 * rate / base
                );
            }
        }
    });
}
