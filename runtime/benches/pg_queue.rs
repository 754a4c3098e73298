//! `cargo bench -p junction-runtime --bench pg_queue`: the job queue on
//! PostgreSQL, side by side in one run on the same server —
//! - Junction: enqueue throughput (one per transaction, batches of 1,000)
//!   and no-op job throughput with 1 and 3 nodes (each its own connection
//!   pool and 24 workers, as separate processes would have), and with 1
//!   node again with the triggers that keep the job counts dropped (what
//!   they cost); jobs whose arguments name a record (as imports' do)
//!   enqueued with and without the index of the record they name,
//!   alternating twice;
//! - graphile-worker, installed from npm into the target folder and run
//!   as its perfTest does (4 processes × 24 concurrent jobs, local queue
//!   of 500, no completion batching delay), if Node.js and npm are here;
//! - the raw limit of the same SQL: pgbench claiming and completing
//!   batches of 500 pending rows with `FOR UPDATE SKIP LOCKED` from 4
//!   clients (Junction claims and completes in batches too), with the
//!   planner settings of Junction's claim connections; graphile-worker
//!   is measured a second time with them too.
//!
//! Needs JUNCTION_BENCH_POSTGRES_URL (or JUNCTION_TEST_POSTGRES_URL),
//! e.g. postgres://postgres@127.0.0.1:5432/test; works in its own schemas.
//! JUNCTION_BENCH_ONLY=junction measures Junction alone (while tuning).
//! Each system is measured in JUNCTION_BENCH_ROUNDS rounds (3 unless
//! set), taking turns, and the medians are compared: one run of any of
//! them varies by ±20 % on a shared 2-core machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use junction_runtime::queue::channels::ChannelConfig;
use junction_runtime::queue::worker::{Handled, PoolConfig, WorkerPool, handler_fn};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig};
use junction_runtime::storage::postgres::PgStorage;
use serde_json::json;
use tokio::sync::Notify;

const JOBS: u64 = 50_000;
const WORKERS: usize = 24;

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn reset(url: &str, schema: &str) {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

async fn queue(url: &str, schema: &str) -> Arc<Queue> {
    let storage = PgStorage::open(url, Some(schema)).await.unwrap();
    let q = Queue::new(
        Arc::new(storage),
        QueueConfig {
            channels: ChannelConfig::parse(&format!("root:{WORKERS}")).unwrap(),
            ..QueueConfig::default()
        },
    );
    q.register_function("bench.noop");
    q
}

/// No-op jobs whose arguments name a record, as an import's do.
fn record_specs(n: u64) -> Vec<JobSpec> {
    (0..n)
        .map(|i| {
            JobSpec::new(
                "bench.noop",
                json!({"backend": "shop", "model": "product", "external_id": format!("SKU-{i:08}")}),
            )
        })
        .collect()
}

/// Enqueue `JOBS` record-shaped jobs in batches of 1000 into a fresh
/// schema, with or without the record index; jobs/s.
async fn record_enqueue(url: &str, indexed: bool) -> f64 {
    let schema = "junction_bench_timeline";
    reset(url, schema).await;
    let q = queue(url, schema).await;
    if !indexed {
        let admin = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(&format!("DROP INDEX {schema}.jobs_record"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }
    let specs = record_specs(JOBS);
    let started = Instant::now();
    for chunk in specs.chunks(1000) {
        q.enqueue_batch(chunk).await.unwrap();
    }
    per_sec(JOBS, started.elapsed())
}

fn noop_specs(n: u64) -> Vec<JobSpec> {
    (0..n)
        .map(|_| JobSpec::new("bench.noop", json!({})))
        .collect()
}

/// `nodes` pools drain `JOBS` no-op jobs; jobs/s until all are recorded.
/// Without `kept_counts`, the triggers that keep the job counts are
/// dropped first: what they cost, side by side.
async fn processing(url: &str, nodes: usize, kept_counts: bool) -> f64 {
    let schema = format!("junction_bench_{nodes}");
    reset(url, &schema).await;
    let first = queue(url, &schema).await;
    if !kept_counts {
        let admin = sqlx::PgPool::connect(url).await.unwrap();
        for t in [
            "job_counts_insert",
            "job_counts_update",
            "job_counts_delete",
        ] {
            sqlx::query(&format!("DROP TRIGGER {t} ON {schema}.jobs"))
                .execute(&admin)
                .await
                .unwrap();
        }
        admin.close().await;
    }
    for chunk in noop_specs(JOBS).chunks(1000) {
        first.enqueue_batch(chunk).await.unwrap();
    }
    let seen = Arc::new(AtomicU64::new(0));
    let all = Arc::new(Notify::new());
    let mut pools = Vec::new();
    for i in 0..nodes {
        let q = if i == 0 {
            first.clone()
        } else {
            queue(url, &schema).await
        };
        let mut pool = WorkerPool::new(
            q,
            PoolConfig {
                concurrency: WORKERS,
                node: format!("bench-{i}"),
                ..PoolConfig::default()
            },
        );
        let (s, a) = (seen.clone(), all.clone());
        pool.register(
            "bench.noop",
            handler_fn(move |_job| {
                let (s, a) = (s.clone(), a.clone());
                async move {
                    if s.fetch_add(1, Ordering::Relaxed) + 1 == JOBS {
                        a.notify_one();
                    }
                    Handled::done(None)
                }
            }),
        );
        pools.push(pool);
    }
    let started = Instant::now();
    let handles: Vec<_> = pools.into_iter().map(WorkerPool::start).collect();
    all.notified().await;
    let mut finished = 0;
    for h in handles {
        finished += h.shutdown(Duration::from_secs(60)).await.unwrap().finished;
    }
    assert_eq!(finished, JOBS);
    let rate = per_sec(JOBS, started.elapsed());
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {schema}.jobs WHERE state <> 'done'"
    ))
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert_eq!(left, 0, "every job recorded done");
    if kept_counts {
        let counts = first.storage().counts().await.unwrap();
        let done: i64 = counts
            .iter()
            .filter(|c| c.state == junction_runtime::queue::job::JobState::Done)
            .map(|c| c.count)
            .sum();
        assert_eq!(done as u64, JOBS, "the kept counts agree: {counts:?}");
        assert_eq!(counts.len(), 1, "nothing but done jobs: {counts:?}");
    }
    rate
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("bin").join(name))
        .find(|p| p.exists());
    found.or_else(|| {
        Command::new("which")
            .arg(name)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
}

/// pgbench with a script that claims and completes `BATCH` pending jobs
/// per transaction from `CLIENTS` clients, on a jobs table of Junction's
/// schema.
async fn raw_limit(url: &str, dir: &Path) -> Option<f64> {
    const BATCH: u64 = 500;
    const CLIENTS: u64 = 4;
    let pgbench = tool("pgbench")?;
    let schema = "junction_bench_raw";
    reset(url, schema).await;
    let q = queue(url, schema).await;
    for chunk in noop_specs(JOBS).chunks(1000) {
        q.enqueue_batch(chunk).await.unwrap();
    }
    let script = dir.join("claim.sql");
    std::fs::write(
        &script,
        format!(
            "WITH picked AS (SELECT id FROM {schema}.jobs WHERE state = 'pending' AND eta <= 9999999999999 \
             ORDER BY priority, eta, id LIMIT {BATCH} FOR UPDATE SKIP LOCKED) \
             UPDATE {schema}.jobs SET state = 'done', tries = tries + 1, finished_at = 1 \
             FROM picked WHERE jobs.id = picked.id;\n"
        ),
    )
    .unwrap();
    let per_client = JOBS / BATCH / CLIENTS;
    let started = Instant::now();
    let out = Command::new(pgbench)
        // The planner settings of Junction's claim connections, so that this
        // is the limit of the same SQL with the same plan.
        .env("PGOPTIONS", claim_planner())
        .args([
            "-n",
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-t",
            &per_client.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let took = started.elapsed();
    if !out.status.success() {
        eprintln!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(per_sec(per_client * CLIENTS * BATCH, took))
}

/// The planner settings of Junction's claim connections as PGOPTIONS, for
/// the runs that compare like with like.
fn claim_planner() -> String {
    junction_runtime::storage::postgres::CLAIM_PLANNER
        .iter()
        .map(|(k, v)| format!("-c {k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// graphile-worker from npm, run as its perfTest runs it (with
/// `pgoptions`, every connection of its gets them); its jobs/s, or why not.
fn graphile(url: &str, pgoptions: &str) -> Result<f64, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-graphile")
        .canonicalize()
        .or_else(|_| {
            let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-graphile");
            std::fs::create_dir_all(&d).map(|_| d)
        })
        .map_err(|e| e.to_string())?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/graphile/run.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(&dir)
        .arg(JOBS.to_string())
        .env("PERF_DATABASE_URL", url)
        .env("PGOPTIONS", pgoptions)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("jobs/s "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no rate in its output: {text}"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("pg_queue benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let Some(url) = std::env::var("JUNCTION_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("JUNCTION_TEST_POSTGRES_URL"))
        .ok()
    else {
        println!(
            "pg_queue benchmark: skipped (set JUNCTION_BENCH_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        reset(&url, "junction_bench_enqueue").await;
        let q = queue(&url, "junction_bench_enqueue").await;
        let n = 2_000;
        let started = Instant::now();
        for _ in 0..n {
            q.enqueue(JobSpec::new("bench.noop", json!({})))
                .await
                .unwrap();
        }
        let single = per_sec(n, started.elapsed());
        let started = Instant::now();
        for chunk in noop_specs(JOBS).chunks(1000) {
            q.enqueue_batch(chunk).await.unwrap();
        }
        let batched = per_sec(JOBS, started.elapsed());
        let only = std::env::var("JUNCTION_BENCH_ONLY").unwrap_or_default();
        let rounds: usize = std::env::var("JUNCTION_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(3)
            .max(1);
        println!("job queue on PostgreSQL ({url}), {JOBS} no-op jobs, {WORKERS} workers per node, {rounds} rounds");
        let line = |what: &str, rate: f64| println!("{what:<52} {rate:>10.0} jobs/s");
        line("Junction enqueue, one per transaction", single);
        line("Junction enqueue, batches of 1000", batched);
        for _ in 0..2 {
            let with = record_enqueue(&url, true).await;
            let without = record_enqueue(&url, false).await;
            println!(
                "{:<52} {with:>10.0} jobs/s   without the record index {without:>9.0}/s   ratio {:.2}",
                "Junction enqueue, record-shaped, batches of 1000",
                with / without
            );
        }
        let (mut one, mut three, mut raw, mut graph) = (vec![], vec![], vec![], vec![]);
        let mut graph_planned = vec![];
        let mut uncounted = vec![];
        for round in 1..=rounds {
            println!("round {round}");
            one.push(processing(&url, 1, true).await);
            line("  Junction run no-op jobs, 1 node", *one.last().unwrap());
            uncounted.push(processing(&url, 1, false).await);
            line(
                "  the same without the kept job counts' triggers",
                *uncounted.last().unwrap(),
            );
            three.push(processing(&url, 3, true).await);
            line("  Junction run no-op jobs, 3 nodes", *three.last().unwrap());
            if only == "junction" {
                continue;
            }
            match raw_limit(&url, dir.path()).await {
                Some(r) => {
                    raw.push(r);
                    line("  raw SQL limit (pgbench, 4 clients, batches of 500)", r);
                }
                None => println!("  raw SQL limit: pgbench not found"),
            }
            match graphile(&url, "") {
                Ok(g) => {
                    graph.push(g);
                    line("  graphile-worker (4 processes x 24, its perfTest)", g);
                }
                Err(e) => println!("  graphile-worker: not measured: {e}"),
            }
            // Without statistics (autovacuum off, a queue just filled)
            // graphile's claims get the same bad plan Junction's avoid:
            // this shows how much of the difference that is.
            if let Ok(g) = graphile(&url, &claim_planner()) {
                graph_planned.push(g);
                line("  graphile-worker, Junction's claim planner settings", g);
            }
        }
        let (one, three) = (median(&mut one), median(&mut three));
        println!("medians of {rounds} rounds");
        line("Junction run no-op jobs, 1 node", one);
        line(
            "the same without the kept job counts' triggers",
            median(&mut uncounted),
        );
        line("Junction run no-op jobs, 3 nodes", three);
        // Each comparison: its median, and Junction's against it.
        let compare = |what: &str, rates: &mut Vec<f64>, ratio: &str| {
            if rates.is_empty() {
                return;
            }
            let m = median(rates);
            println!(
                "{what:<52} {m:>10.0} jobs/s   Junction 1 node at {:.2}{ratio}, 3 nodes at {:.2}{ratio}",
                one / m,
                three / m
            );
        };
        compare("raw SQL limit (pgbench, 4 clients, batches of 500)", &mut raw, " of it");
        compare("graphile-worker (4 processes x 24, its perfTest)", &mut graph, "x");
        compare("graphile-worker, Junction's claim planner settings", &mut graph_planned, "x");
    });
}

fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
