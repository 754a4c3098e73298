//! One Junction node assembled: storage, job queue, event dispatcher,
//! synchronizer with its job functions, schedules and a worker pool. The
//! `junction` binary, the end-to-end tests and the sync benchmark all run
//! this, so that what is tested is what ships.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::events::EventBus;
use crate::host::{Host, HostConfig, HostError};
use crate::queue::channels::ChannelConfig;
use crate::queue::job::JobState;
use crate::queue::worker::{
    PoolConfig, PoolHandle, PoolReport, WorkerPool, default_node_name, host_name,
};
use crate::queue::{Queue, QueueConfig, now_ms};
use crate::secrets::SecretKey;
use crate::storage::{NodeInfo, Storage, StorageError};
use crate::sync::{SyncSettings, Synchronizer};

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// Jobs running at once on this node.
    pub concurrency: usize,
    /// Jobs claimed ahead of free slots (see `PoolConfig::prefetch`).
    pub prefetch: usize,
    /// One backend's share of `concurrency` while others have work (see
    /// `PoolConfig::backend_share`).
    pub backend_share: f64,
    /// Channel capacities; `None` gives the root channel the node's
    /// concurrency.
    pub channels: Option<ChannelConfig>,
    /// A started job's lease without a heartbeat.
    pub lease: Duration,
    pub host: HostConfig,
    pub sync: SyncSettings,
    /// How often an idle pool looks for due jobs when nothing woke it
    /// (an enqueue on this node, or a database notification, does).
    pub job_poll: Duration,
    /// How often the dispatcher looks at the outbox when idle.
    pub event_poll: Duration,
    /// How often schedules are checked.
    pub schedule_tick: Duration,
    /// How often the node looks for connector or backend changes made by
    /// other nodes.
    pub registry_poll: Duration,
    /// How often the node writes its heartbeat to the node registry.
    pub heartbeat: Duration,
    /// Job functions' tries when a request does not say (0 = unlimited).
    pub default_max_retries: u32,
    /// Seals backend credentials at rest. Every node on one database needs
    /// the same key; the default is generated once per process (a service
    /// reads its key file).
    pub secret_key: Arc<SecretKey>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: default_node_name(),
            concurrency: 8,
            prefetch: PoolConfig::default().prefetch,
            backend_share: PoolConfig::default().backend_share,
            channels: None,
            lease: Duration::from_secs(60),
            host: HostConfig::default(),
            sync: SyncSettings::default(),
            job_poll: PoolConfig::default().poll_interval,
            event_poll: Duration::from_millis(50),
            schedule_tick: Duration::from_secs(1),
            registry_poll: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
            default_max_retries: 5,
            secret_key: process_key(),
        }
    }
}

/// A key generated once per process, for nodes not given one.
fn process_key() -> Arc<SecretKey> {
    static KEY: std::sync::OnceLock<Arc<SecretKey>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Arc::new(SecretKey::generate())).clone()
}

/// Starting a node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A running node.
pub struct Node {
    pub queue: Arc<Queue>,
    pub bus: Arc<EventBus>,
    pub sync: Arc<Synchronizer>,
    pool: PoolHandle,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("sync", &self.sync).finish()
    }
}

impl Node {
    /// Start every part on `storage`. The configured backends are
    /// resolved first, so that their connectors' listeners hear the first
    /// event; a backend that cannot be resolved is logged and retried by
    /// its first job, which then fails with the reason.
    pub async fn start(storage: Arc<dyn Storage>, config: NodeConfig) -> Result<Node, NodeError> {
        let host = Host::new(config.host.clone())?;
        let queue = Queue::new(
            storage,
            QueueConfig {
                channels: match &config.channels {
                    Some(c) => c.clone(),
                    None => ChannelConfig::parse(&format!("root:{}", config.concurrency.max(1)))
                        .expect("a root capacity is a valid channel configuration"),
                },
                lease: config.lease,
                default_max_retries: config.default_max_retries,
                ..QueueConfig::default()
            },
        );
        let bus = EventBus::new(queue.clone());
        let sync = Synchronizer::new(
            queue.clone(),
            host,
            bus.clone(),
            &config.name,
            config.sync.clone(),
            config.secret_key.clone(),
        );
        let mut pool = WorkerPool::new(
            queue.clone(),
            PoolConfig {
                node: config.name.clone(),
                concurrency: config.concurrency,
                prefetch: config.prefetch,
                backend_share: config.backend_share,
                reap_interval: (config.lease / 2).max(Duration::from_millis(50)),
                poll_interval: config.job_poll,
                ..PoolConfig::default()
            },
        )
        .with_builtins();
        sync.register(&mut pool);
        for (backend, e) in sync.resolve_all().await? {
            tracing::warn!(backend, error = %e, "backend not ready");
        }
        let mut tasks = vec![
            bus.start(config.event_poll),
            sync.start_schedules(config.schedule_tick),
            sync.start_following(config.registry_poll),
        ];
        tasks.push(start_heartbeat(queue.storage().clone(), &config).await?);
        if let Some(mut wakeups) = queue.storage().wakeups().await {
            let queue = queue.clone();
            tasks.push(tokio::spawn(async move {
                while wakeups.recv().await.is_some() {
                    queue.wake.notify_one();
                }
            }));
        }
        Ok(Node {
            pool: pool.start(),
            queue,
            bus,
            sync,
            tasks,
        })
    }

    /// This node's name in job records.
    pub fn name(&self) -> &str {
        self.sync.node()
    }

    /// Jobs not finished yet (waiting, pending, enqueued or started) and
    /// events not dispatched yet.
    pub async fn outstanding(&self) -> Result<(i64, usize), StorageError> {
        let storage = self.queue.storage();
        let live = storage
            .counts()
            .await?
            .iter()
            .filter(|c| {
                matches!(
                    c.state,
                    JobState::WaitDependencies
                        | JobState::Pending
                        | JobState::Enqueued
                        | JobState::Started
                )
            })
            .map(|c| c.count)
            .sum();
        let events = storage.undispatched(1).await?.len();
        Ok((live, events))
    }

    /// Wait until nothing is outstanding (checked twice in a row, since a
    /// finishing job may emit events that create jobs), or `timeout`.
    /// Returns whether the node settled.
    pub async fn settle(&self, timeout: Duration) -> Result<bool, StorageError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut quiet = 0;
        while tokio::time::Instant::now() < deadline {
            if self.outstanding().await? == (0, 0) {
                quiet += 1;
                if quiet == 3 {
                    return Ok(true);
                }
            } else {
                quiet = 0;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
    }

    /// Stop: running jobs get `grace` to finish, the rest go back, and the
    /// node registry shows this node stopped.
    pub async fn stop(self, grace: Duration) -> Result<PoolReport, StorageError> {
        for t in &self.tasks {
            t.abort();
        }
        let report = self.pool.shutdown(grace).await?;
        self.queue
            .storage()
            .node_stopped(self.sync.node(), now_ms())
            .await?;
        Ok(report)
    }
}

/// Write the node's row to the node registry now, then every
/// `config.heartbeat`.
async fn start_heartbeat(
    storage: Arc<dyn Storage>,
    config: &NodeConfig,
) -> Result<JoinHandle<()>, StorageError> {
    let mut info = NodeInfo {
        name: config.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        host: host_name(),
        started_at: now_ms(),
        heartbeat_at: now_ms(),
        stopped_at: None,
        running: 0,
    };
    storage.node_beat(&info).await?;
    let every = config.heartbeat;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            info.heartbeat_at = now_ms();
            if let Err(e) = storage.node_beat(&info).await {
                tracing::warn!(error = %e, "the node's heartbeat could not be written");
            }
        }
    }))
}
