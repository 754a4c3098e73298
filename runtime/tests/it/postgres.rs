//! The end-to-end flows on PostgreSQL: nodes with their own connection
//! pools on one database race on the same records, import everything and
//! survive a connector swap under load. Skipped (said on stderr) without
//! JUNCTION_TEST_POSTGRES_URL; `.ci/run` sets it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use junction_demo_shop::ShopConfig;
use junction_runtime::node::Node;
use junction_runtime::storage::Storage;
use junction_runtime::storage::postgres::PgStorage;
use junction_runtime::sync::IMPORT_RECORD;

use super::pg_server::PrivateServer;
use super::storage::{job, postgres_schema, start_all};
use super::sync::{World, import, node_config, small, world_on};

/// A world on a new PostgreSQL schema, and a way to open more nodes'
/// storages on the same schema.
async fn world(config: ShopConfig) -> Option<(World, String, String)> {
    let (url, schema) = postgres_schema().await?;
    let storage: Arc<dyn Storage> = Arc::new(PgStorage::open(&url, Some(&schema)).await.unwrap());
    let node = Node::start(storage.clone(), node_config("node-a"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    Some((
        world_on(config, "2.4.6", dir, storage, node).await,
        url,
        schema,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_postgres_import_everything_once() {
    let Some((w, url, schema)) = world(ShopConfig {
        seed: small(),
        ..ShopConfig::default()
    })
    .await
    else {
        return;
    };
    let mut others = Vec::new();
    for name in ["node-b", "node-c"] {
        // Each node has its own pool, as separate processes would.
        let storage: Arc<dyn Storage> =
            Arc::new(PgStorage::open(&url, Some(&schema)).await.unwrap());
        others.push(Node::start(storage, node_config(name)).await.unwrap());
    }
    let mut specs = Vec::new();
    for _ in 0..3 {
        for id in 1..=small().orders {
            specs.push(import("order", &id.to_string()));
        }
    }
    let third = specs.len() / 3;
    let (a, rest) = specs.split_at(third);
    let (b, c) = rest.split_at(third);
    let (ra, rb, rc) = tokio::join!(
        w.node.queue.enqueue_batch(a),
        others[0].queue.enqueue_batch(b),
        others[1].queue.enqueue_batch(c)
    );
    ra.unwrap();
    rb.unwrap();
    rc.unwrap();
    w.settle().await;
    for o in &others {
        assert!(o.settle(Duration::from_secs(60)).await.unwrap());
    }
    w.import_all().await;
    assert!(w.failed().await.is_empty(), "{:?}", w.failed().await);
    for (model, n) in [
        ("order", small().orders),
        ("customer", small().customers),
        ("product", small().products),
    ] {
        let records = w.storage.records(model, None, 1000).await.unwrap();
        assert_eq!(records.len(), n, "one local {model} per shop {model}");
        assert_eq!(w.bound(model).await, n as i64);
    }
    let nodes: HashSet<_> = w
        .jobs(IMPORT_RECORD)
        .await
        .into_iter()
        .filter_map(|j| j.node)
        .collect();
    assert!(nodes.len() >= 2, "several nodes ran imports: {nodes:?}");
    for o in others {
        o.stop(Duration::from_secs(5)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_and_a_rollback_under_load_on_postgres() {
    let Some((w, _, _)) = world(super::hotswap::catalogue()).await else {
        return;
    };
    super::hotswap::swap_under_load(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_elsewhere_wakes_an_idle_node_at_once() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let open = || async {
        let s: Arc<dyn Storage> = Arc::new(PgStorage::open(&url, Some(&schema)).await.unwrap());
        s
    };
    // A node that would not look for work for an hour on its own.
    let idle = Node::start(
        open().await,
        junction_runtime::node::NodeConfig {
            job_poll: Duration::from_secs(3600),
            ..node_config("idle")
        },
    )
    .await
    .unwrap();
    // Give its first poll and its LISTEN time to happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = open().await;
    for round in 0..3 {
        let spec = junction_runtime::queue::JobSpec::new("junction.noop", serde_json::json!({}));
        let job = idle
            .queue
            .prepare(0, &spec, junction_runtime::queue::now_ms())
            .unwrap();
        let id = other
            .enqueue(&[job], junction_runtime::queue::now_ms())
            .await
            .unwrap()[0]
            .id;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let state = other.job(id).await.unwrap().unwrap().state;
            if state == junction_runtime::queue::job::JobState::Done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: a job enqueued by another process never woke the idle node"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    idle.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let (a, b, c) = tokio::join!(
        PgStorage::open(&url, Some(&schema)),
        PgStorage::open(&url, Some(&schema)),
        PgStorage::open(&url, Some(&schema))
    );
    for s in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_eq!(s.schema_version().await.unwrap(), 11);
    }
    let reopened = PgStorage::open(&url, Some(&schema)).await.unwrap();
    assert_eq!(reopened.schema_version().await.unwrap(), 11);
    let wrong = PgStorage::open("postgres://nobody@127.0.0.1:1/none", None).await;
    let e = wrong.unwrap_err().to_string();
    assert!(
        e.contains("cannot open the database at postgres://nobody@127.0.0.1:1/none"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_an_embedded_installation_to_postgres() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let w = super::sync::world().await;
    w.import_all().await;
    w.run(vec![import("product", "NO-SUCH-SKU")]).await; // a failed job with its audit
    let next = super::api::rebuilt(junction_connectors::MAGENTO, "copied");
    w.node.sync.install(&next).await.unwrap();
    w.node.sync.rollback_connector("magento").await.unwrap();
    let file = w.dir.path().join("junction.db");
    let junction = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(args)
            .output()
            .unwrap()
    };
    let from = format!("sqlite://{}", file.display());
    let copy = |extra: &[&str]| {
        let mut args = vec![
            "db",
            "copy",
            "--from",
            &from,
            "--to",
            &url,
            "--to-schema",
            &schema,
        ];
        args.extend_from_slice(extra);
        junction(&args)
    };
    // A live node on the source is refused.
    let out = copy(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("node-a is running"),
        "{out:?}"
    );
    let source = w.storage.clone();
    w.node.stop(Duration::from_secs(5)).await.unwrap();
    let out = copy(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("jobs") && text.contains("bindings"), "{text}");
    // Everything arrived, row for row.
    let target = PgStorage::open(&url, Some(&schema)).await.unwrap();
    for table in junction_runtime::storage::copy::TABLES {
        let a = source.dump(table, 0, 1_000_000).await.unwrap();
        let b = target.dump(table, 0, 1_000_000).await.unwrap();
        assert_eq!(a.len(), b.len(), "{}", table.name);
        assert!(a == b, "{} differs after the copy", table.name);
    }
    assert_eq!(
        target.counts().await.unwrap(),
        source.counts().await.unwrap(),
        "the copied jobs are counted on the target"
    );
    // A second copy into the same (no longer empty) target is refused.
    let out = copy(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has jobs"));
    // A node on the copy carries on: new ids follow the copied ones, the
    // stored connector versions and backend serve the next import.
    let max_id = source
        .jobs(&junction_runtime::queue::job::JobFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .id;
    let storage: Arc<dyn Storage> = Arc::new(target);
    let node = Node::start(storage.clone(), node_config("node-pg"))
        .await
        .unwrap();
    let e = node
        .queue
        .enqueue(import("product", "DS-00001"))
        .await
        .unwrap();
    assert!(e.id > max_id);
    assert!(node.settle(Duration::from_secs(60)).await.unwrap());
    let job = storage.job(e.id).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        junction_runtime::queue::job::JobState::Done,
        "{job:?}"
    );
    assert_eq!(
        job.connector_digest.as_deref(),
        Some(super::api::digest(junction_connectors::MAGENTO).as_str()),
        "the rolled-back-to version is still the active one"
    );
    node.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_run_loses_no_job() {
    let Some(server) = PrivateServer::for_test().await else {
        return;
    };
    let storage: Arc<dyn Storage> = Arc::new(PgStorage::open(&server.url(), None).await.unwrap());
    let node = Node::start(
        storage.clone(),
        junction_runtime::node::NodeConfig {
            lease: Duration::from_secs(20),
            ..node_config("node-a")
        },
    )
    .await
    .unwrap();
    const N: usize = 3_000;
    let specs: Vec<_> = (0..N)
        .map(|_| {
            junction_runtime::queue::JobSpec::new("junction.sleep", serde_json::json!({"ms": 5}))
        })
        .collect();
    node.queue.enqueue_batch(&specs).await.unwrap();
    let done = |s: Arc<dyn Storage>| async move {
        s.counts()
            .await
            .map(|c| {
                c.iter()
                    .filter(|c| c.state == junction_runtime::queue::job::JobState::Done)
                    .map(|c| c.count)
                    .sum::<i64>()
            })
            .unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done(storage.clone()).await < (N / 3) as i64 {
        assert!(tokio::time::Instant::now() < deadline, "the jobs stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = tokio::task::spawn_blocking(move || {
        server.ctl("restart");
        server
    })
    .await
    .unwrap();
    let after_restart = done(storage.clone()).await;
    assert!(after_restart < N as i64, "the restart came after the run");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while done(storage.clone()).await < N as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "after the restart only {} of {N} jobs finished",
            done(storage.clone()).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = storage
        .jobs(&junction_runtime::queue::job::JobFilter {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), N);
    assert!(
        jobs.iter().all(|j| j.tries <= 2),
        "a job ran more than twice"
    );
    let again = jobs.iter().filter(|j| j.tries == 2).count();
    // At most what the node held when the connection dropped may run again.
    let held = node_config("x").concurrency + node_config("x").prefetch;
    assert!(again <= held, "{again} jobs ran again after the restart");
    node.stop(Duration::from_secs(5)).await.unwrap();
    drop(server);
    eprintln!(
        "database restart: {after_restart} of {N} jobs done when the server was back; all done in the end, {again} ran again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_channel_runs_one_job_at_a_time_across_nodes() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let channels =
        junction_runtime::queue::channels::ChannelConfig::parse("root:8, root.seq:1:sequential")
            .unwrap();
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        let storage: Arc<dyn Storage> =
            Arc::new(PgStorage::open(&url, Some(&schema)).await.unwrap());
        nodes.push(
            Node::start(
                storage,
                junction_runtime::node::NodeConfig {
                    channels: Some(channels.clone()),
                    ..node_config(name)
                },
            )
            .await
            .unwrap(),
        );
    }
    let specs: Vec<_> = (0..24)
        .map(|_| {
            junction_runtime::queue::JobSpec::new("junction.sleep", serde_json::json!({"ms": 20}))
                .channel("root.seq")
        })
        .collect();
    // Enqueued through every node, so all three wake and compete.
    for (i, chunk) in specs.chunks(8).enumerate() {
        nodes[i].queue.enqueue_batch(chunk).await.unwrap();
    }
    for n in &nodes {
        assert!(n.settle(Duration::from_secs(60)).await.unwrap());
    }
    let mut jobs = nodes[0]
        .queue
        .storage()
        .jobs(&junction_runtime::queue::job::JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 24);
    jobs.sort_by_key(|j| j.started_at);
    for pair in jobs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            b.started_at.unwrap() >= a.finished_at.unwrap(),
            "jobs {} ({:?}) and {} ({:?}) overlapped in a capacity-1 channel",
            a.id,
            a.node,
            b.id,
            b.node
        );
    }
    let ran_on: HashSet<_> = jobs.iter().filter_map(|j| j.node.clone()).collect();
    eprintln!("sequential channel: 24 jobs one at a time on {ran_on:?}");
    for n in nodes {
        n.stop(Duration::from_secs(5)).await.unwrap();
    }
}

/// Jobs' sync leases are advisory locks: they exclude another node, and
/// when the node holding them goes away its connection closes and they are
/// free at once, long before their `until` and before the reaper returns
/// the job.
#[tokio::test]
async fn a_gone_nodes_sync_leases_are_free_at_once() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let a = PgStorage::open(&url, Some(&schema)).await.unwrap();
    let b = PgStorage::open(&url, Some(&schema)).await.unwrap();
    a.enqueue(&[job("f"), job("f")], 1).await.unwrap();
    let running = start_all(&a, 2).await;
    let (on_a, on_b) = (
        format!("job-{}:node-a", running[0]),
        format!("job-{}:node-b", running[1]),
    );
    let keys = vec!["shop/product/1".to_string(), "shop/product/2".to_string()];
    let far = i64::MAX / 2;
    assert_eq!(
        a.lock(&keys, &on_a, 3, far).await.unwrap(),
        vec![true, true]
    );
    assert_eq!(
        b.lock(&keys[..1], &on_b, 4, far).await.unwrap(),
        vec![false],
        "held by the other node"
    );
    a.unlock(&keys[..1], &on_a).await.unwrap();
    assert_eq!(
        b.lock(&keys, &on_b, 5, far).await.unwrap(),
        vec![true, false]
    );
    // A schema of its own is a namespace of its own.
    let (_, other) = postgres_schema().await.unwrap();
    let c = PgStorage::open(&url, Some(&other)).await.unwrap();
    assert_eq!(
        c.lock(&keys[1..], "job-1:node-c", 6, far).await.unwrap(),
        vec![true]
    );

    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if b.lock(&keys[1..], &on_b, 7, far).await.unwrap() == vec![true] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease of a node that went away stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
