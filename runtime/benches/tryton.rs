//! `cargo bench -p junction-runtime --bench tryton`: Junction against a
//! real Tryton 8.2 (on SQLite, one request at a time), each way, beside
//! Tryton's own limit for the same work measured in the same run by a
//! small client calling its REST API directly with the same concurrency
//! (eight requests in flight, as Junction's eight workers; a new
//! connection per request, as Junction's host makes them today). Tryton
//! on SQLite serves one request at a time (see `backends/tryton/serve.py`):
//! the others wait on its socket.
//!
//! - Import: 5,000 parties, 2,000 products and 2,000 sales of three lines
//!   (seeded through trytond's own API), imported by a fresh node (direct
//!   batch imports, customers then products then orders); the client reads
//!   the same pages (100 records, the connector's fields, the same order
//!   and stock context).
//! - Export: the reference shop's 5,000 customers and 2,000 orders of
//!   three lines over 2,000 products, imported into a node first (not
//!   timed), then exported to a fresh Tryton (one export job per customer
//!   and per order; each order's products made as its dependencies, with
//!   their stock); the client makes the same parties, products (template,
//!   variant, inventory) and sales in a second fresh Tryton.
//!
//! `TRYTON_BENCH_SCALE=0.1` runs a tenth of the records;
//! `TRYTON_BENCH_ONLY=import` or `export` one half.

use std::time::{Duration, Instant};

use junction_connector_tryton::mapping::fields;
use junction_connector_tryton::values::base64url;
use junction_demo_shop::{Seed, Shop, ShopConfig};
use junction_runtime::backend::BackendConfig;
use junction_runtime::queue::JobSpec;
use junction_runtime::storage::Storage;
use junction_runtime::storage::sqlite::SqliteStorage;
use junction_runtime::sync::EXPORT_RECORD;
use junction_runtime::sync::batch::batch_jobs;
use junction_tryton::{Install, Server};
use serde_json::{Value, json};

const PAGE: u32 = 100;
/// The direct client's concurrency: Junction's default workers per node.
const CLIENTS: usize = 8;

#[allow(dead_code)]
mod common;
use common::Bench;

/// A node with the bundled Tryton connector installed.
async fn node() -> Bench {
    let b = Bench::start(None).await;
    b.node
        .sync
        .install(junction_connectors::TRYTON)
        .await
        .unwrap();
    b
}

fn erp(server: &Server) -> BackendConfig {
    serde_json::from_value(json!({
        "name": "erp", "kind": "tryton", "version": "8.2.1",
        "base_url": server.base_url(), "allow_internal": [server.addr.to_string()],
        "auth": {"type": "bearer", "token": junction_tryton::KEY},
        "settings": {"company": server.company},
    }))
    .unwrap()
}

fn start(install: &Install, dir: &tempfile::TempDir, name: &str) -> Server {
    Server::start(install, &dir.path().join(name)).unwrap()
}

fn call(server: &Server, method: &str, path: &str, context: &str, body: Option<&Value>) -> Value {
    let (status, v) = server
        .exchange(
            method,
            &format!("/{}/rest/model/{path}", junction_tryton::DATABASE),
            &[
                ("Authorization", format!("bearer {}", junction_tryton::KEY)),
                ("X-Tryton-Context", context.to_string()),
            ],
            body,
        )
        .unwrap();
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

fn context(server: &Server, warehouse: Option<i64>) -> String {
    let mut c = json!({"company": server.company});
    if let Some(w) = warehouse {
        c["locations"] = json!([w]);
        c["stock_skip_warehouse"] = json!(true);
    }
    base64url(c.to_string().as_bytes())
}

fn warehouse(server: &Server) -> (i64, i64) {
    let ctx = context(server, None);
    let found = call(
        server,
        "GET",
        &format!(
            "stock.location?d={}&f=storage_location",
            base64url(br#"[["type", "=", "warehouse"]]"#)
        ),
        &ctx,
        None,
    );
    (
        found[0]["id"].as_i64().unwrap(),
        found[0]["storage_location"].as_i64().unwrap(),
    )
}

/// Tryton's limit for the import: every page the connector reads, read
/// directly; records read.
fn read_directly(server: &Server) -> usize {
    let (wh, _) = warehouse(server);
    let order = base64url(br#"[["write_date", "ASC"], ["id", "ASC"]]"#);
    let mut n = 0;
    for (model, local) in [
        ("party.party", "customer"),
        ("product.product", "product"),
        ("sale.sale", "order"),
    ] {
        let ctx = context(server, (local == "product").then_some(wh));
        let f: String = fields(local)
            .unwrap()
            .iter()
            .map(|f| format!("&f={f}"))
            .collect();
        // Pages CLIENTS at a time, until one comes back short.
        let mut offset = 0;
        loop {
            let offsets: Vec<usize> = (0..CLIENTS).map(|k| offset + k * PAGE as usize).collect();
            let lens = parallel(&offsets, |p| {
                call(
                    server,
                    "GET",
                    &format!("{model}?d={}&o={order}&s={PAGE}&p={p}{f}", base64url(b"[]")),
                    &ctx,
                    None,
                )
                .as_array()
                .unwrap()
                .len()
            });
            n += lens.iter().sum::<usize>();
            offset += CLIENTS * PAGE as usize;
            if lens.iter().any(|l| *l < PAGE as usize) {
                break;
            }
        }
    }
    n
}

/// Tryton's limit for the export: the same parties, products (with their
/// stock) and sales, made directly; records made.
fn write_directly(
    server: &Server,
    customers: &[Value],
    orders: &[Value],
    products: &[Value],
) -> usize {
    let ctx = context(server, None);
    let (_, storage) = warehouse(server);
    let unit = call(
        server,
        "GET",
        &format!("product.uom?d={}", base64url(br#"[["symbol", "=", "u"]]"#)),
        &ctx,
        None,
    )[0]["id"]
        .as_i64()
        .unwrap();
    let parties: std::collections::HashMap<String, i64> = parallel(customers, |c| {
        let name = format!("{} {}", c["first_name"].as_str().unwrap(), c["last_name"].as_str().unwrap());
        let made = call(
            server,
            "POST",
            "party.party",
            &ctx,
            Some(&json!({"name": name, "contact_mechanisms": [["create", [{"type": "email", "value": c["email"]}]]]})),
        );
        (c["email"].as_str().unwrap().to_string(), made["id"].as_i64().unwrap())
    })
    .into_iter()
    .collect();
    let variants: std::collections::HashMap<String, i64> = parallel(products, |p| {
        let made = call(
            server,
            "POST",
            "product.template?f=products",
            &ctx,
            Some(&json!({"name": p["name"], "type": "goods", "salable": true, "default_uom": unit, "sale_uom": unit,
                         "list_price": {"__class__": "Decimal", "decimal": p["price"].to_string()},
                         "products": [["create", [{"suffix_code": p["sku"]}]]]})),
        );
        let variant = made["products"][0].as_i64().unwrap();
        if p["stock"].as_f64().unwrap_or(0.0) > 0.0 {
            let inv = call(
                server,
                "POST",
                "stock.inventory",
                &ctx,
                Some(&json!({"location": storage, "lines": [["create", [{"product": variant, "quantity": p["stock"]}]]]})),
            );
            call(server, "POST", &format!("stock.inventory/{}/confirm", inv["id"]), &ctx, Some(&json!({})));
        }
        (p["sku"].as_str().unwrap().to_string(), variant)
    })
    .into_iter()
    .collect();
    parallel(orders, |o| {
        let lines: Vec<Value> = o["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| json!({"type": "line", "product": variants[l["sku"].as_str().unwrap()], "quantity": l["quantity"],
                            "unit": unit, "unit_price": {"__class__": "Decimal", "decimal": l["price"].to_string()},
                            "description": l["name"]}))
            .collect();
        call(
            server,
            "POST",
            "sale.sale",
            &ctx,
            Some(
                &json!({"party": parties[o["email"].as_str().unwrap()], "reference": o["number"], "lines": [["create", lines]]}),
            ),
        );
    });
    customers.len() + products.len() + orders.len()
}

async fn records(storage: &SqliteStorage, model: &str) -> Vec<(String, Value)> {
    storage
        .records(model, None, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.clone(), serde_json::from_str(&r.data).unwrap()))
        .collect()
}

/// `f` over `items` on `CLIENTS` threads (Junction's default worker
/// count), each taking the next item; what `f` returned, in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    *out[i].lock().unwrap() = Some(f(item));
                }
            });
        }
    });
    out.into_iter()
        .map(|m| m.into_inner().unwrap().unwrap())
        .collect()
}

fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("tryton benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let scale: f64 = std::env::var("TRYTON_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |full: usize| ((full as f64 * scale) as usize).max(3);
    let (parties, products, sales) = (n(5_000), n(2_000), n(2_000));
    let install =
        junction_tryton::install(std::path::Path::new(junction_test_artifacts::TRYTON_DIR))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("TRYTON_BENCH_ONLY").unwrap_or_default();
    rt.block_on(async {
        if only != "export" {
            import(&install, &dir, parties, products, sales).await;
        }
        if only != "import" {
            export(&install, &dir, parties, products, sales).await;
        }
    });
}

async fn import(
    install: &Install,
    dir: &tempfile::TempDir,
    parties: usize,
    products: usize,
    sales: usize,
) {
    {
        // Import.
        let source = start(install, dir, "import");
        let seeded = Instant::now();
        source.seed(install, parties, products, sales).unwrap();
        println!(
            "seeded Tryton with {parties} parties, {products} products, {sales} sales of 3 lines in {:.1} s",
            seeded.elapsed().as_secs_f64()
        );
        let b = node().await;
        b.node.sync.configure(&erp(&source)).await.unwrap();
        b.node
            .queue
            .enqueue_batch(&batch_jobs("erp", &["customer", "product", "order"], true))
            .await
            .unwrap();
        let took = b.settle().await;
        let imported = b.bound("erp").await as usize;
        assert_eq!(
            imported,
            parties + products + sales,
            "every record imported"
        );
        let t = Instant::now();
        let read = tokio::task::block_in_place(|| read_directly(&source));
        let direct = t.elapsed();
        println!(
            "import from Tryton: Junction {imported} records in {:.1} s = {:.0} records/s; Tryton's REST read directly {read} records in {:.1} s = {:.0} records/s; ratio {:.2}×",
            took.as_secs_f64(),
            rate(imported, took),
            direct.as_secs_f64(),
            rate(read, direct),
            rate(read, direct) / rate(imported, took)
        );
        b.node.stop(Duration::from_secs(5)).await.unwrap();
        drop(source);
    }
}

async fn export(
    install: &Install,
    dir: &tempfile::TempDir,
    parties: usize,
    products: usize,
    sales: usize,
) {
    {
        let shop = Shop::start(
            ShopConfig {
                seed: Seed {
                    seed: 5,
                    categories: 1,
                    products,
                    customers: parties,
                    orders: 0,
                },
                ..ShopConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        for i in 0..sales {
            let sku = |k: usize| format!("DS-{:05}", 1 + (i * 3 + k) % products);
            let (a, b2, c) = (sku(0), sku(1), sku(2));
            shop.place_order(1 + (i % parties) as i64, &[(&a, 1), (&b2, 2), (&c, 1)])
                .unwrap();
        }
        let b = node().await;
        b.node
            .sync
            .install(junction_connectors::MAGENTO)
            .await
            .unwrap();
        let shop_backend: BackendConfig = serde_json::from_value(json!({
            "name": "shop", "kind": "magento", "version": "2.4.6",
            "base_url": shop.base_url(), "allow_internal": [shop.addr.to_string()],
            "auth": {"type": "bearer", "token": shop.issue_token()},
        }))
        .unwrap();
        b.node.sync.configure(&shop_backend).await.unwrap();
        b.node
            .queue
            .enqueue_batch(&batch_jobs(
                "shop",
                &["category", "customer", "product", "order"],
                true,
            ))
            .await
            .unwrap();
        b.settle().await;
        let customers = records(&b.storage, "customer").await;
        let orders = records(&b.storage, "order").await;
        let local_products = records(&b.storage, "product").await;
        let target = start(install, dir, "export");
        b.node.sync.configure(&erp(&target)).await.unwrap();
        let mut specs = Vec::new();
        for (model, list) in [("customer", &customers), ("order", &orders)] {
            for (id, _) in list.iter() {
                let mut spec = JobSpec::new(
                    EXPORT_RECORD,
                    json!({"backend": "erp", "model": model, "local_id": id}),
                );
                spec.backend = Some("erp".into());
                specs.push(spec);
            }
        }
        let started = Instant::now();
        b.node.queue.enqueue_batch(&specs).await.unwrap();
        b.settle().await;
        let took = started.elapsed();
        let exported = b.bound("erp").await as usize;
        let used: std::collections::HashSet<&str> = orders
            .iter()
            .flat_map(|(_, o)| {
                o["lines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["sku"].as_str().unwrap())
            })
            .collect();
        let products_used: Vec<Value> = local_products
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| used.contains(p["sku"].as_str().unwrap()))
            .collect();
        assert_eq!(
            exported,
            customers.len() + orders.len() + products_used.len(),
            "every record exported"
        );
        drop(target);
        let direct_target = start(install, dir, "direct");
        let customers: Vec<Value> = customers.into_iter().map(|(_, c)| c).collect();
        let orders: Vec<Value> = orders.into_iter().map(|(_, o)| o).collect();
        let t = Instant::now();
        let made = tokio::task::block_in_place(|| {
            write_directly(&direct_target, &customers, &orders, &products_used)
        });
        let direct = t.elapsed();
        println!(
            "export to Tryton: Junction {exported} records ({} parties, {} products, {} sales) in {:.1} s = {:.0} records/s; Tryton's REST written directly {made} records in {:.1} s = {:.0} records/s; ratio {:.2}×",
            customers.len(),
            products_used.len(),
            orders.len(),
            took.as_secs_f64(),
            rate(exported, took),
            direct.as_secs_f64(),
            rate(made, direct),
            rate(made, direct) / rate(exported, took)
        );
        b.node.stop(Duration::from_secs(5)).await.unwrap();
    }
}
