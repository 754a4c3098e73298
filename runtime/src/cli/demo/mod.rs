//! `junction demo`: a whole sync on one machine, with nothing to set up.
//! demo-shop (Magento 2 REST) runs on a loopback port; the Magento
//! connector built with this binary is installed into a fresh SQLite
//! database; a full import runs through the sandbox with progress bars;
//! local edits are exported back; shop edits come in incrementally; with
//! `--erp` a real Tryton joins as a third system ([`erp`]); a summary says
//! what happened and what to try next.

mod erp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use junction_demo_shop::{Seed, Shop, ShopConfig};
use junction_runtime::backend::BackendConfig;
use junction_runtime::host::HostConfig;
use junction_runtime::node::{Node, NodeConfig};
use junction_runtime::queue::job::{Job, JobFilter, JobState};
use junction_runtime::storage::Storage;
use junction_runtime::storage::sqlite::SqliteStorage;
use junction_runtime::sync::EXPORT_RECORD;
use junction_runtime::sync::batch::{batch_job, batch_jobs};
use serde_json::{Value, json};

/// In dependency order: what a model's records point to comes first.
const MODELS: [&str; 4] = ["category", "customer", "product", "order"];
const BACKEND: &str = "demo-shop";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the demo's database and compiled-component cache; its
    /// database is replaced on every run.
    #[arg(long, default_value = "junction-demo")]
    data: PathBuf,
    #[arg(long, default_value_t = 2000)]
    products: usize,
    #[arg(long, default_value_t = 300)]
    customers: usize,
    #[arg(long, default_value_t = 500)]
    orders: usize,
    #[arg(long, default_value_t = 12)]
    categories: usize,
    /// Jobs running at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Make the shop answer 429 above this many requests per second, to
    /// watch rate-limited jobs wait and retry.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Afterwards, keep the shop and the node running and serve the admin
    /// API and the dashboard on this address (e.g. 127.0.0.1:7171), with
    /// a config file in the demo folder for the CLI.
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
    /// Add a real Tryton 8.2 ERP as a third system: new shop orders land
    /// in it as sales, an ERP price change lands in the shop. The first
    /// run installs Tryton (python3 with venv, and PyPI, needed).
    #[arg(long)]
    erp: bool,
    /// Where Tryton is (or is to be) installed for --erp; default
    /// `<data>/tryton`.
    #[arg(long, value_name = "DIR", requires = "erp")]
    tryton_dir: Option<PathBuf>,
}

fn step(n: u32, text: &str) {
    println!("\n{n}. {text}");
}

/// Remove the database files of an earlier run (never anything else).
fn fresh_database(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the demo folder {}", dir.display()))?;
    let db = dir.join("junction.db");
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
        }
    }
    Ok(db)
}

pub async fn run(args: DemoArgs, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    // The demo edits two products and the third order, and every order
    // needs a customer and products, every product a category.
    for (flag, value, least) in [
        ("--products", args.products, 2),
        ("--orders", args.orders, 3),
        ("--customers", args.customers, 1),
        ("--categories", args.categories, 1),
    ] {
        if value < least {
            bail!("{flag} must be at least {least} for the demo (got {value})");
        }
    }
    let began = Instant::now();
    println!(
        "Junction demo: a full sync with a Magento-shaped shop{}, through the Wasm sandbox",
        if args.erp { " and a Tryton ERP" } else { "" }
    );

    let seed = Seed {
        seed: 42,
        categories: args.categories,
        products: args.products,
        customers: args.customers,
        orders: args.orders,
    };
    let mut in_shop: BTreeMap<&str, usize> = MODELS
        .iter()
        .copied()
        .zip([seed.categories, seed.customers, seed.products, seed.orders])
        .collect();
    let shop = Shop::start(
        ShopConfig {
            seed: seed.clone(),
            rate_limit: args.rate_limit,
            ..ShopConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await
    .context("starting demo-shop on a loopback port")?;
    step(
        1,
        &format!(
            "demo-shop (Magento 2 REST API shape) on {}: {} categories, {} products, {} customers, {} orders{}",
            shop.base_url(),
            seed.categories,
            seed.products,
            seed.customers,
            seed.orders,
            args.rate_limit
                .map(|r| format!(", 429 above {r} requests/s"))
                .unwrap_or_default()
        ),
    );

    let db = fresh_database(&args.data)?;
    let storage = Arc::new(
        SqliteStorage::open(&db)
            .await
            .with_context(|| format!("opening {}", db.display()))?,
    );
    let node = Node::start(
        storage.clone(),
        NodeConfig {
            name: "demo".into(),
            concurrency: args.concurrency,
            host: HostConfig {
                cache_dir: Some(cache_dir.unwrap_or_else(|| args.data.join("cache"))),
                ..HostConfig::default()
            },
            secret_key: Arc::new(
                junction_runtime::secrets::SecretKey::load_or_create(&args.data.join("secret.key"))
                    .context("the demo's secret key")?,
            ),
            ..NodeConfig::default()
        },
    )
    .await?;
    step(2, &format!("database: {} (SQLite, fresh)", db.display()));

    let mut installed = Vec::new();
    for bytes in [
        junction_connectors::MAGENTO,
        junction_connectors::MAGENTO_LEGACY,
    ] {
        let c = node.sync.install(bytes).await?;
        installed.push(format!(
            "{} {} for {} {} ({}…, {:.1} MB)",
            c.name,
            c.version,
            c.backend_kind,
            c.backend_versions,
            &c.digest[..19],
            bytes.len() as f64 / 1e6
        ));
    }
    step(
        3,
        &format!("installed connectors:\n   {}", installed.join("\n   ")),
    );

    let config: BackendConfig = serde_json::from_value(json!({
        "name": BACKEND,
        "kind": "magento",
        "version": "2.4.6",
        "base_url": shop.base_url(),
        "allow_internal": [shop.addr.to_string()],
        "auth": {"type": "bearer", "token": shop.issue_token()},
    }))?;
    let units = node.sync.configure(&config).await?;
    step(
        4,
        &format!(
            "backend {BACKEND:?}: magento 2.4.6 → adapter {}, mapper {} (the registry's picks by version); outbound HTTP to {} only, token added by the host",
            units.adapter_labels(),
            units.mapper_labels(),
            shop.addr
        ),
    );

    step(
        5,
        "full import (one batch job per model, in dependency order; each imports its search pages directly):",
    );
    let import_began = Instant::now();
    node.queue
        .enqueue_batch(&batch_jobs(BACKEND, &MODELS, true))
        .await?;
    let expected: Vec<(&str, u64)> = MODELS.iter().map(|m| (*m, in_shop[m] as u64)).collect();
    watch(&node, storage.as_ref(), BACKEND, &expected).await?;
    let import_time = import_began.elapsed();
    let imported: i64 = storage
        .binding_counts(BACKEND)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    println!(
        "   {imported} records in {:.1} s ({:.0} records/s)",
        import_time.as_secs_f64(),
        imported as f64 / import_time.as_secs_f64()
    );

    step(
        6,
        "local changes flow back to the shop (listener → export jobs):",
    );
    let changes = local_changes(&node, storage.as_ref()).await?;
    settle(&node).await?;
    for (what, check) in changes {
        println!("   {what}: shop now says {}", check(&shop));
    }

    step(
        7,
        "shop-side changes come in incrementally (since the cursor minus a 30 s safety buffer, one import job per record):",
    );
    let edited: Vec<String> = (1..=5.min(seed.products))
        .map(|i| format!("DS-{i:05}"))
        .collect();
    for sku in &edited {
        shop.edit_product(sku, |p| {
            p["name"] = json!(format!(
                "{} (renamed in the shop)",
                p["name"].as_str().unwrap_or("")
            ))
        });
    }
    let batch = node
        .queue
        .enqueue(batch_job(BACKEND, "product", false))
        .await?;
    settle(&node).await?;
    if let Some(job) = storage.job(batch.id).await? {
        println!(
            "   renamed {} products in the shop; batch import: {}",
            edited.len(),
            job.result.or(job.error_message).unwrap_or_default()
        );
    }
    if let Some(first) = edited.first()
        && let Some(b) = storage.binding(BACKEND, "product", first).await?
        && let Some(r) = storage.record("product", &b.local_id).await?
    {
        let data: Value = serde_json::from_str(&r.data)?;
        println!(
            "   local product {} ({}) is now named {}",
            b.external_id, b.local_id, data["name"]
        );
    }

    let erp = if args.erp {
        let erp = erp::join(8, &node, &args.data, args.tryton_dir.clone()).await?;
        in_shop
            .entry("order")
            .and_modify(|n| *n += erp::NEW_ORDERS as usize);
        erp::orders_to_erp(
            9,
            &node,
            storage.as_ref(),
            &shop,
            &erp,
            seed.products,
            seed.customers,
        )
        .await?;
        erp::price_to_shop(10, &node, storage.as_ref(), &shop, &erp, seed.products).await?;
        Some(erp)
    } else {
        None
    };

    summary(&node, storage.as_ref(), &in_shop, &db, began.elapsed()).await?;
    if let Some(erp) = &erp {
        erp::where_to_look(erp);
    }
    if let Some(listen) = args.serve {
        let config = write_service_config(&args.data, listen)?;
        let token = std::fs::read_to_string(args.data.join("admin.token"))?;
        let state = junction_runtime::api::ApiState::new(&node, token.trim(), None);
        println!(
            "\nserving the demo (the shop keeps running on {}); the admin token is in {}",
            shop.addr,
            args.data.join("admin.token").display()
        );
        return super::serve::serve_until_stopped(
            node,
            state,
            listen,
            &config.display().to_string(),
            Duration::from_secs(5),
        )
        .await;
    }
    node.stop(Duration::from_secs(5)).await?;
    Ok(())
}

/// A fresh admin token and a `junction.toml` beside the demo's database,
/// so that `junction --config <data>/junction.toml …` reaches the server.
fn write_service_config(data: &Path, listen: std::net::SocketAddr) -> anyhow::Result<PathBuf> {
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Readable by its owner only, like any credential file.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(data.join("admin.token"))
            .context("writing the demo's admin token")?;
        writeln!(f, "{token}").context("writing the demo's admin token")?;
    }
    let path = data.join("junction.toml");
    std::fs::write(
        &path,
        format!(
            "# Written by `junction demo --serve`: the demo's service, for the CLI.\n\
             data_dir = \".\"\nlisten = \"{listen}\"\nadmin_token_file = \"admin.token\"\n"
        ),
    )
    .context("writing the demo's junction.toml")?;
    Ok(path)
}

async fn settle(node: &Node) -> anyhow::Result<()> {
    if !node.settle(Duration::from_secs(600)).await? {
        bail!(
            "the sync did not finish within 10 minutes; see `junction_runtime` jobs in the database"
        );
    }
    Ok(())
}

/// Progress bars of `backend`'s records bound per model since the call
/// (each bar's length the expected count), until the node is idle.
async fn watch(
    node: &Node,
    storage: &dyn Storage,
    backend: &str,
    expected: &[(&str, u64)],
) -> anyhow::Result<()> {
    let before: BTreeMap<String, i64> =
        storage.binding_counts(backend).await?.into_iter().collect();
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let style =
        ProgressStyle::with_template("   {prefix:>9} [{bar:40}] {pos:>6}/{len:6} {per_sec}")?
            .progress_chars("=> ");
    let mut by_model = BTreeMap::new();
    for (m, total) in expected {
        let bar = bars.add(ProgressBar::new(*total).with_style(style.clone()));
        bar.set_prefix(m.to_string());
        by_model.insert(m.to_string(), bar);
    }
    let update = |counts: Vec<(String, i64)>| {
        for (model, n) in counts {
            if let Some(bar) = by_model.get(&model) {
                let was = before.get(&model).copied().unwrap_or(0);
                bar.set_position((n - was).max(0) as u64);
            }
        }
    };
    let mut quiet = 0;
    while quiet < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        update(storage.binding_counts(backend).await?);
        quiet = if node.outstanding().await? == (0, 0) {
            quiet + 1
        } else {
            0
        };
    }
    update(storage.binding_counts(backend).await?);
    for bar in by_model.values() {
        bar.finish();
    }
    Ok(())
}

type Check = Box<dyn Fn(&Shop) -> String>;

/// Edit a few local records as a user of Junction would.
async fn local_changes(node: &Node, storage: &dyn Storage) -> anyhow::Result<Vec<(String, Check)>> {
    let mut out: Vec<(String, Check)> = Vec::new();
    let edit = |model: &'static str,
                external_id: String,
                change: Box<dyn Fn(&mut Value) + Send>| async move {
        let b = storage
            .binding(BACKEND, model, &external_id)
            .await?
            .with_context(|| format!("{model} {external_id} was not imported"))?;
        node.bus
            .edit_record(model, &b.local_id, change)
            .await?
            .with_context(|| format!("local {model} {} is missing", b.local_id))
    };
    for (i, sku) in ["DS-00001", "DS-00002"].into_iter().enumerate() {
        if i == 0 {
            let (before, after) = edit(
                "product",
                sku.into(),
                Box::new(|d| {
                    let p = d["price"].as_f64().unwrap_or(0.0);
                    d["price"] = json!((p * 110.0).round() / 100.0);
                }),
            )
            .await?;
            let sku = sku.to_string();
            out.push((
                format!(
                    "product {sku} price {} → {}",
                    before["price"], after["price"]
                ),
                Box::new(move |shop| {
                    shop.product(&sku)
                        .map(|p| p["price"].to_string())
                        .unwrap_or_default()
                }),
            ));
        } else {
            let (before, after) =
                edit("product", sku.into(), Box::new(|d| d["stock"] = json!(0))).await?;
            let sku = sku.to_string();
            out.push((
                format!(
                    "product {sku} stock {} → {}",
                    before["stock"], after["stock"]
                ),
                Box::new(move |shop| {
                    shop.product(&sku)
                        .map(|p| {
                            let s = &p["extension_attributes"]["stock_item"];
                            format!("qty {}, in stock {}", s["qty"], s["is_in_stock"])
                        })
                        .unwrap_or_default()
                }),
            ));
        }
    }
    let (before, after) = edit(
        "order",
        "3".into(),
        Box::new(|d| d["state"] = json!("holded")),
    )
    .await?;
    out.push((
        format!(
            "order {} state {} → {}",
            after["number"].as_str().unwrap_or("?"),
            before["state"].as_str().unwrap_or("?"),
            after["state"].as_str().unwrap_or("?")
        ),
        Box::new(|shop| {
            shop.order(3)
                .and_then(|o| o["state"].as_str().map(str::to_string))
                .unwrap_or_default()
        }),
    ));
    Ok(out)
}

async fn all_jobs(storage: &dyn Storage) -> anyhow::Result<Vec<Job>> {
    Ok(storage
        .jobs(&JobFilter {
            limit: u32::MAX,
            ..JobFilter::default()
        })
        .await?)
}

async fn summary(
    node: &Node,
    storage: &dyn Storage,
    in_shop: &BTreeMap<&str, usize>,
    db: &Path,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let bound: BTreeMap<String, i64> = storage.binding_counts(BACKEND).await?.into_iter().collect();
    // With --erp: the ERP's records bound to local ones (whether exported
    // there, directly or as an order's dependency, or imported).
    let in_erp: BTreeMap<String, i64> = storage
        .binding_counts(erp::ERP)
        .await?
        .into_iter()
        .collect();
    let jobs = all_jobs(storage).await?;
    let mut exported: BTreeMap<String, i64> = BTreeMap::new();
    for j in jobs.iter().filter(|j| {
        j.function == EXPORT_RECORD
            && j.state == JobState::Done
            && j.backend.as_deref() == Some(BACKEND)
    }) {
        let args: Value = serde_json::from_str(&j.args).unwrap_or_default();
        *exported
            .entry(args["model"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let erp_column = |v: String| if in_erp.is_empty() { String::new() } else { v };
    println!("\nSummary");
    println!(
        "   {:<10} {:>8} {:>9} {:>9}{}",
        "model",
        "in shop",
        "imported",
        "exported",
        erp_column(format!(" {:>7}", "in ERP"))
    );
    for m in MODELS {
        println!(
            "   {:<10} {:>8} {:>9} {:>9}{}",
            m,
            in_shop[m],
            bound.get(m).copied().unwrap_or(0),
            exported.get(m).copied().unwrap_or(0),
            erp_column(format!(" {:>7}", in_erp.get(m).copied().unwrap_or(0)))
        );
    }
    let count = |s: JobState| jobs.iter().filter(|j| j.state == s).count();
    let retried = jobs.iter().filter(|j| j.tries > 1).count();
    println!(
        "   jobs: {} run, {} done, {} failed, {} retried",
        jobs.len(),
        count(JobState::Done),
        count(JobState::Failed),
        retried
    );
    for j in jobs.iter().filter(|j| j.state == JobState::Failed).take(5) {
        println!(
            "     failed #{}: {}",
            j.id,
            j.error_message.as_deref().unwrap_or("")
        );
    }
    println!("   elapsed: {:.1} s", elapsed.as_secs_f64());
    println!(
        "   data: {} (SQLite; tables records, bindings, jobs, job_logs, job_http_audit)",
        db.display()
    );
    println!("\nNext");
    println!(
        "   sqlite3 {} \"SELECT data FROM records WHERE model = 'order' LIMIT 1\"",
        db.display()
    );
    println!(
        "   junction demo --rate-limit 5          watch 429 answers get waited out and retried"
    );
    if in_erp.is_empty() {
        println!(
            "   junction demo --erp                   add a real Tryton ERP: shop orders become its sales"
        );
    }
    println!("   cargo test --workspace                the end-to-end tests");
    println!(
        "   cargo bench -p junction-runtime --bench sync   records/s and the sandbox's overhead"
    );
    println!(
        "   connectors/magento                    the connector's source; guest-sdk/ for your own"
    );
    let _ = node;
    Ok(())
}
