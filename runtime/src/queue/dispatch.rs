//! The worker pool's loop: the one place that decides what starts.
//!
//! Each turn takes in what arrived (finished jobs, recorded batches,
//! claimed jobs), records finished jobs in batches (group commit), starts
//! buffered jobs that have a free slot and are within their backend's
//! share, claims ahead when the buffer runs low, and then sleeps until
//! something arrives, an in-process enqueue wakes it, or a timer is due.
//! Recording and claiming run on tasks of their own, one of each at a
//! time, so that jobs keep starting while the database answers: with fast
//! jobs the round trips, not the jobs, set the pace.
//!
//! On shutdown the loop gives back what never started, waits out the grace
//! period for what runs, and gives back what is still running then.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::channels::{Budget, Occupancy};
use super::job::{Completion, Job, JobId};
use super::share::{Shares, share_of};
use super::worker::{
    Handler, PoolConfig, PoolReport, WorkerPool, health_tick, run_one, spawn_maintenance,
};
use super::{Queue, QueueConfig, now_ms};
use crate::storage::{ClaimRequest, Storage, StorageError};

/// Finished tries are recorded at most this long after they finish...
const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// ...or as soon as this many are waiting.
const FLUSH_BATCH: usize = 512;

/// A finished try, waiting to be recorded.
pub(super) struct Finished {
    pub(super) completion: Completion,
    pub(super) channel: String,
    pub(super) backend: Option<String>,
}

/// A finished batch's record, back from the database.
struct Flushed {
    completions: Vec<Completion>,
    channels: Vec<(String, Option<String>)>,
    begun: Vec<(JobId, i64)>,
    result: Result<(), StorageError>,
}

type Claimed = Result<Vec<Job>, StorageError>;

/// What shutting down does next.
enum Winding {
    /// Everything is recorded or given back: the loop ends.
    Done,
    /// Something is still on its way: take another turn.
    Again,
}

/// Run a pool until `stop` carries a grace period and the pool has wound
/// down.
pub(super) async fn run(
    pool: WorkerPool,
    mut stop: watch::Receiver<Option<Duration>>,
) -> Result<PoolReport, StorageError> {
    // Pauses and open breakers before the first claim: a node starting
    // while a backend is paused must not take its jobs.
    health_tick(&pool.queue).await;
    let mut dispatch = Dispatch::new(pool);
    let maintenance = spawn_maintenance(
        dispatch.queue.clone(),
        dispatch.config.clone(),
        dispatch.held.clone(),
    );
    let result = dispatch.run(&mut stop).await;
    maintenance.abort();
    result.map(|()| dispatch.report)
}

/// The loop's state between turns.
struct Dispatch {
    queue: Arc<Queue>,
    config: PoolConfig,
    handlers: Arc<HashMap<String, Arc<dyn Handler>>>,
    storage: Arc<dyn Storage>,
    /// Who runs the jobs, as a missing-handler error names it.
    runner: Arc<str>,
    /// Claimed by this node (buffered or running): what heartbeats renew.
    held: Arc<Mutex<HashSet<JobId>>>,
    done_tx: mpsc::UnboundedSender<Finished>,
    done_rx: mpsc::UnboundedReceiver<Finished>,
    flushed_tx: mpsc::UnboundedSender<Flushed>,
    flushed_rx: mpsc::UnboundedReceiver<Flushed>,
    claims_tx: mpsc::UnboundedSender<Claimed>,
    claims_rx: mpsc::UnboundedReceiver<Claimed>,
    /// A record or a claim on its way (one of each at a time).
    flushing: bool,
    claiming: bool,
    /// Not before: after a failed write, a failed claim or an empty one.
    flush_after: Option<Instant>,
    claim_after: Option<Instant>,
    /// Woken (jobs made due elsewhere) since the claim on its way looked.
    woken: bool,
    /// Running jobs, against the channels' capacities.
    running: Occupancy,
    /// Per backend, against its fair share of the workers (`share`).
    shares: Shares,
    /// Running and buffered jobs, against the claim budget.
    claimed: Occupancy,
    in_flight: usize,
    /// Claimed jobs waiting for a slot, in run order.
    buffer: VecDeque<Job>,
    /// Finished tries and starts not recorded yet.
    batch: Vec<Finished>,
    begun: Vec<(JobId, i64)>,
    /// When the oldest unrecorded finish or start happened.
    unflushed_since: Option<Instant>,
    report: PoolReport,
    /// When the grace period ends, once shutting down.
    deadline: Option<Instant>,
    /// What the last wait woke up for.
    arrived: Option<Finished>,
    arrived_flush: Option<Flushed>,
    arrived_claim: Option<Claimed>,
}

impl Dispatch {
    fn new(pool: WorkerPool) -> Self {
        let WorkerPool {
            queue,
            config,
            handlers,
        } = pool;
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (flushed_tx, flushed_rx) = mpsc::unbounded_channel();
        let (claims_tx, claims_rx) = mpsc::unbounded_channel();
        Dispatch {
            storage: queue.storage().clone(),
            runner: Arc::from(format!("node {}", config.node).as_str()),
            queue,
            config,
            handlers: Arc::new(handlers),
            held: Arc::default(),
            done_tx,
            done_rx,
            flushed_tx,
            flushed_rx,
            claims_tx,
            claims_rx,
            flushing: false,
            claiming: false,
            flush_after: None,
            claim_after: None,
            woken: false,
            running: Occupancy::default(),
            shares: Shares::default(),
            claimed: Occupancy::default(),
            in_flight: 0,
            buffer: VecDeque::new(),
            batch: Vec::new(),
            begun: Vec::new(),
            unflushed_since: None,
            report: PoolReport::default(),
            deadline: None,
            arrived: None,
            arrived_flush: None,
            arrived_claim: None,
        }
    }

    async fn run(
        &mut self,
        stop: &mut watch::Receiver<Option<Duration>>,
    ) -> Result<(), StorageError> {
        loop {
            let cfg = self.queue.config();
            self.take_finished(&cfg);
            self.take_recorded(&cfg);
            self.take_claimed(&cfg);
            let stopping = *stop.borrow();
            self.record_if_due(stopping.is_some());
            if let Some(grace) = stopping {
                match self.wind_down(grace).await? {
                    Winding::Done => return Ok(()),
                    Winding::Again => continue,
                }
            }
            let moment = Instant::now();
            self.start_buffered(&cfg, moment);
            let claims_wanted = self.claim_ahead(&cfg, moment);
            self.wait(stop, moment, claims_wanted).await;
        }
    }

    /// A finished job frees its slot at once; its record is written with
    /// others (group commit), within `FLUSH_AFTER`.
    fn take_finished(&mut self, cfg: &QueueConfig) {
        // What the last wait woke up for first, then whatever else is ready
        // (no buffer in between: this runs every turn).
        while let Some(f) = self.arrived.take().or_else(|| self.done_rx.try_recv().ok()) {
            self.running.finish(&cfg.channels, &f.channel);
            self.shares.finished(f.backend.as_deref());
            self.in_flight -= 1;
            self.unflushed_since.get_or_insert_with(Instant::now);
            self.batch.push(f);
        }
    }

    /// Batches the database recorded, or failed to.
    fn take_recorded(&mut self, cfg: &QueueConfig) {
        while let Some(flushed) = self
            .arrived_flush
            .take()
            .or_else(|| self.flushed_rx.try_recv().ok())
        {
            self.flushing = false;
            match flushed.result {
                Ok(()) => {
                    let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
                    for (completion, (channel, backend)) in
                        flushed.completions.iter().zip(&flushed.channels)
                    {
                        h.remove(&completion.id);
                        self.shares.recorded(backend.as_deref());
                        // Claim-ahead room (and a sequential channel's turn)
                        // comes back only once the outcome is recorded.
                        self.claimed.finish(&cfg.channels, channel);
                        self.report.finished += 1;
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
                    again.append(&mut self.batch);
                    self.batch = again;
                    let mut again = flushed.begun;
                    again.append(&mut self.begun);
                    self.begun = again;
                    self.unflushed_since.get_or_insert_with(Instant::now);
                    self.flush_after = Some(Instant::now() + Duration::from_millis(200));
                }
            }
        }
    }

    /// Claims the database answered.
    fn take_claimed(&mut self, cfg: &QueueConfig) {
        while let Some(answer) = self
            .arrived_claim
            .take()
            .or_else(|| self.claims_rx.try_recv().ok())
        {
            self.claiming = false;
            match answer {
                Ok(jobs) if jobs.is_empty() => {
                    // Nothing ready: look again after the poll interval or
                    // when woken — at once if woken while this claim was
                    // on its way, as it may have looked too early.
                    if !self.woken {
                        self.claim_after = Some(Instant::now() + self.config.poll_interval);
                    }
                }
                Ok(jobs) => {
                    let moment = Instant::now();
                    let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
                    for job in jobs {
                        self.claimed.start(&cfg.channels, &job.channel, moment);
                        self.shares.claimed(job.backend.as_deref());
                        h.insert(job.id);
                        self.buffer.push_back(job);
                    }
                }
                Err(e) => {
                    // A database that went away (restarting, failing over)
                    // must not end the pool: wait a moment and claim again.
                    // A claim that committed but whose answer was lost
                    // leaves its jobs leased to this node until the lease
                    // expires.
                    tracing::error!(%e, "claiming jobs failed; retrying");
                    self.claim_after = Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }
    }

    /// Record finished tries and starts when the oldest waited long enough,
    /// enough are waiting, nothing else runs, or the pool is stopping.
    fn record_if_due(&mut self, stopping: bool) {
        let now = Instant::now();
        let idle = self.in_flight == 0 && self.buffer.is_empty();
        let due = self
            .unflushed_since
            .is_some_and(|t| now.duration_since(t) >= FLUSH_AFTER);
        if self.flushing
            || self.flush_after.is_some_and(|t| now < t)
            || (self.batch.is_empty() && self.begun.is_empty())
            || !(idle
                || due
                || stopping
                || self.batch.len() >= FLUSH_BATCH
                || self.begun.len() >= FLUSH_BATCH)
        {
            return;
        }
        self.flushing = true;
        self.flush_after = None;
        self.unflushed_since = None;
        let (completions, channels): (Vec<Completion>, Vec<(String, Option<String>)>) = self
            .batch
            .drain(..)
            .map(|f| (f.completion, (f.channel, f.backend)))
            .unzip();
        let begun = std::mem::take(&mut self.begun);
        let (storage, tx) = (self.storage.clone(), self.flushed_tx.clone());
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

    /// One turn of shutting down: give back what never started, wait for
    /// what runs until the grace period ends, then give back the rest.
    async fn wind_down(&mut self, grace: Duration) -> Result<Winding, StorageError> {
        // A claim on its way is given back with the buffer.
        if self.claiming {
            self.arrived_claim = self.claims_rx.recv().await;
            return Ok(Winding::Again);
        }
        let node = self.config.node.clone();
        // Buffered jobs never started: give them back right away.
        if !self.buffer.is_empty() {
            let ids: Vec<JobId> = self.buffer.drain(..).map(|j| j.id).collect();
            self.storage.release(&node, &ids, now_ms()).await?;
            let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
            for id in &ids {
                h.remove(id);
            }
            self.report.released += ids.len() as u64;
        }
        let end = *self.deadline.get_or_insert_with(|| Instant::now() + grace);
        let left: Vec<JobId> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if left.is_empty() {
            return Ok(Winding::Done);
        }
        if Instant::now() >= end {
            // A write on its way settles first, so that a job it records as
            // done is not given back as well.
            if self.flushing {
                self.arrived_flush = self.flushed_rx.recv().await;
                return Ok(Winding::Again);
            }
            self.storage.release(&node, &left, now_ms()).await?;
            self.report.released += left.len() as u64;
            return Ok(Winding::Done);
        }
        let wake = match (self.flushing, self.flush_after, self.unflushed_since) {
            (false, Some(t), _) => t.min(end),
            (false, None, Some(t)) => (t + FLUSH_AFTER).min(end),
            _ => end,
        };
        tokio::select! {
            Some(f) = self.done_rx.recv() => self.arrived = Some(f),
            Some(f) = self.flushed_rx.recv() => self.arrived_flush = Some(f),
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        Ok(Winding::Again)
    }

    /// Start buffered jobs that have a free slot, in order; a job whose
    /// channel is full lets later jobs of other channels go first.
    fn start_buffered(&mut self, cfg: &QueueConfig, moment: Instant) {
        let concurrency = self.config.concurrency;
        if self.in_flight >= concurrency || self.buffer.is_empty() {
            return;
        }
        // The share is of the workers that can run at once: root's capacity
        // when it is below the pool's.
        let workers = cfg
            .channels
            .get("root")
            .map_or(concurrency, |r| (r.capacity as usize).clamp(1, concurrency));
        let share = share_of(workers, self.config.backend_share);
        let mut budget = self.running.budget(&cfg.channels, moment);
        // First pass: backends within their share, in buffer order; a
        // backend over it lets the jobs of others behind it go first.
        // Second pass: what is left goes to anyone (see `share`).
        let mut limit = share;
        // A job passed over for its backend's share in the first pass.
        let mut held_back = false;
        let mut i = 0;
        loop {
            if i >= self.buffer.len() || self.in_flight >= concurrency {
                if !held_back || limit == workers || self.in_flight >= concurrency {
                    break;
                }
                limit = workers;
                i = 0;
                continue;
            }
            let backend = self.buffer[i].backend.as_deref();
            // Claimed before a pause or an open breaker: it waits here.
            if must_wait(&self.queue, &self.buffer[i]) {
                i += 1;
                continue;
            }
            let cap = backend.and_then(|b| cfg.backend_workers.get(b).copied());
            if !self.shares.may_start(backend, cap, limit) {
                held_back = true;
                i += 1;
                continue;
            }
            if !budget.try_take(&self.buffer[i].channel) {
                i += 1;
                continue;
            }
            let job = self.buffer.remove(i).expect("index is in bounds");
            self.shares.started(job.backend.as_deref());
            self.running.start(&cfg.channels, &job.channel, moment);
            self.in_flight += 1;
            self.begun.push((job.id, now_ms()));
            // A start is recorded within the same delay as a finish, so a
            // long job shows `started` while it runs.
            self.unflushed_since.get_or_insert_with(Instant::now);
            // The job's span: its guest calls and their requests nest in
            // it (see `telemetry`).
            let span = tracing::info_span!(
                "job",
                job.id = job.id,
                job.function = %job.function,
                job.backend = job.backend.as_deref().unwrap_or(""),
                job.channel = %job.channel,
                job.r#try = job.tries + 1,
                job.outcome = tracing::field::Empty,
            );
            tokio::spawn(
                run_one(
                    job,
                    self.handlers.clone(),
                    self.queue.clone(),
                    self.runner.clone(),
                    self.done_tx.clone(),
                )
                .instrument(span),
            );
        }
    }

    /// Claim ahead, so one round trip to the database feeds many jobs; how
    /// many jobs the buffer wants (0 when it is full enough).
    ///
    /// Claims are big batches: only once the buffer ran low, then filling
    /// it. A backend holding its claim limit is left out of the claim, and
    /// its buffered jobs do not count against the buffer's low mark: the
    /// jobs of other backends behind its backlog get claimed.
    fn claim_ahead(&mut self, cfg: &Arc<QueueConfig>, moment: Instant) -> usize {
        let config = &self.config;
        let target = config.prefetch.max(config.concurrency);
        let low_mark = (target / 4).max(config.concurrency);
        let over = self.shares.over_claimed(low_mark);
        // Jobs claimed before their backend or channel was paused (or its
        // breaker opened) wait in the buffer; they must not keep the
        // others' jobs from being claimed either.
        let waiting = if holding(&self.queue) {
            self.buffer
                .iter()
                .filter(|j| must_wait(&self.queue, j))
                .count()
        } else {
            0
        };
        let eligible = self
            .buffer
            .len()
            .saturating_sub(self.shares.buffered_of(&over))
            .saturating_sub(waiting);
        let want = if eligible <= low_mark {
            target - eligible
        } else {
            0
        };
        if want == 0 || self.claiming || self.claim_after.is_some_and(|t| moment < t) {
            return want;
        }
        let ahead = self
            .claimed
            .budget_scaled(&cfg.channels, moment, config.prefetch_factor);
        let room = (ahead.total() as usize).min(want);
        if room == 0 {
            return want;
        }
        self.claiming = true;
        self.claim_after = None;
        self.woken = false;
        let now = now_ms();
        let request = ClaimRequest {
            node: config.node.clone(),
            worker: format!("{}/pool", config.node),
            now,
            lease_until: now + cfg.lease.as_millis() as i64,
            limit: (room * 2).max(16) as u32,
            // A paused channel is left out like a full one, with its
            // subtree.
            full_channels: {
                let mut full = ahead.full();
                full.extend(self.queue.pauses.channels());
                full
            },
            sequential_channels: cfg.channels.sequential().map(str::to_string).collect(),
            // Root's capacity is this node's; the channels under it are
            // shared by every node on the database.
            shared_limits: cfg
                .channels
                .iter()
                .filter(|(name, _)| *name != "root")
                .map(|(name, spec)| (name.to_string(), spec.capacity))
                .collect(),
            // Backends holding their share of this node, and backends whose
            // breaker is open (on any node).
            held_backends: {
                let mut held = over;
                held.extend(self.queue.breakers.held());
                held.extend(self.queue.pauses.backends());
                held
            },
        };
        let unfiltered = request.full_channels.is_empty()
            && request.sequential_channels.is_empty()
            && request.shared_limits.is_empty();
        // Picks are made against this moment's budget: only one claim is on
        // its way at a time, so nothing else spends it.
        let free = (!unfiltered).then(|| ahead.into_free());
        let (storage, tx, cfg) = (self.storage.clone(), self.claims_tx.clone(), cfg.clone());
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
        want
    }

    /// Sleep until something arrives, an enqueue wakes the pool, a record
    /// or a claim is due, or the poll interval passed.
    async fn wait(
        &mut self,
        stop: &mut watch::Receiver<Option<Duration>>,
        moment: Instant,
        claims_wanted: usize,
    ) {
        let mut wake = moment + self.config.poll_interval;
        if !self.flushing {
            if let Some(t) = self.flush_after {
                wake = wake.min(t);
            } else if let Some(t) = self.unflushed_since {
                wake = wake.min(t + FLUSH_AFTER);
            }
        }
        if claims_wanted > 0
            && !self.claiming
            && let Some(t) = self.claim_after
        {
            wake = wake.min(t);
        }
        tokio::select! {
            _ = self.queue.wake.notified() => {
                self.claim_after = None;
                self.woken = true;
            }
            Some(f) = self.done_rx.recv() => self.arrived = Some(f),
            Some(f) = self.flushed_rx.recv() => self.arrived_flush = Some(f),
            Some(c) = self.claims_rx.recv() => self.arrived_claim = Some(c),
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => {}
        }
    }
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
