//! Fair share of the workers between backends: one backend's backlog
//! (a hostile connector's flood of jobs that run to their deadline) holds
//! back another backend's job by about one job's run time, not by the
//! whole backlog; alone, a backend uses every worker; `jobs.workers` caps
//! it even alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use junction_runtime::queue::job::Job;
use junction_runtime::queue::worker::{Handled, PoolConfig, WorkerPool, handler_fn};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig};
use junction_runtime::storage::sqlite::SqliteStorage;
use serde_json::json;

/// Starts in order, and the most jobs of one backend running at once.
#[derive(Default)]
struct Record {
    starts: Mutex<Vec<String>>,
    running: Mutex<std::collections::HashMap<String, usize>>,
    peak: Mutex<std::collections::HashMap<String, usize>>,
    finished: AtomicUsize,
}

async fn setup(
    concurrency: usize,
    prefetch: usize,
    hold: Duration,
) -> (Arc<Queue>, Arc<Record>, WorkerPool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("q.db")).await.unwrap();
    let queue = Queue::new(Arc::new(storage), QueueConfig::default());
    let record = Arc::new(Record::default());
    let mut pool = WorkerPool::new(
        queue.clone(),
        PoolConfig {
            node: "fair".into(),
            concurrency,
            prefetch,
            poll_interval: Duration::from_millis(20),
            ..PoolConfig::default()
        },
    );
    let r = record.clone();
    pool.register(
        "work",
        handler_fn(move |job: Job| {
            let r = r.clone();
            async move {
                let backend = job.backend.clone().unwrap_or_default();
                r.starts.lock().unwrap().push(backend.clone());
                {
                    let mut running = r.running.lock().unwrap();
                    let n = running.entry(backend.clone()).or_default();
                    *n += 1;
                    let mut peak = r.peak.lock().unwrap();
                    let p = peak.entry(backend.clone()).or_default();
                    *p = (*p).max(*n);
                }
                tokio::time::sleep(hold).await;
                *r.running.lock().unwrap().get_mut(&backend).unwrap() -= 1;
                r.finished.fetch_add(1, Ordering::SeqCst);
                Handled::done(None)
            }
        }),
    );
    (queue, record, pool, dir)
}

fn work(backend: &str) -> JobSpec {
    JobSpec {
        backend: Some(backend.to_string()),
        ..JobSpec::new("work", json!({}))
    }
}

async fn wait_for(record: &Record, finished: usize) {
    for _ in 0..1500 {
        if record.finished.load(Ordering::SeqCst) >= finished {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "only {} jobs finished",
        record.finished.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn another_backends_job_waits_for_one_job_of_a_backlog_not_all_of_it() {
    // 4 workers, a small claim-ahead buffer, a backlog 50 times the pool.
    let (queue, record, pool, _dir) = setup(4, 16, Duration::from_millis(40)).await;
    let backlog: Vec<JobSpec> = (0..200).map(|_| work("hostile")).collect();
    queue.enqueue_batch(&backlog).await.unwrap();
    let pool = pool.start();
    // The backlog holds every worker, and the claim buffer, when the
    // other backend's job comes.
    while record.starts.lock().unwrap().len() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    queue.enqueue(work("shop")).await.unwrap();
    while !record.starts.lock().unwrap().iter().any(|b| b == "shop") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let starts = record.starts.lock().unwrap().clone();
    let before = starts.iter().position(|b| b == "shop").unwrap();
    // Without fair share the shop's job would come after all 200 (or
    // after the buffer's 16 at the least); with it, after the jobs that
    // held the workers and those started while its claim was on its way.
    assert!(
        before <= 12,
        "the shop's job started after {before} of the backlog's jobs"
    );
    wait_for(&record, 201).await;
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_backend_alone_uses_every_worker_and_only_its_share_beside_others() {
    let (queue, record, pool, _dir) = setup(4, 64, Duration::from_millis(60)).await;
    let jobs: Vec<JobSpec> = (0..12).map(|_| work("alone")).collect();
    queue.enqueue_batch(&jobs).await.unwrap();
    let pool = pool.start();
    wait_for(&record, 12).await;
    assert_eq!(
        record.peak.lock().unwrap()["alone"],
        4,
        "alone: every worker"
    );
    // Two backends with work: neither holds more than half the workers
    // while the other's jobs wait.
    record.peak.lock().unwrap().clear();
    let mut both: Vec<JobSpec> = (0..12).map(|_| work("a")).collect();
    both.extend((0..12).map(|_| work("b")));
    queue.enqueue_batch(&both).await.unwrap();
    wait_for(&record, 36).await;
    let peak = record.peak.lock().unwrap().clone();
    assert!(peak["b"] >= 2, "b got its share: {peak:?}");
    // `a` came first and may hold every worker until b's jobs arrive in
    // the buffer; once both wait, each runs at most its share.
    let starts = record.starts.lock().unwrap().clone();
    let first_b = starts.iter().position(|b| b == "b").unwrap();
    assert!(first_b <= 12 + 4, "b started after {first_b} starts");
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn jobs_workers_caps_a_backend_even_alone() {
    let (queue, record, pool, _dir) = setup(4, 64, Duration::from_millis(30)).await;
    queue.set_backend_workers("capped", Some(1));
    let jobs: Vec<JobSpec> = (0..6).map(|_| work("capped")).collect();
    queue.enqueue_batch(&jobs).await.unwrap();
    let pool = pool.start();
    wait_for(&record, 6).await;
    assert_eq!(record.peak.lock().unwrap()["capped"], 1);
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn jobs_that_cannot_start_hold_no_worker_back_from_a_busy_backend() {
    // crm's jobs wait on its cap of one worker: shop may take the three
    // other workers, though that is over its share of two.
    let (queue, record, pool, _dir) = setup(4, 64, Duration::from_millis(60)).await;
    queue.set_backend_workers("crm", Some(1));
    let mut jobs: Vec<JobSpec> = (0..8).map(|_| work("crm")).collect();
    jobs.extend((0..12).map(|_| work("shop")));
    queue.enqueue_batch(&jobs).await.unwrap();
    let pool = pool.start();
    wait_for(&record, 20).await;
    let peak = record.peak.lock().unwrap().clone();
    assert_eq!(peak["crm"], 1, "{peak:?}");
    assert_eq!(peak["shop"], 3, "{peak:?}");
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
}
