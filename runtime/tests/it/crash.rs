//! Crash recovery with real processes: `kill -9` a worker in the middle of
//! jobs; another worker finishes everything, and only the jobs the dead one
//! held (running, or claimed ahead) ran again, each counting the lost try.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use junction_runtime::queue::job::{JobFilter, JobState};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig};
use junction_runtime::storage::Storage;
use junction_runtime::storage::sqlite::SqliteStorage;
use serde_json::json;

fn worker(db: &std::path::Path, node: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_junction"))
        .args([
            "queue",
            "work",
            "--concurrency",
            "8",
            "--lease-ms",
            "600",
            "--node",
            node,
            "--channels",
            "root:8",
        ])
        .arg("--database")
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("junction starts")
}

async fn count(storage: &dyn Storage, state: JobState) -> usize {
    storage
        .jobs(&JobFilter {
            state: Some(state),
            limit: 100_000,
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn kill_dash_nine_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&db).await.unwrap());
    let queue = Queue::new(storage.clone(), QueueConfig::default());
    queue.register_function("junction.sleep");
    let specs: Vec<JobSpec> = (0..300)
        .map(|_| JobSpec::new("junction.sleep", json!({"ms": 20})))
        .collect();
    queue.enqueue_batch(&specs).await.unwrap();

    let mut first = worker(&db, "doomed");
    let mut started_at_kill = Vec::new();
    let mut claimed_ahead_at_kill = Vec::new();
    for _ in 0..1000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if count(&*storage, JobState::Done).await >= 60 {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // Running, or claimed ahead and waiting in the dead process.
    for (state, ids) in [
        (JobState::Started, &mut started_at_kill),
        (JobState::Enqueued, &mut claimed_ahead_at_kill),
    ] {
        let held = storage
            .jobs(&JobFilter {
                state: Some(state),
                limit: 1000,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        ids.extend(held.into_iter().map(|j| j.id));
    }
    assert!(
        !started_at_kill.is_empty(),
        "the worker died in the middle of jobs"
    );
    let done_before = count(&*storage, JobState::Done).await;
    assert!(done_before < 300, "the worker died before the end");

    let mut second = worker(&db, "survivor");
    let mut finished = false;
    for _ in 0..3000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if count(&*storage, JobState::Done).await == 300 {
            finished = true;
            break;
        }
    }
    // SIGTERM: a graceful stop.
    crate::cli::signal(&second, "TERM");
    second.wait().unwrap();
    assert!(
        finished,
        "every job ends done: {:?}",
        storage.counts().await.unwrap()
    );

    let all = storage
        .jobs(&JobFilter {
            limit: 100_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 300, "none lost");
    for job in all {
        assert_eq!(job.state, JobState::Done);
        if started_at_kill.contains(&job.id) {
            assert_eq!(
                job.tries, 2,
                "job {} was running in the dead worker: re-run once",
                job.id
            );
            assert_eq!(job.node.as_deref(), Some("survivor"));
        } else if claimed_ahead_at_kill.contains(&job.id) {
            // Claimed ahead but never begun: no try was spent on it.
            assert_eq!(job.tries, 1, "job {} was only claimed ahead", job.id);
            assert_eq!(job.node.as_deref(), Some("survivor"));
        } else {
            assert_eq!(job.tries, 1, "job {} ran once: {job:?}", job.id);
        }
    }
}
