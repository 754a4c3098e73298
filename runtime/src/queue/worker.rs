//! The worker pool: claims jobs as channel capacity frees up, runs their
//! handlers on tokio tasks, records outcomes in batches, renews leases,
//! returns expired leases to the queue, purges old jobs, and shuts down
//! gracefully.
//!
//! One loop per pool decides what starts; it wakes on an in-process enqueue
//! (so a new job starts within milliseconds, no polling lag), on a finished
//! job, or on a timer for jobs whose ETA comes due.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::breaker::Verdict;
use super::channels::{Budget, Occupancy};
use super::job::{Completion, Job, JobId, Outcome};
use super::share::{Shares, share_of};
use super::{Queue, now_ms};
use crate::error::{CallError, GuestError};
use crate::storage::types::AuditEntry;
use crate::storage::types::LogLine;
use crate::storage::{ClaimRequest, OpenBreaker, StorageError};

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
    queue: Arc<Queue>,
    config: PoolConfig,
    handlers: HashMap<String, Arc<dyn Handler>>,
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
        let task = tokio::spawn(run(self, stop_rx));
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

/// Finished tries are recorded at most this long after they finish...
const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// ...or as soon as this many are waiting.
const FLUSH_BATCH: usize = 512;

struct Finished {
    completion: Completion,
    channel: String,
    backend: Option<String>,
}

/// A finished batch's record, back from the database.
struct Flushed {
    completions: Vec<Completion>,
    channels: Vec<(String, Option<String>)>,
    begun: Vec<(JobId, i64)>,
    result: Result<(), StorageError>,
}

async fn run(
    pool: WorkerPool,
    mut stop: watch::Receiver<Option<Duration>>,
) -> Result<PoolReport, StorageError> {
    let WorkerPool {
        queue,
        config,
        handlers,
    } = pool;
    let handlers = Arc::new(handlers);
    // Pauses and open breakers before the first claim: a node starting
    // while a backend is paused must not take its jobs.
    health_tick(&queue).await;
    // Who runs the jobs, as a missing-handler error names it.
    let runner: Arc<str> = Arc::from(format!("node {}", config.node).as_str());
    let storage = queue.storage().clone();
    // Claimed by this node (buffered or running): what heartbeats renew.
    let held: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    // Recording finished jobs and claiming new ones run beside this loop,
    // one of each at a time, so that jobs keep starting while the database
    // answers: with fast jobs the round trips, not the jobs, set the pace.
    let (flushed_tx, mut flushed_rx) = mpsc::unbounded_channel::<Flushed>();
    let (claims_tx, mut claims_rx) = mpsc::unbounded_channel::<Result<Vec<Job>, StorageError>>();
    let mut flushing = false;
    let mut claiming = false;
    // Not before: after a failed write, a failed claim or an empty one.
    let mut flush_after: Option<Instant> = None;
    let mut claim_after: Option<Instant> = None;
    // Woken (jobs made due elsewhere) since the claim on its way looked.
    let mut woken = false;
    // Running jobs, against the channels' capacities.
    let mut running = Occupancy::default();
    // Per backend, against its fair share of the workers (`share`).
    let mut shares = Shares::default();
    // Running and buffered jobs, against the claim budget.
    let mut claimed = Occupancy::default();
    let mut in_flight = 0usize;
    // Claimed jobs waiting for a slot, in run order.
    let mut buffer: VecDeque<Job> = VecDeque::new();
    let mut begun: Vec<(JobId, i64)> = Vec::new();
    let mut report = PoolReport::default();
    let mut deadline: Option<Instant> = None;
    let maintenance = spawn_maintenance(queue.clone(), config.clone(), held.clone());
    let mut batch: Vec<Finished> = Vec::new();

    // When the oldest unrecorded finish or start happened.
    let mut unflushed_since: Option<Instant> = None;
    // What the last wait woke up for.
    let mut arrived: Option<Finished> = None;
    let mut arrived_flush: Option<Flushed> = None;
    let mut arrived_claim: Option<Result<Vec<Job>, StorageError>> = None;

    loop {
        let cfg = queue.config();
        // A finished job frees its slot at once; its record is written with
        // others (group commit), within `FLUSH_AFTER`.
        let ready = std::iter::from_fn(|| done_rx.try_recv().ok());
        for f in arrived.take().into_iter().chain(ready) {
            running.finish(&cfg.channels, &f.channel);
            shares.finished(f.backend.as_deref());
            in_flight -= 1;
            unflushed_since.get_or_insert_with(Instant::now);
            batch.push(f);
        }
        let flushes = std::iter::from_fn(|| flushed_rx.try_recv().ok());
        for flushed in arrived_flush.take().into_iter().chain(flushes) {
            flushing = false;
            match flushed.result {
                Ok(()) => {
                    let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
                    for (completion, (channel, backend)) in
                        flushed.completions.iter().zip(&flushed.channels)
                    {
                        h.remove(&completion.id);
                        shares.recorded(backend.as_deref());
                        // Claim-ahead room (and a sequential channel's turn)
                        // comes back only once the outcome is recorded.
                        claimed.finish(&cfg.channels, channel);
                        report.finished += 1;
                    }
                }
                Err(e) => {
                    // The leases stay; if the database stays away they
                    // expire and the jobs run again elsewhere. Keep the
                    // batch, ahead of what finished meanwhile, and retry.
                    tracing::error!(%e, "recording finished jobs failed; retrying");
                    let mut again: Vec<Finished> = flushed
                        .completions
                        .into_iter()
                        .zip(flushed.channels)
                        .map(|(completion, (channel, backend))| Finished {
                            completion,
                            channel,
                            backend,
                        })
                        .collect();
                    again.append(&mut batch);
                    batch = again;
                    let mut again = flushed.begun;
                    again.append(&mut begun);
                    begun = again;
                    unflushed_since.get_or_insert_with(Instant::now);
                    flush_after = Some(Instant::now() + Duration::from_millis(200));
                }
            }
        }
        let claims = std::iter::from_fn(|| claims_rx.try_recv().ok());
        for answer in arrived_claim.take().into_iter().chain(claims) {
            claiming = false;
            match answer {
                Ok(jobs) if jobs.is_empty() => {
                    // Nothing ready: look again after the poll interval or
                    // when woken — at once if woken while this claim was
                    // on its way, as it may have looked too early.
                    if !woken {
                        claim_after = Some(Instant::now() + config.poll_interval);
                    }
                }
                Ok(jobs) => {
                    let moment = Instant::now();
                    let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
                    for job in jobs {
                        claimed.start(&cfg.channels, &job.channel, moment);
                        shares.claimed(job.backend.as_deref());
                        h.insert(job.id);
                        buffer.push_back(job);
                    }
                }
                Err(e) => {
                    // A database that went away (restarting, failing over)
                    // must not end the pool: wait a moment and claim again.
                    // A claim that committed but whose answer was lost
                    // leaves its jobs leased to this node until the lease
                    // expires.
                    tracing::error!(%e, "claiming jobs failed; retrying");
                    claim_after = Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }

        let now = Instant::now();
        let idle = in_flight == 0 && buffer.is_empty();
        let due = unflushed_since.is_some_and(|t| now.duration_since(t) >= FLUSH_AFTER);
        let stopping = *stop.borrow();
        if !flushing
            && flush_after.is_none_or(|t| now >= t)
            && (!batch.is_empty() || !begun.is_empty())
            && (idle
                || due
                || stopping.is_some()
                || batch.len() >= FLUSH_BATCH
                || begun.len() >= FLUSH_BATCH)
        {
            flushing = true;
            flush_after = None;
            unflushed_since = None;
            let (completions, channels): (Vec<Completion>, Vec<(String, Option<String>)>) = batch
                .drain(..)
                .map(|f| (f.completion, (f.channel, f.backend)))
                .unzip();
            let begun = std::mem::take(&mut begun);
            let (storage, tx) = (storage.clone(), flushed_tx.clone());
            tokio::spawn(async move {
                let result = storage.complete(&completions, &begun, now_ms()).await;
                let _ = tx.send(Flushed {
                    completions,
                    channels,
                    begun,
                    result,
                });
            });
        }

        if let Some(grace) = stopping {
            // A claim on its way is given back with the buffer.
            if claiming {
                arrived_claim = claims_rx.recv().await;
                continue;
            }
            // Buffered jobs never started: give them back right away.
            if !buffer.is_empty() {
                let ids: Vec<JobId> = buffer.drain(..).map(|j| j.id).collect();
                storage.release(&config.node, &ids, now_ms()).await?;
                let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
                for id in &ids {
                    h.remove(id);
                }
                report.released += ids.len() as u64;
            }
            let end = *deadline.get_or_insert_with(|| Instant::now() + grace);
            let left: Vec<JobId> = held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .copied()
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= end {
                // A write on its way settles first, so that a job it
                // records as done is not given back as well.
                if flushing {
                    arrived_flush = flushed_rx.recv().await;
                    continue;
                }
                storage.release(&config.node, &left, now_ms()).await?;
                report.released += left.len() as u64;
                break;
            }
            let wake = match (flushing, flush_after, unflushed_since) {
                (false, Some(t), _) => t.min(end),
                (false, None, Some(t)) => (t + FLUSH_AFTER).min(end),
                _ => end,
            };
            tokio::select! {
                Some(f) = done_rx.recv() => arrived = Some(f),
                Some(f) = flushed_rx.recv() => arrived_flush = Some(f),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            continue;
        }

        // Start buffered jobs that have a free slot, in order; a job whose
        // channel is full lets later jobs of other channels go first.
        let moment = Instant::now();
        if in_flight < config.concurrency && !buffer.is_empty() {
            // The share is of the workers that can run at once: root's
            // capacity when it is below the pool's.
            let workers = cfg.channels.get("root").map_or(config.concurrency, |r| {
                (r.capacity as usize).clamp(1, config.concurrency)
            });
            let share = share_of(workers, config.backend_share);
            let mut budget = running.budget(&cfg.channels, moment);
            // First pass: backends within their share, in buffer order; a
            // backend over it lets the jobs of others behind it go first.
            // Second pass: what is left goes to anyone (see `share`).
            let mut limit = share;
            // A job passed over for its backend's share in the first pass.
            let mut held_back = false;
            let mut i = 0;
            loop {
                if i >= buffer.len() || in_flight >= config.concurrency {
                    if !held_back || limit == workers || in_flight >= config.concurrency {
                        break;
                    }
                    limit = workers;
                    i = 0;
                    continue;
                }
                let backend = buffer[i].backend.as_deref();
                // Claimed before a pause or an open breaker: it waits here.
                if must_wait(&queue, &buffer[i]) {
                    i += 1;
                    continue;
                }
                let cap = backend.and_then(|b| cfg.backend_workers.get(b).copied());
                if !shares.may_start(backend, cap, limit) {
                    held_back = true;
                    i += 1;
                    continue;
                }
                if !budget.try_take(&buffer[i].channel) {
                    i += 1;
                    continue;
                }
                let job = buffer.remove(i).expect("index is in bounds");
                shares.started(job.backend.as_deref());
                running.start(&cfg.channels, &job.channel, moment);
                in_flight += 1;
                begun.push((job.id, now_ms()));
                // A start is recorded within the same delay as a finish,
                // so a long job shows `started` while it runs.
                unflushed_since.get_or_insert_with(Instant::now);
                tokio::spawn(run_one(
                    job,
                    handlers.clone(),
                    queue.clone(),
                    runner.clone(),
                    done_tx.clone(),
                ));
            }
        }

        // Claim ahead, so one round trip to the database feeds many jobs.
        // Claim in big batches: only once the buffer ran low, then fill it.
        // A backend holding its claim limit is left out of the claim, and
        // its buffered jobs do not count against the buffer's low mark:
        // the jobs of other backends behind its backlog get claimed.
        let target = config.prefetch.max(config.concurrency);
        let low_mark = (target / 4).max(config.concurrency);
        let over = shares.over_claimed(low_mark);
        // Jobs claimed before their backend or channel was paused (or its
        // breaker opened) wait in the buffer; they must not keep the
        // others' jobs from being claimed either.
        let waiting = if holding(&queue) {
            buffer.iter().filter(|j| must_wait(&queue, j)).count()
        } else {
            0
        };
        let eligible = buffer
            .len()
            .saturating_sub(shares.buffered_of(&over))
            .saturating_sub(waiting);
        let want = if eligible <= low_mark {
            target - eligible
        } else {
            0
        };
        if want > 0 && !claiming && claim_after.is_none_or(|t| moment >= t) {
            let ahead = claimed.budget_scaled(&cfg.channels, moment, config.prefetch_factor);
            let room = (ahead.total() as usize).min(want);
            if room > 0 {
                claiming = true;
                claim_after = None;
                woken = false;
                let now = now_ms();
                let request = ClaimRequest {
                    node: config.node.clone(),
                    worker: format!("{}/pool", config.node),
                    now,
                    lease_until: now + cfg.lease.as_millis() as i64,
                    limit: (room * 2).max(16) as u32,
                    // A paused channel is left out like a full one, with
                    // its subtree.
                    full_channels: {
                        let mut full = ahead.full();
                        full.extend(queue.pauses.channels());
                        full
                    },
                    sequential_channels: cfg.channels.sequential().map(str::to_string).collect(),
                    // Root's capacity is this node's; the channels under it
                    // are shared by every node on the database.
                    shared_limits: cfg
                        .channels
                        .iter()
                        .filter(|(name, _)| *name != "root")
                        .map(|(name, spec)| (name.to_string(), spec.capacity))
                        .collect(),
                    // Backends holding their share of this node, and
                    // backends whose breaker is open (on any node).
                    held_backends: {
                        let mut held = over;
                        held.extend(queue.breakers.held());
                        held.extend(queue.pauses.backends());
                        held
                    },
                };
                let unfiltered = request.full_channels.is_empty()
                    && request.sequential_channels.is_empty()
                    && request.shared_limits.is_empty();
                // Picks are made against this moment's budget: only one
                // claim is on its way at a time, so nothing else spends it.
                let free = (!unfiltered).then(|| ahead.into_free());
                let (storage, tx, cfg) = (storage.clone(), claims_tx.clone(), cfg.clone());
                tokio::spawn(async move {
                    let answer = match free {
                        // Only root's budget applies, and `room` is within it.
                        None => {
                            storage
                                .claim_next(&ClaimRequest {
                                    limit: room as u32,
                                    ..request
                                })
                                .await
                        }
                        Some(free) => match storage.candidates(&request).await {
                            Ok(candidates) => {
                                let mut ahead = Budget::from_free(&cfg.channels, free);
                                let picks: Vec<JobId> = candidates
                                    .into_iter()
                                    .filter(|(_, channel)| ahead.try_take(channel))
                                    .take(room)
                                    .map(|(id, _)| id)
                                    .collect();
                                storage.claim(&picks, &request).await
                            }
                            Err(e) => Err(e),
                        },
                    };
                    let _ = tx.send(answer);
                });
            }
        }

        let mut wake = moment + config.poll_interval;
        if !flushing {
            if let Some(t) = flush_after {
                wake = wake.min(t);
            } else if let Some(t) = unflushed_since {
                wake = wake.min(t + FLUSH_AFTER);
            }
        }
        if want > 0
            && !claiming
            && let Some(t) = claim_after
        {
            wake = wake.min(t);
        }
        tokio::select! {
            _ = queue.wake.notified() => {
                claim_after = None;
                woken = true;
            }
            Some(f) = done_rx.recv() => arrived = Some(f),
            Some(f) = flushed_rx.recv() => arrived_flush = Some(f),
            Some(c) = claims_rx.recv() => arrived_claim = Some(c),
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => {}
        }
    }
    maintenance.abort();
    Ok(report)
}

async fn run_one(
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

/// Whether anything is paused or any breaker open at all.
fn holding(queue: &Queue) -> bool {
    queue.pauses.any() || queue.breakers.any_open()
}

/// Whether a claimed job must not start now: its backend or channel is
/// paused, or its backend's breaker is open. Called for every buffered job
/// on every turn of the pool's loop, so nothing is looked up when nothing
/// is held.
fn must_wait(queue: &Queue, job: &Job) -> bool {
    if !holding(queue) {
        return false;
    }
    let backend = job.backend.as_deref();
    queue.pauses.holds(backend, &job.channel) || backend.is_some_and(|b| queue.breakers.is_open(b))
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
fn spawn_maintenance(
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
async fn health_tick(queue: &Queue) {
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
