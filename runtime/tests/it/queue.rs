//! The job queue with its worker pool: validation, channels, retries,
//! dependencies, leases and shutdown, on SQLite.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use junction_runtime::queue::job::{JobFilter, JobState, Parent};
use junction_runtime::queue::worker::{Handled, JobFailure, PoolConfig, WorkerPool, handler_fn};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig, QueueError};
use junction_runtime::storage::Storage;
use junction_runtime::storage::sqlite::SqliteStorage;
use serde_json::json;

async fn queue_with(config: QueueConfig) -> (Arc<Queue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("q.db")).await.unwrap();
    let queue = Queue::new(Arc::new(storage), config);
    (queue, dir)
}

fn channels(text: &str) -> QueueConfig {
    QueueConfig {
        channels: junction_runtime::queue::channels::ChannelConfig::parse(text).unwrap(),
        ..QueueConfig::default()
    }
}

fn fast_pool() -> PoolConfig {
    PoolConfig {
        node: "test-node".into(),
        concurrency: 8,
        poll_interval: Duration::from_millis(20),
        reap_interval: Duration::from_millis(50),
        ..PoolConfig::default()
    }
}

/// Wait until no job is pending, waiting or running (bounded).
async fn drain(queue: &Queue) {
    for _ in 0..500 {
        let counts = queue.storage().counts().await.unwrap();
        if counts.iter().all(|c| c.state.is_final() || c.count == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "jobs did not finish: {:?}",
        queue.storage().counts().await.unwrap()
    );
}

async fn job_states(storage: &dyn Storage) -> Vec<JobState> {
    let mut jobs = storage
        .jobs(&JobFilter {
            limit: 10_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    jobs.sort_by_key(|j| j.id);
    jobs.into_iter().map(|j| j.state).collect()
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    queue.register_function("f");
    let good = JobSpec::new("f", json!({}));
    let cases: Vec<(JobSpec, &str)> = vec![
        (JobSpec::new("nope", json!({})), "no worker knows"),
        (JobSpec::new("f", json!([1])), "JSON object"),
        (
            JobSpec::new("f", json!({})).channel("shop"),
            "start with `root`",
        ),
        (JobSpec::new("f", json!({})).channel("root..x"), "channel"),
        (
            JobSpec {
                request: junction_runtime::model::JobRequest {
                    eta: Some("next tuesday".into()),
                    ..good.request.clone()
                },
                ..JobSpec::default()
            },
            "RFC 3339",
        ),
        (
            JobSpec {
                request: junction_runtime::model::JobRequest {
                    eta: Some("1960-01-01T00:00:00Z".into()),
                    ..good.request.clone()
                },
                ..JobSpec::default()
            },
            "before 1970",
        ),
        (
            JobSpec::new("f", json!({ "blob": "x".repeat(300_000) })),
            "over the limit",
        ),
        (
            JobSpec::new("f", json!({})).after(Parent::InBatch(5)),
            "does not come before it",
        ),
    ];
    for (bad, needle) in cases {
        let err = queue.enqueue_batch(&[good.clone(), bad]).await.unwrap_err();
        assert!(
            matches!(
                err,
                QueueError::Invalid { index: 1, .. } | QueueError::UnknownFunction { index: 1, .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    assert!(
        job_states(&**queue.storage()).await.is_empty(),
        "nothing half-enqueued"
    );
    let err = queue.reload_channels("root:0").unwrap_err();
    assert!(err.to_string().contains("root:0"), "{err}");
}

#[tokio::test]
async fn the_pool_runs_jobs_to_done() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let mut pool = WorkerPool::new(queue.clone(), fast_pool()).with_builtins();
    pool.register(
        "echo",
        handler_fn(|job| async move { Handled::done(Some(job.args)) }),
    );
    let handle = pool.start();
    let specs: Vec<JobSpec> = (0..50)
        .map(|i| JobSpec::new("echo", json!({ "n": i })))
        .collect();
    let ids = queue.enqueue_batch(&specs).await.unwrap();
    drain(&queue).await;
    let job = queue.storage().job(ids[7].id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.result.as_deref(), Some(r#"{"n":7}"#));
    assert_eq!(job.node.as_deref(), Some("test-node"));
    assert_eq!(job.tries, 1);
    let report = handle.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(report.finished, 50);
}

/// A handler that records the most jobs it saw running at once.
fn counting(
    running: Arc<AtomicU32>,
    peak: Arc<AtomicU32>,
    ms: u64,
) -> Arc<dyn junction_runtime::queue::worker::Handler> {
    handler_fn(move |_job| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Handled::done(None)
        }
    })
}

#[tokio::test]
async fn channel_capacities_hold_and_reload_without_restart() {
    let config = channels("root:4, root.shop:1");
    let (queue, _dir) = queue_with(config).await;
    let (running, peak) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register("work", counting(running.clone(), peak.clone(), 30));
    let handle = pool.start();
    let specs: Vec<JobSpec> = (0..8)
        .map(|_| JobSpec::new("work", json!({})).channel("root.shop.orders"))
        .collect();
    queue.enqueue_batch(&specs).await.unwrap();
    drain(&queue).await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "root.shop.orders counts against root.shop:1"
    );

    queue.reload_channels("root:4, root.shop:3").unwrap();
    peak.store(0, Ordering::SeqCst);
    queue.enqueue_batch(&specs).await.unwrap();
    drain(&queue).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn failures_retry_then_succeed_or_give_up() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let attempts = Arc::new(AtomicU32::new(0));
    let a = attempts.clone();
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register(
        "flaky",
        handler_fn(move |_job| {
            let a = a.clone();
            async move {
                if a.fetch_add(1, Ordering::SeqCst) < 2 {
                    Handled::failed(JobFailure::Retry {
                        after: Some(Duration::ZERO),
                        count_try: true,
                        kind: "retryable".into(),
                        message: "try later".into(),
                    })
                } else {
                    Handled::done(None)
                }
            }
        }),
    );
    pool.register(
        "broken",
        handler_fn(|_job| async {
            Handled::failed(JobFailure::Retry {
                after: Some(Duration::ZERO),
                count_try: true,
                kind: "retryable".into(),
                message: "still down".into(),
            })
        }),
    );
    pool.register(
        "permanent",
        handler_fn(|_job| async { Handled::failed(JobFailure::fail("permanent", "bad record")) }),
    );
    let handle = pool.start();
    let ids = queue
        .enqueue_batch(&[
            JobSpec::new("flaky", json!({})),
            JobSpec::new("broken", json!({})).max_retries(2),
            JobSpec::new("permanent", json!({})),
        ])
        .await
        .unwrap();
    drain(&queue).await;
    let s = queue.storage();
    let flaky = s.job(ids[0].id).await.unwrap().unwrap();
    assert_eq!((flaky.state, flaky.tries), (JobState::Done, 3));
    let broken = s.job(ids[1].id).await.unwrap().unwrap();
    assert_eq!((broken.state, broken.tries), (JobState::Failed, 2));
    assert!(
        broken
            .error_message
            .unwrap()
            .contains("gave up after 2 tries")
    );
    let permanent = s.job(ids[2].id).await.unwrap().unwrap();
    assert_eq!((permanent.state, permanent.tries), (JobState::Failed, 1));
    assert_eq!(permanent.error_kind.as_deref(), Some("permanent"));
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_guests_delay_sets_the_next_eta() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register(
        "limited",
        handler_fn(|_job| async {
            Handled::failed(JobFailure::Retry {
                after: Some(Duration::from_secs(60)),
                count_try: true,
                kind: "rate-limited".into(),
                message: "slow down".into(),
            })
        }),
    );
    let handle = pool.start();
    let before = junction_runtime::queue::now_ms();
    let id = queue
        .enqueue(JobSpec::new("limited", json!({})))
        .await
        .unwrap()
        .id;
    for _ in 0..200 {
        if queue.storage().job(id).await.unwrap().unwrap().tries == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = queue.storage().job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.tries), (JobState::Pending, 1));
    assert!(
        job.eta >= before + 60_000,
        "eta {} should be a minute out",
        job.eta - before
    );
    assert_eq!(job.error_kind.as_deref(), Some("rate-limited"));
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn dependencies_run_in_order() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register(
        "step",
        handler_fn(move |job| {
            let o = o.clone();
            async move {
                o.lock().unwrap().push(job.args.clone());
                Handled::done(None)
            }
        }),
    );
    let handle = pool.start();
    queue
        .enqueue_batch(&[
            JobSpec::new("step", json!({"n": "c"}))
                .after(Parent::InBatch(1))
                .after(Parent::InBatch(2)),
            JobSpec::new("step", json!({"n": "a"})),
            JobSpec::new("step", json!({"n": "b"})).after(Parent::InBatch(1)),
        ])
        .await
        .unwrap_err();
    // Parents come first in a batch; the error above says so. In order:
    queue
        .enqueue_batch(&[
            JobSpec::new("step", json!({"n": "a"})),
            JobSpec::new("step", json!({"n": "b"})).after(Parent::InBatch(0)),
            JobSpec::new("step", json!({"n": "c"}))
                .after(Parent::InBatch(0))
                .after(Parent::InBatch(1)),
        ])
        .await
        .unwrap();
    drain(&queue).await;
    assert_eq!(
        *order.lock().unwrap(),
        [r#"{"n":"a"}"#, r#"{"n":"b"}"#, r#"{"n":"c"}"#]
    );
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_sequential_channel_stops_at_a_failed_job() {
    let config = channels("root:4, root.orders:1:sequential");
    let (queue, _dir) = queue_with(config).await;
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register(
        "order",
        handler_fn(|job| async move {
            if job.args.contains("bad") {
                Handled::failed(JobFailure::fail("permanent", "bad order"))
            } else {
                Handled::done(None)
            }
        }),
    );
    let handle = pool.start();
    let ids = queue
        .enqueue_batch(&[
            JobSpec::new("order", json!({"o": "bad"}))
                .channel("root.orders")
                .priority(1),
            JobSpec::new("order", json!({"o": "next"}))
                .channel("root.orders")
                .priority(2),
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = queue.storage();
    assert_eq!(
        s.job(ids[0].id).await.unwrap().unwrap().state,
        JobState::Failed
    );
    assert_eq!(
        s.job(ids[1].id).await.unwrap().unwrap().state,
        JobState::Pending,
        "stopped behind the failure"
    );
    queue.mark_done(ids[0].id).await.unwrap();
    drain(&queue).await;
    assert_eq!(
        s.job(ids[1].id).await.unwrap().unwrap().state,
        JobState::Done
    );
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_short_jobs_and_releases_long_ones() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let handle = WorkerPool::new(queue.clone(), fast_pool())
        .with_builtins()
        .start();
    let ids = queue
        .enqueue_batch(&[
            JobSpec::new("junction.sleep", json!({"ms": 100})),
            JobSpec::new("junction.sleep", json!({"ms": 60_000})),
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = handle.shutdown(Duration::from_millis(400)).await.unwrap();
    assert_eq!((report.finished, report.released), (1, 1));
    let s = queue.storage();
    assert_eq!(
        s.job(ids[0].id).await.unwrap().unwrap().state,
        JobState::Done
    );
    let long = s.job(ids[1].id).await.unwrap().unwrap();
    assert_eq!(
        (long.state, long.tries),
        (JobState::Pending, 0),
        "released without counting a try"
    );
}

#[tokio::test]
async fn jobs_of_a_dead_node_come_back_when_the_lease_expires() {
    let config = QueueConfig {
        lease: Duration::from_millis(300),
        ..QueueConfig::default()
    };
    let (queue, _dir) = queue_with(config).await;
    queue.register_function("junction.noop");
    let id = queue
        .enqueue(JobSpec::new("junction.noop", json!({})))
        .await
        .unwrap()
        .id;
    // Another node takes the job and dies without a word.
    let now = junction_runtime::queue::now_ms();
    let request = junction_runtime::storage::ClaimRequest {
        node: "dead-node".into(),
        worker: "w".into(),
        now,
        lease_until: now + 300,
        limit: 1,
        full_channels: Vec::new(),
        sequential_channels: Vec::new(),
        shared_limits: Vec::new(),
        held_backends: Vec::new(),
    };
    assert_eq!(
        queue.storage().claim(&[id], &request).await.unwrap().len(),
        1
    );
    // It had begun: a try was spent (one only claimed ahead would go back
    // without a try, see the storage conformance suite).
    queue
        .storage()
        .complete(&[], &[(id, now)], now)
        .await
        .unwrap();
    let handle = WorkerPool::new(queue.clone(), fast_pool())
        .with_builtins()
        .start();
    drain(&queue).await;
    let job = queue.storage().job(id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.tries),
        (JobState::Done, 2),
        "the lost try counts"
    );
    assert_eq!(job.node.as_deref(), Some("test-node"));
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn housekeeping_purges_finished_jobs_after_their_retention() {
    let (queue, _dir) = queue_with(QueueConfig {
        retention: junction_runtime::queue::retention::Retention::all(Duration::from_millis(100)),
        ..QueueConfig::default()
    })
    .await;
    let pool = PoolConfig {
        housekeeping_interval: Duration::from_millis(50),
        purge_batch: 7,
        ..fast_pool()
    };
    let handle = WorkerPool::new(queue.clone(), pool).with_builtins().start();
    let specs: Vec<JobSpec> = (0..30)
        .map(|_| JobSpec::new("junction.noop", json!({})))
        .collect();
    queue.enqueue_batch(&specs).await.unwrap();
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = job_states(&**queue.storage()).await.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "done jobs are purged in bounded batches");
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_fails_its_try_not_the_pool() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let mut pool = WorkerPool::new(queue.clone(), fast_pool()).with_builtins();
    pool.register(
        "explode",
        handler_fn(|_job| async { panic!("handler exploded") }),
    );
    let handle = pool.start();
    let ids = queue
        .enqueue_batch(&[
            JobSpec::new("explode", json!({})).max_retries(1),
            JobSpec::new("junction.noop", json!({})),
        ])
        .await
        .unwrap();
    drain(&queue).await;
    let s = queue.storage();
    let exploded = s.job(ids[0].id).await.unwrap().unwrap();
    assert_eq!(exploded.state, JobState::Failed);
    assert!(exploded.error_message.unwrap().contains("handler exploded"));
    assert_eq!(
        s.job(ids[1].id).await.unwrap().unwrap().state,
        JobState::Done
    );
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_long_job_shows_started_while_it_runs() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    let handle = WorkerPool::new(queue.clone(), fast_pool())
        .with_builtins()
        .start();
    let id = queue
        .enqueue(JobSpec::new("junction.sleep", json!({"ms": 2000})))
        .await
        .unwrap()
        .id;
    let mut state = JobState::Pending;
    for _ in 0..100 {
        state = queue.storage().job(id).await.unwrap().unwrap().state;
        if state == JobState::Started {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, JobState::Started);
    let job = queue.storage().job(id).await.unwrap().unwrap();
    assert!(job.started_at.is_some());
    let report = handle.shutdown(Duration::from_millis(10)).await.unwrap();
    assert_eq!(report.released, 1);
}

#[tokio::test]
async fn a_backends_live_jobs_are_capped_and_free_up_as_they_finish() {
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    queue.register_function("f");
    let quota = junction_runtime::queue::JobQuota {
        max_pending: 3,
        per_minute: 1000,
    };
    let of = |backend: &str| JobSpec {
        backend: Some(backend.into()),
        quota: Some(quota),
        ..JobSpec::new("f", json!({}))
    };
    queue.enqueue_batch(&[of("a"), of("a")]).await.unwrap();
    // A batch that would pass the limit is refused whole.
    let err = queue
        .enqueue_batch(&[of("a"), of("a")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_pending_jobs") && err.contains("2 of its jobs"),
        "{err}"
    );
    assert_eq!(queue.storage().live_jobs("a", 10).await.unwrap(), 2);
    // Another backend, and jobs without a quota (operators'), are apart.
    queue
        .enqueue_batch(&[of("b"), of("b"), of("b")])
        .await
        .unwrap();
    queue
        .enqueue(JobSpec {
            backend: Some("a".into()),
            ..JobSpec::new("f", json!({}))
        })
        .await
        .unwrap();
    assert!(queue.enqueue(of("a")).await.is_err());
    // Finished jobs free the quota.
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register("f", handler_fn(|_| async { Handled::done(None) }));
    let pool = pool.start();
    drain(&queue).await;
    pool.shutdown(Duration::from_secs(5)).await.unwrap();
    queue
        .enqueue_batch(&[of("a"), of("a"), of("a")])
        .await
        .unwrap();
}

/// A failed try whose last outbound request was answered 503.
fn outage_failure() -> Handled {
    Handled {
        audit: vec![junction_runtime::capabilities::egress::AuditEntry {
            method: "GET".into(),
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: 9,
            path: "/rest/V1/products".into(),
            status: Some(503),
            denied: None,
            error: None,
            request_bytes: 0,
            response_bytes: 0,
            duration_ms: 1,
        }],
        ..Handled::failed(JobFailure::Retry {
            after: Some(Duration::from_secs(30)),
            count_try: true,
            kind: "retryable".into(),
            message: "503 service unavailable".into(),
        })
    }
}

#[tokio::test]
async fn an_open_breaker_holds_its_backends_jobs_without_spending_tries_until_a_probe_closes_it() {
    use junction_runtime::queue::breaker::{BreakerConfig, PROBE};
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    queue.breakers.set_config(
        "shop",
        BreakerConfig {
            failures: 1,
            cool_down: Duration::from_millis(300),
            max_cool_down: Duration::from_millis(300),
        },
    );
    // What ran, in order: the backend's job ("job: down" or "job: up")
    // and the probe.
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut pool = WorkerPool::new(
        queue.clone(),
        PoolConfig {
            health_interval: Duration::from_millis(50),
            ..fast_pool()
        },
    );
    let (r, d) = (ran.clone(), down.clone());
    pool.register(
        "fetch",
        handler_fn(move |_job| {
            let (r, d) = (r.clone(), d.clone());
            async move {
                if d.load(Ordering::SeqCst) {
                    r.lock().unwrap().push("job: down".into());
                    outage_failure()
                } else {
                    r.lock().unwrap().push("job: up".into());
                    Handled::done(None)
                }
            }
        }),
    );
    let (r, q) = (ran.clone(), queue.clone());
    pool.register(
        PROBE,
        handler_fn(move |_job| {
            let (r, q) = (r.clone(), q.clone());
            async move {
                r.lock().unwrap().push("probe".into());
                q.storage().close_breaker("shop").await.unwrap();
                Handled::done(None)
            }
        }),
    );
    let handle = pool.start();
    let mut spec = JobSpec::new("fetch", json!({}));
    spec.backend = Some("shop".into());
    spec.request.max_retries = Some(1);
    let id = queue.enqueue(spec).await.unwrap().id;

    // The one try opens the breaker and does not count: with one try
    // allowed, counting it would have failed the job.
    for _ in 0..200 {
        if !queue.storage().breakers().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open = queue.storage().breakers().await.unwrap();
    assert_eq!(open.len(), 1, "the breaker opened");
    assert!(open[0].reason.contains("answered 503"), "{open:?}");
    down.store(false, Ordering::SeqCst);
    drain(&queue).await;
    let job = queue.storage().job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.tries, 1, "only the try that succeeded counted");
    // Held while open: the job's next try came only after the probe, not
    // after its own retry delay of 200 ms.
    let ran = ran.lock().unwrap().clone();
    assert_eq!(ran, ["job: down", "probe", "job: up"]);
    assert!(queue.storage().breakers().await.unwrap().is_empty());
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_backends_retry_policy_bounds_a_guests_delay() {
    use junction_runtime::queue::retry::RetryPolicy;
    let (queue, _dir) = queue_with(QueueConfig::default()).await;
    queue.set_backend_retry("shop", Some(RetryPolicy::pattern(&[(1, 2)]).unwrap()));
    let mut pool = WorkerPool::new(queue.clone(), fast_pool());
    pool.register(
        "fetch",
        handler_fn(|_job| async {
            Handled::failed(JobFailure::Retry {
                after: Some(Duration::from_secs(600)),
                count_try: true,
                kind: "retryable".into(),
                message: "try again in ten minutes".into(),
            })
        }),
    );
    let handle = pool.start();
    let before = junction_runtime::queue::now_ms();
    let mut spec = JobSpec::new("fetch", json!({}));
    spec.backend = Some("shop".into());
    let id = queue.enqueue(spec).await.unwrap().id;
    for _ in 0..200 {
        if queue.storage().job(id).await.unwrap().unwrap().tries == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = queue.storage().job(id).await.unwrap().unwrap();
    assert_eq!(job.tries, 1);
    let wait = job.eta - before;
    assert!(
        (1_600..=3_000).contains(&wait),
        "the backend's 2 s (±20 %), not the guest's ten minutes: {wait} ms"
    );
    handle.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_pause_holds_on_every_node_and_across_a_restart_until_resumed() {
    use junction_runtime::queue::pause::PauseKind;
    let Some((url, schema)) = super::storage::postgres_schema().await else {
        return;
    };
    let open = || async {
        let storage: Arc<dyn Storage> = Arc::new(
            junction_runtime::storage::postgres::PgStorage::open(&url, Some(&schema))
                .await
                .unwrap(),
        );
        Queue::new(storage, QueueConfig::default())
    };
    // Which node ran which job.
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let start = |queue: Arc<Queue>, node: &str| {
        let mut pool = WorkerPool::new(
            queue,
            PoolConfig {
                node: node.into(),
                health_interval: Duration::from_millis(50),
                ..fast_pool()
            },
        );
        let r = ran.clone();
        pool.register(
            "work",
            handler_fn(move |job| {
                let r = r.clone();
                async move {
                    r.lock().unwrap().push(job.args);
                    Handled::done(None)
                }
            }),
        );
        pool.start()
    };
    let (a, b) = (open().await, open().await);
    a.register_function("work");
    b.register_function("work");
    let node_a = start(a.clone(), "node-a");
    let node_b = start(b.clone(), "node-b");

    // Paused through node A; the jobs are enqueued through node B.
    assert!(
        a.set_paused(PauseKind::Channel, "root.shop", true)
            .await
            .unwrap()
    );
    assert!(a.set_paused(PauseKind::Backend, "crm", true).await.unwrap());
    assert!(
        !a.set_paused(PauseKind::Backend, "crm", true).await.unwrap(),
        "pausing twice changes nothing"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = |channel: &str, backend: Option<&str>, tag: &str| {
        let mut spec = JobSpec::new("work", json!({ "tag": tag })).channel(channel);
        spec.backend = backend.map(str::to_string);
        spec
    };
    let mut specs = Vec::new();
    for i in 0..10 {
        specs.push(job("root.shop.orders", None, &format!("shop-{i}")));
        specs.push(job("root", Some("crm"), &format!("crm-{i}")));
        specs.push(job("root", None, &format!("free-{i}")));
    }
    b.enqueue_batch(&specs).await.unwrap();
    for _ in 0..200 {
        if ran.lock().unwrap().len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    {
        let ran = ran.lock().unwrap();
        assert_eq!(ran.len(), 10, "only the unpaused jobs ran: {ran:?}");
        assert!(ran.iter().all(|r| r.contains("free-")), "{ran:?}");
    }

    // A node that starts while the pauses stand honours them from its
    // first claim.
    node_b.shutdown(Duration::from_secs(1)).await.unwrap();
    let c = open().await;
    c.register_function("work");
    let node_c = start(c.clone(), "node-c");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ran.lock().unwrap().len(), 10, "still held after a restart");
    let pending = job_states(&**c.storage())
        .await
        .iter()
        .filter(|s| **s == JobState::Pending)
        .count();
    assert_eq!(pending, 20, "held jobs stay pending");

    // Resumed through the restarted node: everything runs.
    assert!(
        c.set_paused(PauseKind::Channel, "root.shop", false)
            .await
            .unwrap()
    );
    assert!(
        c.set_paused(PauseKind::Backend, "crm", false)
            .await
            .unwrap()
    );
    drain(&c).await;
    assert_eq!(ran.lock().unwrap().len(), 30);
    node_a.shutdown(Duration::from_secs(1)).await.unwrap();
    node_c.shutdown(Duration::from_secs(1)).await.unwrap();
}
