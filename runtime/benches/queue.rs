//! `cargo bench -p junction-runtime --bench queue`: the job queue on a
//! SQLite file in WAL mode — enqueue throughput (single and batched),
//! claim+complete throughput of no-op jobs with 1, 2 and 8 workers, and
//! enqueue→start latency — next to the raw SQLite limit for the same work
//! (a plain insert / claim / complete loop with the same durability
//! settings), with the ratio; and 8 workers with and without the triggers
//! that keep the job counts, alternating twice (what they cost); and jobs
//! shaped like record imports (their arguments name a record) enqueued and
//! run with and without the index of the record they name (a record's
//! timeline), alternating twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use junction_runtime::queue::channels::ChannelConfig;
use junction_runtime::queue::worker::{Handled, PoolConfig, WorkerPool, handler_fn};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig};
use junction_runtime::storage::sqlite::SqliteStorage;
use serde_json::json;
use sqlx::Row;
use tokio::sync::Notify;

const JOBS: u64 = 20_000;

async fn fresh_queue(dir: &tempfile::TempDir, name: &str, workers: usize) -> Arc<Queue> {
    let storage = SqliteStorage::open(&dir.path().join(name)).await.unwrap();
    Queue::new(
        Arc::new(storage),
        QueueConfig {
            channels: ChannelConfig::parse(&format!("root:{workers}")).unwrap(),
            ..QueueConfig::default()
        },
    )
}

fn noop_specs(n: u64) -> Vec<JobSpec> {
    (0..n)
        .map(|_| JobSpec::new("bench.noop", json!({})))
        .collect()
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

const NO_COUNTS: &str = "DROP TRIGGER job_counts_insert; DROP TRIGGER job_counts_update; DROP TRIGGER job_counts_delete;";
const NO_TIMELINE: &str = "DROP INDEX jobs_record;";

/// Enqueue (batches of 1000) and run `JOBS` jobs of `specs` with 8
/// workers on a fresh database, after `drop` (SQL) if given; both rates.
async fn shaped(
    dir: &tempfile::TempDir,
    specs: fn(u64) -> Vec<JobSpec>,
    drop: Option<&str>,
) -> (f64, f64) {
    let name = format!("shaped-{}.db", rand::random::<u32>());
    let queue = fresh_queue(dir, &name, 8).await;
    if let Some(sql) = drop {
        let raw =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join(&name).display()))
                .await
                .unwrap();
        sqlx::raw_sql(sql).execute(&raw).await.unwrap();
        raw.close().await;
    }
    queue.register_function("bench.noop");
    let all = specs(JOBS);
    let started = Instant::now();
    for chunk in all.chunks(1000) {
        queue.enqueue_batch(chunk).await.unwrap();
    }
    let enqueued = per_sec(JOBS, started.elapsed());
    (enqueued, run_all(queue, 8).await)
}

/// Run every job queued (`JOBS` of `bench.noop`) with `workers`; the rate.
async fn run_all(queue: Arc<Queue>, workers: usize) -> f64 {
    let seen = Arc::new(AtomicU64::new(0));
    let all = Arc::new(Notify::new());
    let (s, a) = (seen.clone(), all.clone());
    let mut pool = WorkerPool::new(
        queue.clone(),
        PoolConfig {
            concurrency: workers,
            node: "bench".into(),
            ..PoolConfig::default()
        },
    );
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
    let started = Instant::now();
    let handle = pool.start();
    all.notified().await;
    // Shutdown returns once every finished job is recorded as done.
    let report = handle.shutdown(Duration::from_secs(30)).await.unwrap();
    assert_eq!(report.finished, JOBS);
    per_sec(JOBS, started.elapsed())
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn processing(dir: &tempfile::TempDir, workers: usize, kept_counts: bool) -> f64 {
    let name = format!(
        "process-{workers}-{kept_counts}-{}.db",
        rand::random::<u32>()
    );
    let queue = fresh_queue(dir, &name, workers).await;
    if !kept_counts {
        let raw =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join(&name).display()))
                .await
                .unwrap();
        sqlx::raw_sql(NO_COUNTS).execute(&raw).await.unwrap();
        raw.close().await;
    }
    for chunk in noop_specs(JOBS).chunks(1000) {
        queue.register_function("bench.noop");
        queue.enqueue_batch(chunk).await.unwrap();
    }
    run_all(queue, workers).await
}

async fn latency(dir: &tempfile::TempDir) -> (Duration, Duration) {
    let queue = fresh_queue(dir, "latency.db", 4).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut pool = WorkerPool::new(
        queue.clone(),
        PoolConfig {
            node: "bench".into(),
            // Long enough that only the enqueue wake-up can start a job fast.
            poll_interval: Duration::from_secs(5),
            ..PoolConfig::default()
        },
    );
    pool.register(
        "bench.noop",
        handler_fn(move |_job| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Instant::now());
                Handled::done(None)
            }
        }),
    );
    let handle = pool.start();
    let mut samples = Vec::new();
    for _ in 0..300 {
        let sent = Instant::now();
        queue
            .enqueue(JobSpec::new("bench.noop", json!({})))
            .await
            .unwrap();
        let began = rx.recv().await.unwrap();
        samples.push(began - sent);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

/// The same work as plain SQL on the same schema and settings: inserts of
/// 500 rows per statement, then claim (pending → started) and complete
/// (→ done) 100 jobs per statement — the raw batched limit.
async fn raw_limit(dir: &tempfile::TempDir) -> (f64, f64) {
    let storage = SqliteStorage::open(&dir.path().join("raw.db"))
        .await
        .unwrap();
    drop(storage); // schema in place
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("raw.db"))
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let started = Instant::now();
    let rows = vec!["('bench.noop', '{}', 'pending', 10, 0, 'root', 5, 0)"; 500].join(", ");
    for _ in 0..JOBS / 1000 {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        for _ in 0..2 {
            sqlx::query(&format!(
                "INSERT INTO jobs (function, args, state, priority, eta, channel, max_retries, created_at)
                 VALUES {rows}"
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let insert = per_sec(JOBS, started.elapsed());
    let started = Instant::now();
    let mut processed = 0u64;
    while processed < JOBS {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'started', started_at = 1, lease_until = 2, node = 'raw'
             WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND eta <= 1
                          ORDER BY priority, eta, id LIMIT 100)
             RETURNING id",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let list = ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query(&format!(
            "UPDATE jobs SET state = 'done', tries = 1, finished_at = 3 WHERE id IN ({list})"
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        processed += ids.len() as u64;
    }
    (insert, per_sec(JOBS, started.elapsed()))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("queue benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();

        let queue = fresh_queue(&dir, "enqueue.db", 4).await;
        queue.register_function("bench.noop");
        let n = 2_000;
        let started = Instant::now();
        for _ in 0..n {
            queue
                .enqueue(JobSpec::new("bench.noop", json!({})))
                .await
                .unwrap();
        }
        let single = per_sec(n, started.elapsed());
        let specs = noop_specs(JOBS);
        let started = Instant::now();
        for chunk in specs.chunks(1000) {
            queue.enqueue_batch(chunk).await.unwrap();
        }
        let batched = per_sec(JOBS, started.elapsed());

        let mut processed = Vec::new();
        for workers in [1, 2, 8] {
            processed.push((workers, processing(&dir, workers, true).await));
        }
        let mut counted = Vec::new();
        for _ in 0..2 {
            counted.push((
                processing(&dir, 8, true).await,
                processing(&dir, 8, false).await,
            ));
        }
        let mut timeline = Vec::new();
        for _ in 0..2 {
            timeline.push((
                shaped(&dir, record_specs, None).await,
                shaped(&dir, record_specs, Some(NO_TIMELINE)).await,
            ));
        }
        let (p50, p99) = latency(&dir).await;
        let (raw_insert, raw_process) = raw_limit(&dir).await;

        println!("job queue on SQLite (WAL, synchronous=NORMAL), {JOBS} no-op jobs");
        println!(
            "{:<46} {:>12.0} jobs/s",
            "enqueue, one per transaction", single
        );
        println!(
            "{:<46} {:>12.0} jobs/s   raw insert {:>9.0}/s   ratio {:.2}",
            "enqueue, batches of 1000",
            batched,
            raw_insert,
            batched / raw_insert
        );
        for (workers, rate) in &processed {
            println!(
                "{:<46} {:>12.0} jobs/s   raw claim+complete {:>9.0}/s   ratio {:.2}",
                format!("claim+run+complete, {workers} worker(s)"),
                rate,
                raw_process,
                rate / raw_process
            );
        }
        for (with, without) in &counted {
            println!(
                "{:<46} {:>12.0} jobs/s   without the count triggers {:>9.0}/s   ratio {:.2}",
                "claim+run+complete, 8 workers (again)",
                with,
                without,
                with / without
            );
        }
        for ((enq, run), (enq_without, run_without)) in &timeline {
            println!(
                "{:<46} {:>12.0} jobs/s   without the record index {:>9.0}/s   ratio {:.2}",
                "record-shaped jobs: enqueue, batches of 1000",
                enq,
                enq_without,
                enq / enq_without
            );
            println!(
                "{:<46} {:>12.0} jobs/s   without the record index {:>9.0}/s   ratio {:.2}",
                "record-shaped jobs: claim+run+complete, 8 workers",
                run,
                run_without,
                run / run_without
            );
        }
        println!(
            "{:<46} p50 {:>8.2} ms   p99 {:>8.2} ms",
            "enqueue → start latency (idle pool)",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    });
}
