//! Three `junction serve` processes on one PostgreSQL database run 20,000
//! jobs; mid-run one is killed with SIGKILL, or the database server
//! restarts. Every job ends done, and only jobs in hand at that moment ran
//! again (once). Skipped without JUNCTION_TEST_POSTGRES_URL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use junction_runtime::queue::job::{Job, JobFilter, JobState, NewJob};
use junction_runtime::storage::Storage;
use junction_runtime::storage::postgres::PgStorage;

use super::pg_server::PrivateServer;
use super::storage::postgres_schema;

const JOBS: usize = 20_000;
const WORKERS: usize = 8;
/// The default claim-ahead of `junction serve`.
const PREFETCH: usize = 1024;
const TOKEN: &str = "cluster-test-token-0123456789";

struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(dir: &Path, url: &str, schema: &str, name: &str) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "database = \"{url}\"\ndatabase_schema = \"{schema}\"\nlisten = \"127.0.0.1:{port}\"\n\
             admin_token = \"{TOKEN}\"\nnode = \"{name}\"\nworkers = {WORKERS}\njob_lease = 3000\n"
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn done(s: &PgStorage) -> i64 {
    s.counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == JobState::Done)
        .map(|c| c.count)
        .sum()
}

async fn all_jobs(s: &PgStorage) -> Vec<Job> {
    s.jobs(&JobFilter {
        limit: 1_000_000,
        ..JobFilter::default()
    })
    .await
    .unwrap()
}

/// What happens to the cluster a third of the way through the run.
enum Disruption {
    /// `node-2` is killed with SIGKILL: no goodbye, leases left behind.
    KillNode,
    /// The database server restarts (fast shutdown: every connection is
    /// cut) while all three nodes are claiming and completing.
    RestartDatabase(PrivateServer),
}

/// Three nodes on `url`/`schema` run `JOBS` jobs through `disruption`;
/// every job ends done, none ran more than twice, and only jobs that were
/// claimed or running at the disruption ran again. Returns the server,
/// which must outlive the nodes.
async fn run(url: &str, schema: &str, disruption: Disruption) -> Option<PrivateServer> {
    let storage = PgStorage::open(url, Some(schema)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Nodes(
        ["node-1", "node-2", "node-3"]
            .iter()
            .map(|n| serve(dir.path(), url, schema, n))
            .collect(),
    );
    // Generous: on a loaded two-core CI machine (components compiling
    // beside) three processes starting and migrating once took over 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while storage.nodes().await.unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let job = NewJob {
        function: "junction.sleep".into(),
        args: r#"{"ms": 2}"#.into(),
        backend: None,
        priority: 10,
        eta: 0,
        channel: "root".into(),
        identity_key: None,
        max_retries: 5,
        description: None,
        parents: Vec::new(),
        record: None,
    };
    let now = junction_runtime::queue::now_ms();
    for _ in 0..JOBS / 5_000 {
        storage
            .enqueue(&vec![job.clone(); 5_000], now)
            .await
            .unwrap();
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while done(&storage).await < (JOBS / 3) as i64 {
        assert!(tokio::time::Instant::now() < deadline, "the jobs stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_hand = |jobs: &[Job], node: Option<&str>| {
        jobs.iter()
            .filter(|j| {
                (node.is_none() || j.node.as_deref() == node)
                    && matches!(j.state, JobState::Enqueued | JobState::Started)
            })
            .count()
    };
    let (held, server, what) = match disruption {
        Disruption::KillNode => {
            nodes.0[1].kill().unwrap();
            nodes.0[1].wait().unwrap();
            // A statement the node sent just before it died still runs to
            // its end in the server (a claim commits with nobody to read
            // its answer): count once that settled, well before the dead
            // node's leases (3 s) can expire.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let held = in_hand(&all_jobs(&storage).await, Some("node-2"));
            assert!(held > 0, "node-2 held no job when it was killed");
            (held, None, "node-2 killed")
        }
        Disruption::RestartDatabase(server) => {
            // Counted before the restart: between the count and the cut the
            // nodes claim more, so the bound below allows one more claim
            // batch per node.
            let held = in_hand(&all_jobs(&storage).await, None) + 3 * (PREFETCH + WORKERS);
            let server = tokio::task::spawn_blocking(move || {
                server.ctl("restart");
                server
            })
            .await
            .unwrap();
            (held, Some(server), "database restarted")
        }
    };
    let at_disruption = done(&storage).await;
    assert!(
        at_disruption < JOBS as i64,
        "the disruption came after the run"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while done(&storage).await < JOBS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {JOBS} jobs done",
            done(&storage).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = all_jobs(&storage).await;
    assert_eq!(jobs.len(), JOBS);
    assert!(jobs.iter().all(|j| j.state == JobState::Done));
    assert!(
        jobs.iter().all(|j| j.tries <= 2),
        "a job ran more than twice"
    );
    let again = jobs.iter().filter(|j| j.tries == 2).count();
    assert!(
        again <= held,
        "{again} jobs ran twice, but only {held} were in hand at the disruption"
    );
    let registry = storage.nodes().await.unwrap();
    if server.is_none() {
        for n in ["node-1", "node-3"] {
            assert!(
                jobs.iter().any(|j| j.node.as_deref() == Some(n)),
                "{n} ran jobs"
            );
        }
        // The registry shows the dead node as not stopped cleanly.
        let dead = registry.iter().find(|n| n.name == "node-2").unwrap();
        assert_eq!(dead.stopped_at, None);
        assert_eq!(dead.running, 0, "its jobs went to the others");
    } else {
        // Every node came back: each ran jobs after the restart and
        // still beats.
        let since = junction_runtime::queue::now_ms() - 10_000;
        for n in ["node-1", "node-2", "node-3"] {
            let entry = registry.iter().find(|r| r.name == n).unwrap();
            assert!(
                entry.heartbeat_at >= since,
                "{n} stopped beating: {entry:?}"
            );
            assert!(
                jobs.iter()
                    .any(|j| j.node.as_deref() == Some(n)
                        && j.finished_at.unwrap_or(0) > j.created_at),
                "{n} ran no job"
            );
        }
    }
    eprintln!(
        "cluster: {what} with {held} jobs in hand and {at_disruption} done; {again} ran again; all {JOBS} done"
    );
    drop(nodes);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_one_to_sigkill_and_finish_every_job() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    run(&url, &schema, Disruption::KillNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_ride_out_a_database_restart() {
    let Some(server) = PrivateServer::for_test().await else {
        return;
    };
    let url = server.url();
    let server = run(&url, "cluster", Disruption::RestartDatabase(server)).await;
    drop(server);
}
