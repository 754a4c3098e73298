//! The worker pool: claims jobs as channel capacity frees up, runs their
//! handlers on tokio tasks, records outcomes in batches, renews leases,
//! returns expired leases to the queue, purges old jobs, and shuts down
//! gracefully.
//!
//! One loop per pool decides what starts (`dispatch`); it wakes on an
//! in-process enqueue (so a new job starts within milliseconds, no polling
//! lag), on a finished job, or on a timer for jobs whose ETA comes due.
//! This file holds what surrounds it: handlers and their failures, the
//! pool's configuration, one job's try (`run_one`: handler, breaker,
//! outcome) and the maintenance timers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::breaker::Verdict;
use super::dispatch::Finished;
use super::job::{Completion, Job, JobId, Outcome};
use super::{Queue, now_ms};
use crate::error::{CallError, GuestError};
use crate::storage::types::AuditEntry;
use crate::storage::types::LogLine;
use crate::storage::{OpenBreaker, StorageError};

/// Why a try did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Try again, after at least `after` when given; `count_try` false for
    /// contention that says nothing about the job (a lock held elsewhere).
    Retry {
        after: Option<Duration>,
        count_try: bool,
        kind: String,
        message: String,
    },
    /// Retrying cannot help.
    Fail { kind: String, message: String },
}

impl JobFailure {
    pub fn retry(kind: &str, message: impl Into<String>) -> Self {
        JobFailure::Retry {
            after: None,
            count_try: true,
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    pub fn fail(kind: &str, message: impl Into<String>) -> Self {
        JobFailure::Fail {
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

impl From<&CallError> for JobFailure {
    fn from(e: &CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::Guest(g, _) => match g {
                GuestError::Retryable { .. } => JobFailure::Retry {
                    after: g.retry_after(),
                    count_try: true,
                    kind: g.kind().to_string(),
                    message,
                },
                // The backend said when to come back: throttling is not a
                // failure of the job, so it spends no try (a backend that
                // keeps throttling keeps its jobs waiting, as an outage
                // does). The wait is at least the retry policy's, so a
                // zero reset cannot spin a worker.
                GuestError::RateLimited { .. } => JobFailure::Retry {
                    after: g.retry_after(),
                    count_try: false,
                    kind: g.kind().to_string(),
                    message,
                },
                _ => JobFailure::fail(g.kind(), message),
            },
            CallError::MissingExport { .. } | CallError::Instantiate { .. } => {
                JobFailure::fail(e.kind(), message)
            }
            // Deadlines, traps and limit breaches may be transient (a slow
            // backend, one bad page); the job's max retries bound them.
            _ => JobFailure::retry(e.kind(), message),
        }
    }
}

/// What a handler reports for one try.
#[derive(Debug, Clone, Default)]
pub struct Handled {
    pub result: Option<Result<Option<String>, JobFailure>>,
    pub log: Vec<LogLine>,
    pub audit: Vec<AuditEntry>,
    pub connector_digest: Option<String>,
}

impl Handled {
    pub fn done(result: Option<String>) -> Self {
        Handled {
            result: Some(Ok(result)),
            ..Handled::default()
        }
    }

    pub fn failed(failure: JobFailure) -> Self {
        Handled {
            result: Some(Err(failure)),
            ..Handled::default()
        }
    }
}

/// Runs one job function.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn run(&self, job: &Job) -> Handled;
}

/// The pool's settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// This node's name, recorded on every job it runs.
    pub node: String,
    /// Jobs running at once in this process (channels may allow fewer).
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots, so that one claim feeds many
    /// starts; they wait in this process as `enqueued`.
    pub prefetch: usize,
    /// How far past its capacity a channel may be claimed ahead
    /// (sequential and throttled channels are never claimed ahead).
    pub prefetch_factor: u32,
    /// How often to look for jobs whose ETA came due.
    pub poll_interval: Duration,
    /// How often to look for expired leases.
    pub reap_interval: Duration,
    /// Rows deleted per housekeeping transaction.
    pub purge_batch: u32,
    pub housekeeping_interval: Duration,
    /// How often the open circuit breakers are read from the database and
    /// their due probes enqueued.
    pub health_interval: Duration,
    /// The fraction of `concurrency` one backend may run while jobs of
    /// other backends (or of none) wait; alone it may use every worker.
    /// A backend's `jobs.workers` caps it further (`QueueConfig`).
    pub backend_share: f64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            node: default_node_name(),
            concurrency: 4,
            prefetch: 1024,
            prefetch_factor: 64,
            poll_interval: Duration::from_millis(500),
            reap_interval: Duration::from_secs(5),
            purge_batch: 1000,
            housekeeping_interval: Duration::from_secs(60),
            health_interval: Duration::from_secs(1),
            backend_share: 0.5,
        }
    }
}

/// `hostname-pid`.
pub fn default_node_name() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".to_string())
}

/// A pool being configured; `start` runs it.
pub struct WorkerPool {
    pub(super) queue: Arc<Queue>,
    pub(super) config: PoolConfig,
    pub(super) handlers: HashMap<String, Arc<dyn Handler>>,
}

/// A running pool.
pub struct PoolHandle {
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<Result<PoolReport, StorageError>>,
}

/// What a pool did by the time it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    pub finished: u64,
    /// Jobs still running at the end of the grace period, given back to the
    /// queue without counting a try.
    pub released: u64,
}

impl WorkerPool {
    pub fn new(queue: Arc<Queue>, config: PoolConfig) -> Self {
        WorkerPool {
            queue,
            config,
            handlers: HashMap::new(),
        }
    }

    /// Run `function` jobs with `handler`.
    pub fn register(&mut self, function: &str, handler: Arc<dyn Handler>) -> &mut Self {
        self.queue.register_function(function);
        self.handlers.insert(function.to_string(), handler);
        self
    }

    pub fn start(self) -> PoolHandle {
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(super::dispatch::run(self, stop_rx));
        PoolHandle { stop, task }
    }
}

impl PoolHandle {
    /// Stop claiming, let running jobs finish within `grace`, give the rest
    /// back to the queue.
    pub async fn shutdown(self, grace: Duration) -> Result<PoolReport, StorageError> {
        let _ = self.stop.send(Some(grace));
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(StorageError::Database(sqlx::Error::Protocol(format!(
                "the worker pool task ended abnormally: {e}"
            )))),
        }
    }
}

pub(super) async fn run_one(
    job: Job,
    handlers: Arc<HashMap<String, Arc<dyn Handler>>>,
    queue: Arc<Queue>,
    runner: Arc<str>,
    done: mpsc::UnboundedSender<Finished>,
) {
    let config = queue.config();
    let started = std::time::Instant::now();
    let handled = handle(&handlers, &job, &runner).await;
    let took = started.elapsed();
    let now = now_ms();
    let result = handled.result.unwrap_or(Ok(None));
    let open = breaker_verdict(&queue, &job, &result, &handled.audit, now).await;
    let outcome = match result {
        Ok(result) => Outcome::Done { result },
        Err(JobFailure::Fail { kind, message }) => Outcome::Failed { kind, message },
        Err(JobFailure::Retry {
            after,
            count_try,
            kind,
            message,
        }) => {
            // Tries failing because the backend is out of reach do not
            // count once its breaker is open: its jobs wait for it, due
            // again at once, so that they run as soon as a probe closes
            // it (claims leave them alone until then).
            let count_try = count_try && !open;
            let tries = job.tries + u32::from(count_try);
            if open {
                Outcome::Retry {
                    eta: now + 200,
                    count_try,
                    kind,
                    message,
                }
            } else if count_try && job.max_retries > 0 && tries >= job.max_retries {
                Outcome::Failed {
                    kind,
                    message: format!("{message} (gave up after {tries} tries)"),
                }
            } else {
                let policy = config.retry_policy(&job.function, job.backend.as_deref());
                let wait = super::retry::next_wait(
                    policy,
                    tries,
                    rand::random::<f64>(),
                    &kind,
                    after,
                    count_try,
                );
                Outcome::Retry {
                    eta: now + wait.as_millis() as i64,
                    count_try,
                    kind,
                    message,
                }
            }
        }
    };
    tracing::Span::current().record(
        "job.outcome",
        match &outcome {
            Outcome::Done { .. } => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        },
    );
    if let Outcome::Failed { kind, message } = &outcome
        && job.function != super::notify::NOTIFY
    {
        let what = if job.function == "junction.deliver" {
            super::notify::NotifyKind::EventDead
        } else {
            super::notify::NotifyKind::JobFailed
        };
        queue
            .notify(
                what,
                job.backend.as_deref(),
                &format!("job {}", job.id),
                &format!(
                    "{} failed for good: {kind}: {message}",
                    job.description.as_deref().unwrap_or(&job.function)
                ),
            )
            .await;
    }
    crate::metrics::global().job(
        &job.function,
        match &outcome {
            Outcome::Done { .. } => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        },
        took,
    );
    let _ = done.send(Finished {
        channel: job.channel.clone(),
        backend: job.backend.clone(),
        completion: Completion {
            id: job.id,
            outcome,
            finished_at: now,
            connector_digest: handled.connector_digest,
            log: handled.log,
            audit: handled.audit,
        },
    });
}

/// Tell the backend's breaker how a try of one of its jobs went; true when
/// the breaker is open (this try opened it, or it was open already), so
/// that the try does not count. Breakers need the probe that closes them,
/// so they stay off where no worker of this process can run it.
async fn breaker_verdict(
    queue: &Queue,
    job: &Job,
    result: &Result<Option<String>, JobFailure>,
    audit: &[AuditEntry],
    now: i64,
) -> bool {
    let Some(backend) = job.backend.as_deref() else {
        return false;
    };
    if !queue.knows(super::breaker::PROBE) {
        return false;
    }
    let reason = match result {
        Err(_) => super::breaker::outage(audit),
        Ok(_) => None,
    };
    match queue.breakers.record(backend, reason.is_some()) {
        Verdict::Healthy | Verdict::Counting => false,
        Verdict::Open { opened: false } => true,
        Verdict::Open { opened: true } => {
            let config = queue.breakers.config(backend);
            let cool_down = config.cool_down.as_millis() as i64;
            let breaker = OpenBreaker {
                backend: backend.to_string(),
                failures: i64::from(config.failures),
                reason: super::breaker::reason(&reason.unwrap_or_default()),
                opened_at: now,
                retry_at: now + cool_down,
                cool_down,
                probes: 0,
            };
            match queue.storage().open_breaker(&breaker).await {
                Ok(true) => {
                    tracing::warn!(
                        backend,
                        failures = config.failures,
                        reason = %breaker.reason,
                        "backend out of reach: its circuit breaker is open, its jobs wait for a probe"
                    );
                    queue
                        .notify(
                            super::notify::NotifyKind::BreakerOpened,
                            Some(backend),
                            &format!("backend {backend}"),
                            &format!(
                                "circuit breaker opened after {} failures: {}; its jobs wait for a probe",
                                config.failures, breaker.reason
                            ),
                        )
                        .await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(%e, backend, "storing an open circuit breaker failed"),
            }
            true
        }
    }
}

/// Run a job's handler: a missing handler fails the job, a panicking one
/// fails the try (not the process). `runner` names who lacked the handler.
pub(crate) async fn handle(
    handlers: &HashMap<String, Arc<dyn Handler>>,
    job: &Job,
    runner: &str,
) -> Handled {
    let Some(handler) = handlers.get(&job.function) else {
        return Handled::failed(JobFailure::fail(
            "unknown-function",
            format!(
                "{runner} has no handler for job function {:?}",
                job.function
            ),
        ));
    };
    match std::panic::AssertUnwindSafe(handler.run(job))
        .catch_unwind()
        .await
    {
        Ok(h) => h,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Handled::failed(JobFailure::retry(
                "panic",
                format!("the job's handler panicked: {what}"),
            ))
        }
    }
}

/// Heartbeats, the lease reaper and housekeeping, on their own timers.
pub(super) fn spawn_maintenance(
    queue: Arc<Queue>,
    config: PoolConfig,
    held: Arc<Mutex<HashSet<JobId>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let storage = queue.storage().clone();
        let lease = queue.config().lease;
        let mut beat = tokio::time::interval((lease / 3).max(Duration::from_millis(50)));
        let mut reap = tokio::time::interval(config.reap_interval);
        let mut house = tokio::time::interval(config.housekeeping_interval);
        let mut health = tokio::time::interval(config.health_interval);
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let held: Vec<JobId> = held.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
                    let until = now_ms() + queue.config().lease.as_millis() as i64;
                    if let Err(e) = storage.heartbeat(&config.node, &held, until).await {
                        tracing::warn!(%e, "renewing job leases failed");
                    }
                }
                _ = reap.tick() => {
                    match storage.requeue_expired(now_ms()).await {
                        Ok(ids) if !ids.is_empty() => {
                            tracing::warn!(count = ids.len(), "jobs whose lease expired went back to the queue");
                            queue.wake.notify_one();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%e, "returning expired leases failed"),
                    }
                    // Keeps the job counts a few rows however busy the
                    // queue has been since the last tick.
                    if let Err(e) = storage.compact_counts().await {
                        tracing::warn!(%e, "compacting the job counts failed");
                    }
                }
                _ = health.tick() => health_tick(&queue).await,
                _ = house.tick() => {
                    queue.sweep_notifications().await;
                    // Each channel's retention (`[retention_hours]`),
                    // read each time so that a reload applies.
                    for (scope, keep) in queue.config().retention.scopes() {
                        let before = now_ms() - keep.as_millis() as i64;
                        loop {
                            match storage.purge(before, config.purge_batch, &scope).await {
                                Ok(n) if n == u64::from(config.purge_batch) => continue,
                                Ok(_) => break,
                                Err(e) => {
                                    tracing::warn!(%e, "purging old jobs failed");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Read the open breakers (another node may have opened or closed one)
/// and enqueue a probe for each whose cool-down is over. The probe's
/// identity key keeps it to one live probe per backend across nodes.
pub(super) async fn health_tick(queue: &Queue) {
    use super::breaker::PROBE;
    let open = match queue.storage().breakers().await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(%e, "reading the circuit breakers failed");
            return;
        }
    };
    let was_held = queue.breakers.held();
    queue.breakers.refresh(&open);
    let pauses_changed = match queue.storage().paused().await {
        Ok(paused) => queue.pauses.refresh(&paused),
        Err(e) => {
            tracing::warn!(%e, "reading the paused backends and channels failed");
            false
        }
    };
    if queue.breakers.held() != was_held || pauses_changed {
        // A closed breaker frees jobs that are due now.
        queue.wake.notify_one();
    }
    if !queue.knows(PROBE) {
        return;
    }
    let now = now_ms();
    for b in open.iter().filter(|b| b.retry_at <= now) {
        let mut spec = super::JobSpec::new(PROBE, serde_json::json!({"backend": b.backend}));
        spec.request.identity_key = Some(format!("{PROBE}:{}", b.backend));
        spec.request.max_retries = Some(1);
        spec.request.description = Some(format!("probe backend {}", b.backend));
        if let Err(e) = queue.enqueue(spec).await {
            tracing::warn!(%e, backend = %b.backend, "enqueuing a circuit breaker probe failed");
        }
    }
}

/// A handler from an async closure.
pub struct FnHandler<F>(F);

#[async_trait]
impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Job) -> Fut + Send + Sync,
    Fut: Future<Output = Handled> + Send,
{
    async fn run(&self, job: &Job) -> Handled {
        (self.0)(job.clone()).await
    }
}

/// Wrap an async closure as a [`Handler`].
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Handled> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// The built-in job functions every node knows: `junction.noop` (does
/// nothing; for benchmarks and smoke tests) and `junction.sleep`
/// (`{"ms": N}`: waits N milliseconds); `with_builtins` adds
/// `junction.notify` (failure notifications, `queue::notify`).
pub fn builtins() -> Vec<(&'static str, Arc<dyn Handler>)> {
    vec![
        (
            "junction.noop",
            handler_fn(|_job| async { Handled::done(None) }),
        ),
        (
            "junction.sleep",
            handler_fn(|job| async move {
                let ms = serde_json::from_str::<serde_json::Value>(&job.args)
                    .ok()
                    .and_then(|v| v.get("ms").and_then(serde_json::Value::as_u64));
                match ms {
                    Some(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Handled::done(None)
                    }
                    None => Handled::failed(JobFailure::fail(
                        "invalid-args",
                        "junction.sleep needs {\"ms\": <milliseconds>}",
                    )),
                }
            }),
        ),
    ]
}

impl WorkerPool {
    /// Register the built-in functions (see [`builtins`]).
    pub fn with_builtins(mut self) -> Self {
        for (name, handler) in builtins() {
            self.register(name, handler);
        }
        // Failure notifications are delivered by the queue itself.
        let notify = super::notify::NotifyHandler {
            queue: self.queue.clone(),
            node: self.config.node.clone(),
        };
        self.register(super::notify::NOTIFY, Arc::new(notify));
        self
    }
}
