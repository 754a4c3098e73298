//! The durable job queue: validation, enqueueing (with identity-key dedup
//! and dependencies), channels, retries, and the worker pool that runs jobs.
//!
//! Jobs live in [`Storage`]; this module owns the rules around them. Times
//! are Unix milliseconds.

pub mod breaker;
pub mod channels;
mod dispatch;
pub mod job;
pub mod notify;
pub mod pause;
pub mod retention;
pub mod retry;
mod share;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::JobRequest;
use crate::storage::{Storage, StorageError};
use channels::{ChannelConfig, ChannelConfigError};
use job::{Enqueued, JobAction, JobFilter, JobId, NewJob, Parent};
use retry::RetryPolicy;

pub use crate::storage::types::now_ms;

/// The longest delay a job may be enqueued with (ten years): beyond it a
/// delay is a mistake, and far beyond it the ETA would overflow.
pub const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Arguments larger than this are refused: jobs carry ids, not payloads.
pub use crate::model::MAX_ARGS_BYTES;

/// The queue's tunables; channels and retry patterns can be reloaded while
/// running.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub channels: ChannelConfig,
    /// Retry policy per job function (`junction.toml`'s `[retry]`).
    pub retry: HashMap<String, RetryPolicy>,
    /// The policy of jobs that neither their backend nor their function
    /// chooses one for (`[retry] default`).
    pub default_retry: RetryPolicy,
    /// Retry policy per backend (its `retry`): how that system recovers
    /// decides, whatever the job.
    pub backend_retry: HashMap<String, RetryPolicy>,
    /// Tries a job gets when its request does not say (0 = unlimited).
    pub default_max_retries: u32,
    /// How long a started job's lease lasts without a heartbeat.
    pub lease: Duration,
    /// Per backend, the workers of one node its jobs may hold at once
    /// (the backend's `jobs.workers`); others get the pool's fair share.
    pub backend_workers: HashMap<String, usize>,
    /// How long finished jobs are kept, per channel (`[retention_hours]`).
    pub retention: retention::Retention,
}

impl QueueConfig {
    /// The retry policy of a job: its backend's, else its function's, else
    /// the default.
    pub fn retry_policy(&self, function: &str, backend: Option<&str>) -> &RetryPolicy {
        backend
            .and_then(|b| self.backend_retry.get(b))
            .or_else(|| self.retry.get(function))
            .unwrap_or(&self.default_retry)
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            channels: ChannelConfig::default(),
            retry: HashMap::new(),
            default_retry: RetryPolicy::default(),
            backend_retry: HashMap::new(),
            default_max_retries: 5,
            lease: Duration::from_secs(30),
            backend_workers: HashMap::new(),
            retention: retention::Retention::default(),
        }
    }
}

/// Why a job could not be enqueued. Nothing of the batch was stored.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job {index} of the batch is invalid: {reason}")]
    Invalid { index: usize, reason: String },
    #[error(
        "job {index} of the batch names function {function:?}, which no worker knows; known functions: {known}"
    )]
    UnknownFunction {
        index: usize,
        function: String,
        known: String,
    },
    #[error(
        "backend {backend:?} is over its {what}: {detail}; wait for its jobs to finish, or raise limits.{key} for the backend"
    )]
    Quota {
        backend: String,
        what: &'static str,
        key: &'static str,
        detail: String,
    },
    /// A bulk action without a filter, and the like: the message says
    /// what to add.
    #[error("{0}")]
    Unfiltered(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Jobs one bulk transaction acts on.
pub const BULK_PAGE: u32 = 500;

/// What a bulk action did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkReport {
    /// Jobs the filter matched when the action began.
    pub matched: u64,
    /// Jobs changed (a cancel counts the dependents cancelled with them).
    pub changed: u64,
    /// Jobs left alone: their state had moved on, or they were purged.
    pub skipped: u64,
    /// Transactions it took.
    pub pages: u64,
}

/// What to enqueue: the guest-facing request plus host-side fields.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    pub request: JobRequest,
    pub backend: Option<String>,
    /// Run no earlier than this long from now (alternative to `request.eta`).
    pub delay: Option<Duration>,
    pub parents: Vec<Parent>,
    /// A guest asked for it (admitted by `capabilities::jobs::admit`): only
    /// functions registered for guests are accepted.
    pub from_guest: bool,
    /// The backend's quotas on what its connector enqueues (set for a
    /// guest's jobs from its limits).
    pub quota: Option<JobQuota>,
}

/// How many jobs a backend's connector may have live at once, and enqueue
/// per minute on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobQuota {
    pub max_pending: u64,
    pub per_minute: u32,
}

impl From<&crate::limits::SandboxLimits> for JobQuota {
    fn from(l: &crate::limits::SandboxLimits) -> Self {
        JobQuota {
            max_pending: l.max_pending_jobs,
            per_minute: l.max_jobs_per_minute,
        }
    }
}

impl JobSpec {
    pub fn new(function: &str, args: serde_json::Value) -> Self {
        JobSpec {
            request: JobRequest {
                function: function.to_string(),
                args: args.to_string(),
                ..JobRequest::default()
            },
            ..JobSpec::default()
        }
    }

    pub fn channel(mut self, channel: &str) -> Self {
        self.request.channel = Some(channel.to_string());
        self
    }

    pub fn identity_key(mut self, key: &str) -> Self {
        self.request.identity_key = Some(key.to_string());
        self
    }

    pub fn priority(mut self, priority: u32) -> Self {
        self.request.priority = Some(priority);
        self
    }

    pub fn max_retries(mut self, n: u32) -> Self {
        self.request.max_retries = Some(n);
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub fn after(mut self, parent: Parent) -> Self {
        self.parents.push(parent);
        self
    }
}

/// The queue: storage plus its rules, shared by enqueuers and workers.
#[derive(Debug)]
pub struct Queue {
    storage: Arc<dyn Storage>,
    config: RwLock<Arc<QueueConfig>>,
    functions: RwLock<HashSet<String>>,
    /// The functions a guest may enqueue (the sync functions; never the
    /// built-in `junction.sleep`/`junction.noop`).
    guest_functions: RwLock<HashSet<String>>,
    /// Functions whose pending jobs for one record merge into one (see
    /// [`Queue::register_coalescing`]).
    coalescing: RwLock<HashSet<String>>,
    /// Wakes this process's workers the moment something is enqueued.
    pub(crate) wake: Notify,
    /// Per backend: the minute and how many guest jobs it enqueued in it.
    rates: std::sync::Mutex<HashMap<String, (i64, u64)>>,
    /// Backends' circuit breakers as this node sees them.
    pub breakers: breaker::Breakers,
    /// Paused backends and channels as this node sees them.
    pub pauses: pause::Pauses,
    /// Where failure notifications go (`[notify]`, backends' `notify`).
    pub notify: notify::Targets,
}

impl Queue {
    pub fn new(storage: Arc<dyn Storage>, config: QueueConfig) -> Arc<Queue> {
        Arc::new(Queue {
            storage,
            config: RwLock::new(Arc::new(config)),
            functions: RwLock::new(HashSet::new()),
            guest_functions: RwLock::new(HashSet::new()),
            coalescing: RwLock::new(HashSet::new()),
            wake: Notify::new(),
            rates: std::sync::Mutex::new(HashMap::new()),
            breakers: breaker::Breakers::default(),
            pauses: pause::Pauses::default(),
            notify: notify::Targets::default(),
        })
    }

    /// Pause (`paused`) or resume a backend or channel on every node: stored,
    /// applied here at once, on other nodes within their health tick.
    /// True when that changed anything.
    pub async fn set_paused(
        &self,
        kind: pause::PauseKind,
        name: &str,
        paused: bool,
    ) -> Result<bool, StorageError> {
        let changed = self
            .storage
            .set_paused(kind.as_str(), name, paused, now_ms())
            .await?;
        self.pauses.refresh(&self.storage.paused().await?);
        self.wake.notify_one();
        Ok(changed)
    }

    /// Whether a worker of this process runs `function`.
    pub fn knows(&self, function: &str) -> bool {
        self.functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(function)
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The current configuration (cheap: shared until the next reload).
    pub fn config(&self) -> Arc<QueueConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut QueueConfig)) {
        let mut current = self.config.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**current).clone();
        change(&mut next);
        *current = Arc::new(next);
    }

    /// Replace the channel configuration while running.
    pub fn reload_channels(&self, text: &str) -> Result<(), ChannelConfigError> {
        self.set_channels(ChannelConfig::parse(text)?);
        Ok(())
    }

    /// Replace the channel capacities; claims from now on follow them.
    pub fn set_channels(&self, channels: ChannelConfig) {
        self.update(|c| c.channels = channels);
        self.wake.notify_one();
    }

    /// Set the retry policy of a job function.
    pub fn set_retry_policy(&self, function: &str, policy: RetryPolicy) {
        self.update(|c| {
            c.retry.insert(function.to_string(), policy);
        });
    }

    /// Replace the default and per-function retry policies (a reload).
    pub fn set_retry_policies(
        &self,
        default: RetryPolicy,
        functions: HashMap<String, RetryPolicy>,
    ) {
        self.update(|c| {
            c.default_retry = default;
            c.retry = functions;
        });
    }

    /// Replace how long finished jobs are kept (a reload).
    pub fn set_retention(&self, retention: retention::Retention) {
        self.update(|c| c.retention = retention);
    }

    /// Set (`Some`) or clear (`None`) a backend's retry policy.
    pub fn set_backend_retry(&self, backend: &str, policy: Option<RetryPolicy>) {
        if self.config().backend_retry.get(backend) == policy.as_ref() {
            return;
        }
        self.update(|c| match policy {
            Some(p) => {
                c.backend_retry.insert(backend.to_string(), p);
            }
            None => {
                c.backend_retry.remove(backend);
            }
        });
    }

    /// Cap (`Some`) or uncap (`None`) the workers `backend`'s jobs may
    /// hold at once on this node.
    pub fn set_backend_workers(&self, backend: &str, workers: Option<usize>) {
        let current = self.config().backend_workers.get(backend).copied();
        if current == workers {
            return;
        }
        self.update(|c| match workers {
            Some(n) => {
                c.backend_workers.insert(backend.to_string(), n);
            }
            None => {
                c.backend_workers.remove(backend);
            }
        });
        self.wake.notify_one();
    }

    /// Make a job function known (the worker pool does this for its handlers).
    pub fn register_function(&self, name: &str) {
        self.functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    /// Make a job function known and let guests enqueue it.
    pub fn register_guest_function(&self, name: &str) {
        self.register_function(name);
        self.guest_functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    /// Jobs of `function` that name the same record coalesce: while one
    /// has not started, another for that record is the same job (its
    /// identity key is the record's, whatever the request said). The
    /// function's handler must then do at run time what every merged
    /// request asked (an export exports every field changed since the last
    /// sync, not only those its arguments name).
    pub fn register_coalescing(&self, function: &str) {
        self.coalescing
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(function.to_string());
    }

    /// Validate and convert a spec; the error names the field.
    pub fn prepare(&self, index: usize, spec: &JobSpec, now: i64) -> Result<NewJob, QueueError> {
        let r = &spec.request;
        let invalid = |reason: String| QueueError::Invalid { index, reason };
        r.validate().map_err(invalid)?;
        {
            let functions = self.functions.read().unwrap_or_else(|p| p.into_inner());
            if !functions.contains(&r.function) {
                let mut known: Vec<&str> = functions.iter().map(String::as_str).collect();
                known.sort_unstable();
                return Err(QueueError::UnknownFunction {
                    index,
                    function: r.function.clone(),
                    known: if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        if spec.from_guest {
            let guest = self
                .guest_functions
                .read()
                .unwrap_or_else(|p| p.into_inner());
            if !guest.contains(&r.function) {
                let mut known: Vec<&str> = guest.iter().map(String::as_str).collect();
                known.sort_unstable();
                return Err(invalid(format!(
                    "job function {:?} is not one a connector may enqueue; connectors may enqueue {}",
                    r.function,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        let channel = r.channel.clone().unwrap_or_else(|| "root".to_string());
        channels::check_name(&channel).map_err(|e| invalid(format!("channel {channel:?}: {e}")))?;
        let eta = match (&r.eta, spec.delay) {
            (Some(_), Some(_)) => {
                return Err(invalid("give an eta or a delay, not both".to_string()));
            }
            (Some(text), None) => {
                crate::model::parse_timestamp(text).map_err(|e| invalid(format!("eta {e}")))?
            }
            (None, Some(d)) => {
                if d > MAX_DELAY {
                    return Err(invalid(format!(
                        "a delay of {} ms is too long; at most {} ms (ten years)",
                        d.as_millis(),
                        MAX_DELAY.as_millis()
                    )));
                }
                now.saturating_add(d.as_millis() as i64)
            }
            (None, None) => now,
        };
        if eta < 0 {
            return Err(invalid("eta is before 1970".to_string()));
        }
        let priority = r.priority.unwrap_or(10);
        if priority > 1_000_000 {
            return Err(invalid(format!(
                "priority {priority} is above the maximum of 1000000"
            )));
        }
        if let Some(key) = &r.identity_key
            && (key.is_empty() || key.len() > 512)
        {
            return Err(invalid("identity key must be 1 to 512 bytes".to_string()));
        }
        for parent in &spec.parents {
            if let Parent::InBatch(i) = parent
                && *i >= index
            {
                return Err(invalid(format!(
                    "depends on job {i} of the batch, which does not come before it"
                )));
            }
        }
        // A sync job names its backend in its arguments; the job carries
        // it too when its request did not, so that the backend's share,
        // quotas and circuit breaker apply to it however it was enqueued.
        // (Checked to be a JSON object by `validate`.)
        let args: serde_json::Value = serde_json::from_str(&r.args).unwrap_or_default();
        let backend = spec.backend.clone().or_else(|| {
            let sync = self
                .guest_functions
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&r.function);
            sync.then(|| args.get("backend").and_then(|b| b.as_str()))
                .flatten()
                .map(str::to_string)
        });
        let record = job::record_key(&args, backend.as_deref());
        let coalesce = self
            .coalescing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&r.function);
        let identity_key = match (&record, coalesce) {
            (Some(record), true) => Some(format!(
                "coalesce:{}:{}:{record}",
                r.function,
                backend.as_deref().unwrap_or_default()
            )),
            _ => r.identity_key.clone(),
        };
        Ok(NewJob {
            function: r.function.clone(),
            args: r.args.clone(),
            backend,
            priority: priority as i32,
            eta,
            channel,
            identity_key,
            max_retries: r.max_retries.unwrap_or(
                self.config
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .default_max_retries,
            ),
            description: r.description.clone(),
            parents: spec.parents.clone(),
            record,
        })
    }

    /// Enqueue a batch atomically: every job is validated first, and either
    /// all are stored or none.
    pub async fn enqueue_batch(&self, specs: &[JobSpec]) -> Result<Vec<Enqueued>, QueueError> {
        let now = now_ms();
        let jobs = specs
            .iter()
            .enumerate()
            .map(|(i, s)| self.prepare(i, s, now))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_quotas(specs, now).await?;
        let out = self.storage.enqueue(&jobs, now).await?;
        self.wake.notify_one();
        Ok(out)
    }

    /// A connector's jobs stay within its backend's quotas: live jobs
    /// (counted in the database, checked before the write, so concurrent
    /// calls may pass it by at most their own batches) and jobs per minute
    /// on this node. A refused batch stores nothing.
    async fn check_quotas(&self, specs: &[JobSpec], now: i64) -> Result<(), QueueError> {
        let mut asked: HashMap<&str, (JobQuota, u64)> = HashMap::new();
        for spec in specs {
            if let (Some(quota), Some(backend)) = (spec.quota, spec.backend.as_deref()) {
                asked.entry(backend).or_insert((quota, 0)).1 += 1;
            }
        }
        for (backend, (quota, n)) in asked {
            let refuse = |what, key, label, detail| {
                crate::metrics::global().quota(backend, label);
                QueueError::Quota {
                    backend: backend.to_string(),
                    what,
                    key,
                    detail,
                }
            };
            let live = self.storage.live_jobs(backend, quota.max_pending).await?;
            if live + n > quota.max_pending {
                return Err(refuse(
                    "pending-jobs quota",
                    "max_pending_jobs",
                    "pending-jobs",
                    format!(
                        "{live} of its jobs are waiting or running and the limit is {}",
                        quota.max_pending
                    ),
                ));
            }
            let minute = now.div_euclid(60_000);
            let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
            let (at, count) = rates.entry(backend.to_string()).or_insert((minute, 0));
            if *at != minute {
                *at = minute;
                *count = 0;
            }
            if *count + n > u64::from(quota.per_minute) {
                return Err(refuse(
                    "jobs-per-minute quota",
                    "max_jobs_per_minute",
                    "jobs-per-minute",
                    format!(
                        "it enqueued {count} jobs this minute and the limit is {}",
                        quota.per_minute
                    ),
                ));
            }
            *count += n;
        }
        Ok(())
    }

    pub async fn enqueue(&self, spec: JobSpec) -> Result<Enqueued, QueueError> {
        Ok(self.enqueue_batch(std::slice::from_ref(&spec)).await?[0])
    }

    /// Close `backend`'s circuit breaker by hand; whether it was open.
    /// Every node sees it at its next health tick; this one at once.
    pub async fn close_breaker(&self, backend: &str) -> Result<bool, QueueError> {
        let closed = self.storage.close_breaker(backend).await?;
        self.breakers.refresh(&self.storage.breakers().await?);
        if closed {
            tracing::info!(backend, "circuit breaker closed by an operator");
        }
        self.wake.notify_one();
        Ok(closed)
    }

    /// An operator's action on named jobs, in one transaction.
    pub async fn act(&self, action: JobAction, ids: &[JobId]) -> Result<job::Acted, QueueError> {
        let acted = self.storage.act(action, ids, now_ms()).await?;
        self.wake.notify_one();
        Ok(acted)
    }

    /// Cancel a job and its dependents.
    pub async fn cancel(&self, id: JobId) -> Result<Vec<JobId>, QueueError> {
        Ok(self.storage.cancel(id, now_ms()).await?)
    }

    /// `action` on every job `filter` matches, newest first, one
    /// transaction per page of `BULK_PAGE` jobs: a crash midway leaves
    /// whole pages done and the rest untouched, and running the same
    /// action again finishes the job (jobs already acted on no longer
    /// match, or are skipped). With `dry_run`, only counts the matches.
    pub async fn bulk(
        &self,
        action: JobAction,
        filter: &JobFilter,
        dry_run: bool,
    ) -> Result<BulkReport, QueueError> {
        if !filter.narrows() {
            return Err(QueueError::Unfiltered(format!(
                "a bulk {} needs a filter (state, backend, channel, function, created_after or \
                 created_before); to act on every job in a state, name the state",
                action.verb()
            )));
        }
        let matched = self.storage.count_jobs(filter).await?;
        let mut report = BulkReport {
            matched,
            ..BulkReport::default()
        };
        if dry_run {
            return Ok(report);
        }
        let mut page = JobFilter {
            limit: BULK_PAGE,
            before: None,
            ..filter.clone()
        };
        loop {
            let ids: Vec<JobId> = self
                .storage
                .jobs(&page)
                .await?
                .iter()
                .map(|j| j.id)
                .collect();
            let Some(&last) = ids.last() else { break };
            let acted = self.act(action, &ids).await?;
            report.changed += acted.changed.len() as u64;
            report.skipped += (acted.skipped.len() + acted.missing.len()) as u64;
            report.pages += 1;
            if ids.len() < BULK_PAGE as usize {
                break;
            }
            page.before = Some(last);
        }
        Ok(report)
    }

    /// Put a failed or cancelled job back in the queue.
    pub async fn requeue(&self, id: JobId) -> Result<(), QueueError> {
        self.storage.requeue(id, now_ms()).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Mark a job done by hand (its dependents may start).
    pub async fn mark_done(&self, id: JobId) -> Result<(), QueueError> {
        self.storage.mark_done(id, now_ms()).await?;
        self.wake.notify_one();
        Ok(())
    }
}
