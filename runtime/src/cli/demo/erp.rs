//! `junction demo --erp`: Tryton as a third system, the use case the OCA
//! connector framework was built for. A real Tryton 8.2 (installed from
//! `backends/tryton/tryton.lock` on the first run) serves a fresh copy of
//! its template database; the bundled Tryton connector serves it as
//! backend `erp`; new shop orders then travel shop → local records → ERP
//! as draft sales (their customers and products created first), and a
//! price changed in the ERP travels back to the shop. The shop's and the
//! ERP's connectors never talk to each other.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use junction_demo_shop::Shop;
use junction_runtime::backend::BackendConfig;
use junction_runtime::node::Node;
use junction_runtime::storage::Storage;
use junction_runtime::sync::batch::batch_job;
use junction_tryton::Server;
use serde_json::{Value, json};

use super::{BACKEND, settle, step};

/// The ERP backend's name.
pub(super) const ERP: &str = "erp";
/// New orders placed in the shop once the ERP has joined.
pub(super) const NEW_ORDERS: i64 = 10;

/// The running ERP, kept alive while the demo (or `--serve`) runs.
pub(super) struct Erp {
    pub(super) server: Server,
}

/// Install (first run) and start Tryton, and serve it as backend `erp`.
pub(super) async fn join(
    n: u32,
    node: &Node,
    data: &Path,
    tryton_dir: Option<PathBuf>,
) -> anyhow::Result<Erp> {
    let dir = tryton_dir.unwrap_or_else(|| data.join("tryton"));
    step(
        n,
        &format!(
            "Tryton 8.2, a real ERP, as a third system (from backends/tryton/tryton.lock; the first run installs it into {}, about a minute):",
            dir.display()
        ),
    );
    let run = data.join("tryton-data");
    let server = tokio::task::spawn_blocking(move || -> anyhow::Result<Server> {
        let install = junction_tryton::install(&dir).context(
            "installing Tryton (it needs python3 with venv and PyPI; or pass --tryton-dir to an installed copy)",
        )?;
        Ok(Server::start(&install, &run)?)
    })
    .await??;
    let c = node.sync.install(junction_connectors::TRYTON).await?;
    let config: BackendConfig = serde_json::from_value(json!({
        "name": ERP,
        "kind": "tryton",
        "version": "8.2.1",
        "base_url": server.base_url(),
        "allow_internal": [server.addr.to_string()],
        "auth": {"type": "bearer", "token": junction_tryton::KEY},
        "settings": {"company": server.company},
    }))?;
    node.sync.configure(&config).await?;
    println!(
        "   trytond on {} (database {}); connector {} {} ({}…) serves backend {ERP:?}, company {}",
        server.addr,
        server.database().display(),
        c.name,
        c.version,
        &c.digest[..19],
        server.company
    );
    Ok(Erp { server })
}

/// Place new orders in the shop and watch them become Tryton sales.
pub(super) async fn orders_to_erp(
    n: u32,
    node: &Node,
    storage: &dyn Storage,
    shop: &Shop,
    erp: &Erp,
    products: usize,
    customers: usize,
) -> anyhow::Result<()> {
    step(
        n,
        "new shop orders land in the ERP (shop import → local record → the Tryton connector's listener → export; each order's customer and products go first):",
    );
    let mut placed = Vec::new();
    for i in 0..NEW_ORDERS {
        let lines = [
            (demo_sku(i, 0, products), 1 + i % 3),
            (demo_sku(i, 1, products), 1),
        ];
        let lines: Vec<(&str, i64)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        let customer = 1 + (i as usize * 5 % customers) as i64;
        placed.push(
            shop.place_order(customer, &lines)
                .context("placing a demo order in the shop")?,
        );
    }
    let sales_before = bound(storage, "order").await?;
    node.queue
        .enqueue(batch_job(BACKEND, "order", false))
        .await?;
    super::watch(node, storage, ERP, &[("order", NEW_ORDERS as u64)]).await?;
    settle(node).await?;
    let sales = bound(storage, "order").await? - sales_before;
    println!(
        "   {} orders placed in the shop → {sales} Tryton sales; in Tryton now: {} parties and {} products made by Junction (each product with the shop's stock)",
        placed.len(),
        bound(storage, "customer").await?,
        bound(storage, "product").await?
    );
    let first = placed[0].to_string();
    let Some(local) = storage.binding(BACKEND, "order", &first).await? else {
        bail!("shop order {first} was not imported; see the failed jobs below");
    };
    let Some(sale) = storage
        .binding_to_external(ERP, "order", &local.local_id)
        .await?
    else {
        bail!(
            "order {first} did not reach the ERP; see the failed jobs below (`junction jobs --state failed`)"
        );
    };
    let (_, s) = rest(
        erp,
        "GET",
        &format!(
            "sale.sale/{sale}?f=reference&f=state&f=party.rec_name&f=total_amount&f=lines.product.code&f=lines.quantity&f=lines.unit_price"
        ),
        None,
    )
    .await?;
    let lines: Vec<String> = s["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{} × {} at {}",
                l["product"]["code"].as_str().unwrap_or("?"),
                l["quantity"],
                l["unit_price"]["decimal"].as_str().unwrap_or("?")
            )
        })
        .collect();
    println!(
        "   shop order {} → Tryton sale {sale} ({}) for {}: {}; total {}",
        s["reference"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        s["party"]["rec_name"].as_str().unwrap_or("?"),
        lines.join(", "),
        s["total_amount"]["decimal"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// The SKU of line `k` of new order `i`: spread over the shop's products.
fn demo_sku(i: i64, k: i64, products: usize) -> String {
    format!("DS-{:05}", 1 + (i * 7 + k * 13) as usize % products.max(1))
}

/// Change the price in Tryton of a product the new orders took there,
/// and watch it reach the shop.
pub(super) async fn price_to_shop(
    n: u32,
    node: &Node,
    storage: &dyn Storage,
    shop: &Shop,
    erp: &Erp,
    products: usize,
) -> anyhow::Result<()> {
    step(
        n,
        "a price changed in the ERP lands in the shop (incremental ERP import → local record → the Magento connector's listener → export):",
    );
    // The second order's first line: not a product the demo edited before.
    let sku = &demo_sku(1, 0, products);
    let Some(local) = storage.binding(BACKEND, "product", sku).await? else {
        bail!("product {sku} was not imported from the shop");
    };
    let Some(variant) = storage
        .binding_to_external(ERP, "product", &local.local_id)
        .await?
    else {
        bail!("product {sku} is not in the ERP (no demo order named it)");
    };
    let (_, v) = rest(
        erp,
        "GET",
        &format!("product.product/{variant}?f=template&f=template.list_price"),
        None,
    )
    .await?;
    let template = v["template"]["id"]
        .as_i64()
        .context("the variant's template")?;
    let old: f64 = v["template"]["list_price"]["decimal"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .context("the template's list price")?;
    let new = ((old * 1.2) * 100.0).round() / 100.0;
    let (status, answer) = rest(
        erp,
        "PUT",
        &format!("product.template/{template}"),
        Some(json!({"list_price": {"__class__": "Decimal", "decimal": new.to_string()}})),
    )
    .await?;
    if status != 200 {
        bail!("Tryton refused the price change ({status}): {answer}");
    }
    let job = node.queue.enqueue(batch_job(ERP, "product", true)).await?;
    settle(node).await?;
    let result = storage
        .job(job.id)
        .await?
        .and_then(|j| j.result.or(j.error_message))
        .unwrap_or_default();
    println!("   Tryton list price of {sku}: {old} → {new}; ERP import: {result}");
    println!(
        "   the shop now says {}",
        shop.product(sku)
            .map(|p| p["price"].to_string())
            .unwrap_or_default()
    );
    Ok(())
}

/// Where to look at the ERP's side.
pub(super) fn where_to_look(erp: &Erp) {
    let s = &erp.server;
    println!("\nThe ERP's data");
    println!(
        "   database: {} (Tryton on SQLite; replaced on every demo run)",
        s.database().display()
    );
    println!(
        "   REST:     curl -H 'Authorization: bearer {}' -H 'X-Tryton-Context: {}' '{}/rest/model/sale.sale?f=reference&f=state&f=party.rec_name'",
        junction_tryton::KEY,
        s.context,
        s.base_url()
    );
    println!(
        "   desktop:  pip install tryton==8.2.*, then connect to {} (database {}, user admin, password admin) while the demo serves (--serve)",
        s.addr,
        junction_tryton::DATABASE
    );
    println!("   log:      {}", s.dir().join("trytond.log").display());
}

async fn bound(storage: &dyn Storage, model: &str) -> anyhow::Result<i64> {
    Ok(storage
        .binding_counts(ERP)
        .await?
        .into_iter()
        .find(|(m, _)| m == model)
        .map_or(0, |(_, n)| n))
}

async fn rest(
    erp: &Erp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    Ok(tokio::task::block_in_place(|| {
        erp.server.rest(method, path, body.as_ref())
    })?)
}
