//! `cargo bench -p junction-runtime --bench fairness`: how long a
//! well-behaved backend's jobs wait while a hostile backend's backlog of
//! ten times more jobs than workers, each holding its worker for a whole
//! "deadline" (the most a sandboxed call can take), fills the queue.
//!
//! Side by side in one run on the same SQLite queue and 8 workers:
//! `backend_share = 1.0` (a backend may hold every worker, as before fair
//! share) and the default `0.5`. The well-behaved backend enqueues a short
//! job every 50 ms; the figure is its enqueue→start delay, in deadlines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use junction_runtime::queue::channels::ChannelConfig;
use junction_runtime::queue::job::Job;
use junction_runtime::queue::worker::{Handled, PoolConfig, WorkerPool, handler_fn};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig};
use junction_runtime::storage::sqlite::SqliteStorage;
use serde_json::json;

const WORKERS: usize = 8;
const HOSTILE: usize = WORKERS * 10;
/// What one hostile job holds its worker for: a call that loops until its
/// deadline ends it (scaled down from the default 30 s to keep the run
/// short; the delays below are in units of it).
const DEADLINE: Duration = Duration::from_millis(400);
const BENIGN: usize = 40;

struct Outcome {
    delays: Vec<Duration>,
    backlog_done: Duration,
}

async fn run(share: f64) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("fair.db"))
        .await
        .unwrap();
    // As a node configures it: root holds the pool's workers.
    let queue = Queue::new(
        Arc::new(storage),
        QueueConfig {
            channels: ChannelConfig::parse(&format!("root:{WORKERS}")).unwrap(),
            ..QueueConfig::default()
        },
    );
    let delays: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let hostile_done: Arc<Mutex<Option<Instant>>> = Arc::default();
    let started = Instant::now();
    let mut pool = WorkerPool::new(
        queue.clone(),
        PoolConfig {
            node: "bench".into(),
            concurrency: WORKERS,
            backend_share: share,
            ..PoolConfig::default()
        },
    );
    let (d, h) = (delays.clone(), hostile_done.clone());
    let hostile_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    pool.register(
        "work",
        handler_fn(move |job: Job| {
            let (d, h, c) = (d.clone(), h.clone(), hostile_count.clone());
            async move {
                if job.backend.as_deref() == Some("hostile") {
                    tokio::time::sleep(DEADLINE).await;
                    if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == HOSTILE {
                        *h.lock().unwrap() = Some(Instant::now());
                    }
                } else {
                    let args: serde_json::Value = serde_json::from_str(&job.args).unwrap();
                    let at = Duration::from_micros(args["at_us"].as_u64().unwrap());
                    d.lock().unwrap().push(started.elapsed().saturating_sub(at));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Handled::done(None)
            }
        }),
    );
    let spec = |backend: &str, args: serde_json::Value| JobSpec {
        backend: Some(backend.to_string()),
        ..JobSpec::new("work", args)
    };
    let backlog: Vec<JobSpec> = (0..HOSTILE).map(|_| spec("hostile", json!({}))).collect();
    queue.enqueue_batch(&backlog).await.unwrap();
    let handle = pool.start();
    // The backlog holds every worker before the first benign job comes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..BENIGN {
        let at = started.elapsed().as_micros() as u64;
        queue
            .enqueue(spec("shop", json!({ "at_us": at })))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while delays.lock().unwrap().len() < BENIGN || hostile_done.lock().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown(Duration::from_secs(10)).await.unwrap();
    let backlog_done = hostile_done.lock().unwrap().unwrap() - started;
    let mut delays = delays.lock().unwrap().clone();
    delays.sort_unstable();
    Outcome {
        delays,
        backlog_done,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("fairness benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "{HOSTILE} hostile jobs of {} ms each on {WORKERS} workers; {BENIGN} short jobs of another backend, one every 50 ms",
            DEADLINE.as_millis()
        );
        println!(
            "{:<28} {:>14} {:>14} {:>14} {:>16}",
            "backend_share", "median delay", "p90 delay", "max delay", "backlog done in"
        );
        for share in [1.0, 0.5] {
            let o = run(share).await;
            let at = |q: f64| o.delays[((o.delays.len() - 1) as f64 * q).round() as usize];
            let deadlines = |d: Duration| d.as_secs_f64() / DEADLINE.as_secs_f64();
            println!(
                "{:<28} {:>9.2} dl {:>11.2} dl {:>11.2} dl {:>14.2} s",
                if share >= 1.0 {
                    "1.0 (no share)".to_string()
                } else {
                    format!("{share} (default)")
                },
                deadlines(at(0.5)),
                deadlines(at(0.9)),
                deadlines(*o.delays.last().unwrap()),
                o.backlog_done.as_secs_f64()
            );
        }
    });
}
