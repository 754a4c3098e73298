//! What the end-to-end benchmarks share: a node on a fresh SQLite file
//! (compiled components cached across runs in one folder), and waiting
//! for its work to end with no failed job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_runtime::host::HostConfig;
use junction_runtime::node::{Node, NodeConfig};
use junction_runtime::storage::Storage;
use junction_runtime::storage::sqlite::SqliteStorage;

/// A node of its own, on a SQLite file in a temporary folder.
pub struct Bench {
    pub node: Node,
    pub storage: Arc<SqliteStorage>,
    pub dir: tempfile::TempDir,
}

impl Bench {
    /// With `concurrency` workers (else the node's default).
    pub async fn start(concurrency: Option<usize>) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(
            SqliteStorage::open(&dir.path().join("bench.db"))
                .await
                .unwrap(),
        );
        let defaults = NodeConfig::default();
        let node = Node::start(
            storage.clone(),
            NodeConfig {
                name: "bench".into(),
                concurrency: concurrency.unwrap_or(defaults.concurrency),
                host: HostConfig {
                    cache_dir: Some(std::env::temp_dir().join("junction-bench-cache")),
                    ..HostConfig::default()
                },
                ..defaults
            },
        )
        .await
        .unwrap();
        Bench { node, storage, dir }
    }

    /// Wait until nothing is left to run; how long that took. Panics on a
    /// failed job: a benchmark that lost work measured nothing.
    pub async fn settle(&self) -> Duration {
        let started = Instant::now();
        assert!(
            self.node.settle(Duration::from_secs(3600)).await.unwrap(),
            "the work did not finish"
        );
        let elapsed = started.elapsed();
        let failed = self
            .storage
            .jobs(&junction_runtime::queue::job::JobFilter {
                state: Some(junction_runtime::queue::job::JobState::Failed),
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(failed.is_empty(), "failed jobs: {failed:?}");
        elapsed
    }

    /// Records bound to `backend`.
    pub async fn bound(&self, backend: &str) -> i64 {
        self.storage
            .binding_counts(backend)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum()
    }

    pub async fn stop(self) {
        self.node.stop(Duration::from_secs(5)).await.unwrap();
    }
}
