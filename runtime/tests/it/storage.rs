//! The storage conformance suite, written against the `Storage` trait so
//! every implementation runs the same checks. SQLite always runs; other
//! databases join when their implementation lands.

use std::sync::Arc;

use junction_runtime::capabilities::egress::AuditEntry;
use junction_runtime::host::{LogLevel, LogLine, LogSource};
use junction_runtime::queue::job::{Completion, JobFilter, JobState, NewJob, Outcome, Parent};
use junction_runtime::queue::retention::PurgeScope;
use junction_runtime::storage::postgres::PgStorage;
use junction_runtime::storage::sqlite::SqliteStorage;
use junction_runtime::storage::{
    BindWrite, ClaimRequest, InstalledConnector, NodeInfo, RecordWrite, RemoveBackend, StateQuota,
    Storage, StorageError,
};

/// Every storage implementation under test, each on a fresh database.
/// Every storage implementation, fresh: SQLite in a temporary folder, and
/// PostgreSQL (in a schema of its own) when JUNCTION_TEST_POSTGRES_URL
/// names a server; without it the PostgreSQL half says it was skipped.
pub(crate) async fn storages() -> Vec<(&'static str, Arc<dyn Storage>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStorage::open(&dir.path().join("junction.db"))
        .await
        .unwrap();
    let mut all: Vec<(&'static str, Arc<dyn Storage>, tempfile::TempDir)> =
        vec![("sqlite", Arc::new(sqlite), dir)];
    if let Some(pg) = postgres().await {
        all.push(("postgres", Arc::new(pg), tempfile::tempdir().unwrap()));
    }
    all
}

/// A PostgreSQL storage in a new schema of the test database, or `None`
/// (said on stderr) without JUNCTION_TEST_POSTGRES_URL. Schemas of runs
/// older than an hour are dropped, so the test database does not grow.
pub(crate) async fn postgres() -> Option<PgStorage> {
    let (url, schema) = postgres_schema().await?;
    Some(PgStorage::open(&url, Some(&schema)).await.unwrap())
}

/// The test server's URL and a new schema name for one test.
pub(crate) async fn postgres_schema() -> Option<(String, String)> {
    let Ok(url) = std::env::var("JUNCTION_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped: the PostgreSQL half of this test (set JUNCTION_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return None;
    };
    let now = junction_runtime::queue::now_ms();
    let schema = format!("jt_{now}_{:08x}", rand::random::<u32>());
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("the test PostgreSQL answers");
    let old: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'jt\\_%'")
            .fetch_all(&admin)
            .await
            .unwrap();
    for name in old {
        let born = name.split('_').nth(1).and_then(|t| t.parse::<i64>().ok());
        if born.is_some_and(|t| t < now - 3_600_000) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&admin)
                .await;
        }
    }
    admin.close().await;
    Some((url, schema))
}

pub(crate) fn job(function: &str) -> NewJob {
    NewJob {
        function: function.to_string(),
        args: "{}".to_string(),
        backend: None,
        priority: 10,
        eta: 0,
        channel: "root".to_string(),
        identity_key: None,
        max_retries: 3,
        description: None,
        parents: Vec::new(),
        record: None,
    }
}

fn claim(now: i64) -> ClaimRequest {
    ClaimRequest {
        node: "node-a".into(),
        worker: "w1".into(),
        now,
        lease_until: now + 1000,
        limit: 100,
        full_channels: Vec::new(),
        sequential_channels: Vec::new(),
        shared_limits: Vec::new(),
        held_backends: Vec::new(),
    }
}

pub(crate) async fn start_all(s: &dyn Storage, now: i64) -> Vec<i64> {
    let ids: Vec<i64> = s
        .candidates(&claim(now))
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    s.claim(&ids, &claim(now))
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect()
}

fn done(id: i64) -> Completion {
    Completion {
        id,
        outcome: Outcome::Done {
            result: Some("\"ok\"".into()),
        },
        finished_at: 50,
        connector_digest: Some("sha256:abc".into()),
        log: Vec::new(),
        audit: Vec::new(),
    }
}

async fn state(s: &dyn Storage, id: i64) -> JobState {
    s.job(id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn migrations_apply_once_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/junction.db");
    let s = SqliteStorage::open(&path).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 10);
    s.enqueue(&[job("f")], 1).await.unwrap();
    drop(s);
    let s = SqliteStorage::open(&path).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 10);
    assert_eq!(s.jobs(&JobFilter::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_database_that_cannot_be_created_is_named() {
    let err = SqliteStorage::open(std::path::Path::new("/proc/junction/x.db"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/proc/junction"), "{err}");
}

#[tokio::test]
async fn jobs_round_trip() {
    for (name, s, _dir) in storages().await {
        let mut j = job("import-record");
        j.args = r#"{"id":7}"#.into();
        j.backend = Some("shop".into());
        j.priority = 3;
        j.eta = 42;
        j.channel = "root.shop".into();
        j.description = Some("import 7".into());
        let out = s.enqueue(&[j], 5).await.unwrap();
        let got = s.job(out[0].id).await.unwrap().unwrap();
        assert_eq!(got.function, "import-record", "{name}");
        assert_eq!(got.args, r#"{"id":7}"#);
        assert_eq!(got.backend.as_deref(), Some("shop"));
        assert_eq!((got.priority, got.eta, got.created_at), (3, 42, 5));
        assert_eq!(got.channel, "root.shop");
        assert_eq!(got.state, JobState::Pending);
        assert_eq!(got.max_retries, 3);
        assert!(s.job(9999).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn identity_keys_collapse_live_jobs_only() {
    for (name, s, _dir) in storages().await {
        let mut j = job("f");
        j.identity_key = Some("k1".into());
        let out = s.enqueue(&[j.clone(), j.clone()], 1).await.unwrap();
        assert!(!out[0].deduplicated && out[1].deduplicated, "{name}");
        assert_eq!(out[0].id, out[1].id);
        let again = s.enqueue(&[j.clone()], 2).await.unwrap();
        assert_eq!(again[0].id, out[0].id);
        // Claimed but not started, it still collapses; once started, a new
        // job with the same key is a new job (the old one may have read
        // its input already).
        start_all(&*s, 10).await;
        assert!(s.enqueue(&[j.clone()], 10).await.unwrap()[0].deduplicated);
        s.complete(&[], &[(out[0].id, 10)], 10).await.unwrap();
        let fresh = s.enqueue(&[j], 11).await.unwrap();
        assert!(!fresh[0].deduplicated);
        assert_ne!(fresh[0].id, out[0].id);
    }
}

#[tokio::test]
async fn concurrent_enqueues_of_one_key_create_one_job() {
    for (name, s, _dir) in storages().await {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut j = job("f");
                    j.identity_key = Some("same".into());
                    s.enqueue(&[j], 1).await.unwrap()[0].id
                })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{name}");
        assert_eq!(s.jobs(&JobFilter::default()).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn candidates_come_in_run_order_and_respect_eta() {
    for (name, s, _dir) in storages().await {
        let mut a = job("a");
        a.priority = 5;
        a.eta = 10;
        let mut b = job("b");
        b.priority = 1;
        b.eta = 20;
        let mut c = job("c");
        c.priority = 5;
        c.eta = 5;
        let mut later = job("later");
        later.eta = 1000;
        let ids: Vec<i64> = s
            .enqueue(&[a, b, c, later], 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let got: Vec<i64> = s
            .candidates(&claim(100))
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, [ids[1], ids[2], ids[0]], "{name}");
    }
}

#[tokio::test]
async fn full_and_stopped_channels_are_skipped() {
    for (name, s, _dir) in storages().await {
        let mut shop = job("a");
        shop.channel = "root.shop".into();
        let mut orders = job("b");
        orders.channel = "root.shop.orders".into();
        let mut shopping = job("c");
        shopping.channel = "root.shopping".into();
        let mut crm = job("d");
        crm.channel = "root.crm".into();
        let ids: Vec<i64> = s
            .enqueue(&[shop, orders, shopping, crm], 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let mut req = claim(100);
        req.full_channels = vec!["root.shop".into()];
        let got: Vec<i64> = s
            .candidates(&req)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            got,
            [ids[2], ids[3]],
            "{name}: root.shop and root.shop.orders are full"
        );

        // A sequential channel stops while it holds a failed job.
        let mut failed = job("e");
        failed.channel = "root.crm".into();
        let f = s.enqueue(&[failed], 2).await.unwrap()[0].id;
        s.claim(&[f], &claim(100)).await.unwrap();
        let mut c = done(f);
        c.outcome = Outcome::Failed {
            kind: "permanent".into(),
            message: "no".into(),
        };
        s.complete(&[c], &[], 101).await.unwrap();
        let mut req = claim(100);
        req.sequential_channels = vec!["root.crm".into()];
        let got: Vec<i64> = s
            .candidates(&req)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(
            !got.contains(&ids[3]),
            "{name}: root.crm is stopped by its failed job"
        );
    }
}

#[tokio::test]
async fn backends_holding_their_share_are_left_out_of_claims() {
    for (name, s, _dir) in storages().await {
        let of = |backend: Option<&str>| {
            let mut j = job("f");
            j.backend = backend.map(str::to_string);
            j
        };
        let ids: Vec<i64> = s
            .enqueue(
                &[
                    of(Some("hostile")),
                    of(Some("hostile")),
                    of(Some("shop")),
                    of(None),
                ],
                1,
            )
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let mut req = claim(100);
        req.held_backends = vec!["hostile".into()];
        let got: Vec<i64> = s
            .candidates(&req)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, [ids[2], ids[3]], "{name}: candidates");
        // The one-statement claim leaves them out as well.
        let claimed: Vec<i64> = s
            .claim_next(&req)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(claimed, [ids[2], ids[3]], "{name}: claim_next");
        req.held_backends.clear();
        let rest: Vec<i64> = s
            .claim_next(&req)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(rest, [ids[0], ids[1]], "{name}: once it holds less");
    }
}

#[tokio::test]
async fn claims_take_only_pending_jobs() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        let first = s.claim(&[id], &claim(10)).await.unwrap();
        assert_eq!(first.len(), 1, "{name}");
        assert_eq!(first[0].state, JobState::Enqueued);
        assert_eq!(first[0].lease_until, Some(1010));
        assert_eq!(first[0].node.as_deref(), Some("node-a"));
        assert!(s.claim(&[id], &claim(11)).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn completions_record_outcomes_logs_and_audit() {
    for (name, s, _dir) in storages().await {
        let ids: Vec<i64> = s
            .enqueue(&[job("a"), job("b"), job("c")], 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        start_all(&*s, 10).await;
        let mut ok = done(ids[0]);
        ok.log = vec![LogLine {
            level: LogLevel::Info,
            source: LogSource::Guest,
            message: "hello".into(),
        }];
        ok.audit = vec![AuditEntry {
            method: "GET".into(),
            scheme: "https".into(),
            host: "shop.example.com".into(),
            port: 443,
            path: "/p?x".into(),
            status: Some(200),
            denied: None,
            error: None,
            request_bytes: 0,
            response_bytes: 10,
            duration_ms: 3,
        }];
        let retry = Completion {
            outcome: Outcome::Retry {
                eta: 500,
                count_try: true,
                kind: "retryable".into(),
                message: "later".into(),
            },
            ..done(ids[1])
        };
        let fail = Completion {
            outcome: Outcome::Failed {
                kind: "permanent".into(),
                message: "broken".into(),
            },
            ..done(ids[2])
        };
        s.complete(&[ok, retry, fail], &[], 50).await.unwrap();
        let a = s.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((a.state, a.tries), (JobState::Done, 1), "{name}");
        assert_eq!(a.result.as_deref(), Some("\"ok\""));
        assert_eq!(a.connector_digest.as_deref(), Some("sha256:abc"));
        assert_eq!(s.job_log(ids[0]).await.unwrap()[0].message, "hello");
        assert_eq!(
            s.job_audit(ids[0]).await.unwrap()[0].entry.host,
            "shop.example.com"
        );
        let b = s.job(ids[1]).await.unwrap().unwrap();
        assert_eq!((b.state, b.tries, b.eta), (JobState::Pending, 1, 500));
        assert_eq!(b.error_message.as_deref(), Some("later"));
        let c = s.job(ids[2]).await.unwrap().unwrap();
        assert_eq!(
            (c.state, c.error_kind.as_deref()),
            (JobState::Failed, Some("permanent"))
        );
        // A report for a job that is no longer running is ignored.
        s.complete(&[done(ids[2])], &[], 60).await.unwrap();
        assert_eq!(state(&*s, ids[2]).await, JobState::Failed);
    }
}

#[tokio::test]
async fn begun_jobs_are_marked_started_with_their_start_time() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await;
        s.complete(&[], &[(id, 12)], 13).await.unwrap();
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.started_at),
            (JobState::Started, Some(12)),
            "{name}"
        );
        s.complete(&[done(id)], &[], 20).await.unwrap();
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.started_at), (JobState::Done, Some(12)));
    }
}

#[tokio::test]
async fn retries_that_do_not_count_keep_the_try_count() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await;
        let c = Completion {
            outcome: Outcome::Retry {
                eta: 20,
                count_try: false,
                kind: "locked".into(),
                message: "busy".into(),
            },
            ..done(id)
        };
        s.complete(&[c], &[], 15).await.unwrap();
        assert_eq!(s.job(id).await.unwrap().unwrap().tries, 0, "{name}");
    }
}

#[tokio::test]
async fn dependencies_chain_group_fail_and_cancel() {
    for (name, s, _dir) in storages().await {
        // a → b, and c waits for both a and b (a group).
        let mut b = job("b");
        b.parents = vec![Parent::InBatch(0)];
        let mut c = job("c");
        c.parents = vec![Parent::InBatch(0), Parent::InBatch(1)];
        let ids: Vec<i64> = s
            .enqueue(&[job("a"), b, c], 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            state(&*s, ids[1]).await,
            JobState::WaitDependencies,
            "{name}"
        );
        assert_eq!(s.parents(ids[2]).await.unwrap(), [ids[0], ids[1]]);
        assert_eq!(start_all(&*s, 10).await, [ids[0]], "only a is ready");
        s.complete(&[done(ids[0])], &[], 20).await.unwrap();
        assert_eq!(state(&*s, ids[1]).await, JobState::Pending);
        assert_eq!(
            state(&*s, ids[2]).await,
            JobState::WaitDependencies,
            "c still waits for b"
        );
        // b fails: c stays visibly waiting.
        start_all(&*s, 30).await;
        let fail = Completion {
            outcome: Outcome::Failed {
                kind: "permanent".into(),
                message: "no".into(),
            },
            ..done(ids[1])
        };
        s.complete(&[fail], &[], 40).await.unwrap();
        assert_eq!(state(&*s, ids[2]).await, JobState::WaitDependencies);
        // Requeue b, finish it: c becomes pending.
        s.requeue(ids[1], 50).await.unwrap();
        assert_eq!(s.job(ids[1]).await.unwrap().unwrap().tries, 0);
        start_all(&*s, 60).await;
        s.complete(&[done(ids[1])], &[], 70).await.unwrap();
        assert_eq!(state(&*s, ids[2]).await, JobState::Pending);

        // Cancel cascades to every dependent, transitively.
        let mut y = job("y");
        y.parents = vec![Parent::InBatch(0)];
        let mut z = job("z");
        z.parents = vec![Parent::InBatch(1)];
        let t: Vec<i64> = s
            .enqueue(&[job("x"), y, z], 80)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let mut cancelled = s.cancel(t[0], 90).await.unwrap();
        cancelled.sort();
        assert_eq!(cancelled, t);
        let err = s.cancel(t[0], 91).await.unwrap_err();
        assert!(matches!(err, StorageError::WrongState { .. }), "{err}");
        // A parent marked done by hand releases its child.
        let mut q = job("q");
        q.parents = vec![Parent::InBatch(0)];
        let m: Vec<i64> = s
            .enqueue(&[job("p"), q], 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        s.mark_done(m[0], 110).await.unwrap();
        assert_eq!(state(&*s, m[1]).await, JobState::Pending);
        // A dependency on a job that does not exist is refused.
        let mut orphan = job("o");
        orphan.parents = vec![Parent::Stored(123456)];
        assert!(matches!(
            s.enqueue(&[orphan], 1).await,
            Err(StorageError::MissingParent { .. })
        ));
    }
}

#[tokio::test]
async fn expired_leases_return_to_the_queue_and_count_a_try() {
    for (name, s, _dir) in storages().await {
        let mut once = job("once");
        once.max_retries = 1;
        let ids: Vec<i64> = s
            .enqueue(&[job("f"), once], 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        start_all(&*s, 10).await; // lease until 1010
        s.complete(&[], &[(ids[0], 11), (ids[1], 11)], 11)
            .await
            .unwrap(); // both begun: the try counts
        assert!(s.requeue_expired(1000).await.unwrap().is_empty(), "{name}");
        s.heartbeat("node-b", &ids, 5000).await.unwrap(); // another node's beat changes nothing
        let mut back = s.requeue_expired(1011).await.unwrap();
        back.sort();
        assert_eq!(back, ids);
        let f = s.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((f.state, f.tries), (JobState::Pending, 1));
        assert_eq!(f.error_kind.as_deref(), Some("lease-expired"));
        let once = s.job(ids[1]).await.unwrap().unwrap();
        assert_eq!(once.state, JobState::Failed, "out of tries");
        // A heartbeat keeps a running job's lease alive.
        start_all(&*s, 2000).await;
        s.heartbeat("node-a", &[ids[0]], 9000).await.unwrap();
        assert!(s.requeue_expired(5000).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_job_claimed_ahead_but_never_begun_is_not_charged_a_try() {
    for (name, s, _dir) in storages().await {
        let mut once = job("once");
        once.max_retries = 1;
        let id = s.enqueue(&[once], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await; // claimed ahead, lease until 1010, never begun
        assert_eq!(s.requeue_expired(1011).await.unwrap(), vec![id], "{name}");
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.tries), (JobState::Pending, 0), "{name}");
        assert_eq!(j.error_kind, None, "{name}: nothing failed");
    }
}

#[tokio::test]
async fn a_jobs_next_try_takes_over_its_earlier_tries_leases() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 2).await;
        let r = vec!["r".to_string()];
        // The try on node-a took a lease, then node-a died; the job runs
        // again (here: still claimed) under another node's name.
        assert_eq!(
            s.lock(&r, &format!("job-{id}.aa:node-a"), 3, 1_000_000)
                .await
                .unwrap(),
            vec![true],
            "{name}"
        );
        // Two parts of one attempt (its dependency imports) exclude each
        // other: one importing a record the other imports would bind it
        // twice.
        assert_eq!(
            s.lock(&r, &format!("job-{id}.aa:node-a:1:0"), 3, 1_000_000)
                .await
                .unwrap(),
            vec![false],
            "{name}: a part of the same attempt waits"
        );
        assert_eq!(
            s.lock(&r, &format!("job-{id}.bb:node-b"), 4, 1_000_000)
                .await
                .unwrap(),
            vec![true],
            "{name}: its own earlier try does not block it"
        );
        assert_eq!(
            s.lock(&r, "job-999:node-c", 5, 1_000_000).await.unwrap(),
            vec![false],
            "{name}: another job still does"
        );
    }
}

#[tokio::test]
async fn released_jobs_go_back_without_counting() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await;
        s.release("node-a", &[id], 20).await.unwrap();
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.tries), (JobState::Pending, 0), "{name}");
    }
}

#[tokio::test]
async fn purge_removes_old_finished_jobs_in_batches() {
    for (name, s, _dir) in storages().await {
        let specs: Vec<NewJob> = (0..5).map(|_| job("f")).collect();
        let ids: Vec<i64> = s
            .enqueue(&specs, 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        start_all(&*s, 10).await;
        s.complete(&ids.iter().map(|id| done(*id)).collect::<Vec<_>>(), &[], 50)
            .await
            .unwrap();
        s.enqueue(&[job("live")], 60).await.unwrap();
        assert_eq!(
            s.purge(51, 2, &PurgeScope::default()).await.unwrap(),
            2,
            "{name}"
        );
        assert_eq!(s.purge(51, 10, &PurgeScope::default()).await.unwrap(), 3);
        assert_eq!(s.purge(51, 10, &PurgeScope::default()).await.unwrap(), 0);
        let left = s.jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].function, "live");
    }
}

#[tokio::test]
async fn listing_filters_and_counts() {
    for (name, s, _dir) in storages().await {
        let mut a = job("a");
        a.channel = "root.shop".into();
        a.backend = Some("shop".into());
        s.enqueue(&[a, job("b"), job("b")], 1).await.unwrap();
        let filter = JobFilter {
            function: Some("b".into()),
            ..JobFilter::default()
        };
        assert_eq!(s.jobs(&filter).await.unwrap().len(), 2, "{name}");
        let filter = JobFilter {
            backend: Some("shop".into()),
            ..JobFilter::default()
        };
        assert_eq!(s.jobs(&filter).await.unwrap()[0].channel, "root.shop");
        let filter = JobFilter {
            state: Some(JobState::Done),
            ..JobFilter::default()
        };
        assert!(s.jobs(&filter).await.unwrap().is_empty());
        let page = s
            .jobs(&JobFilter {
                limit: 2,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
        let rest = s
            .jobs(&JobFilter {
                before: Some(page[1].id),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        let counts = s.counts().await.unwrap();
        let pending_root = counts
            .iter()
            .find(|c| c.channel == "root" && c.state == JobState::Pending)
            .unwrap();
        assert_eq!(pending_root.count, 2);
    }
}

fn put(model: &str, id: &str, data: serde_json::Value, expected: Option<u64>) -> RecordWrite {
    RecordWrite {
        model: model.into(),
        id: id.into(),
        data: data.to_string(),
        expected_version: expected,
        origin_backend: Some("shop".into()),
        bind: None,
        keys: None,
    }
}

/// A page of more records than one statement takes (a connector may
/// return any number per page): every write, binding and lease lands,
/// and each write's event is its own.
#[tokio::test]
async fn a_batch_larger_than_one_statement_is_written_whole() {
    for (name, s, _dir) in storages().await {
        let n = 1_200;
        let writes: Vec<RecordWrite> = (0..n)
            .map(|i| {
                let mut w = put(
                    "product",
                    &format!("p{i}"),
                    serde_json::json!({"i": i}),
                    None,
                );
                w.bind = Some(BindWrite {
                    backend: "shop".into(),
                    external_id: format!("E{i}"),
                    sync_date: 5,
                    synced: None,
                });
                w
            })
            .collect();
        let out = s.put_records(&writes, 2).await.unwrap();
        let mut last = 0;
        for (i, o) in out.iter().enumerate() {
            let (record, event) = o.as_ref().unwrap().as_ref().unwrap();
            assert_eq!(record.id, format!("p{i}"), "{name}");
            assert_eq!(
                event.event.local_id.as_deref(),
                Some(record.id.as_str()),
                "{name}"
            );
            assert!(event.id > last, "{name}: events in the order of the writes");
            last = event.id;
        }
        let stored = s.undispatched(n).await.unwrap();
        for (o, e) in out.iter().zip(&stored) {
            let (record, event) = o.as_ref().unwrap().as_ref().unwrap();
            assert_eq!(e.id, event.id, "{name}");
            assert_eq!(
                e.event.payload, record.data,
                "{name}: the id is this record's event"
            );
        }
        assert_eq!(
            s.binding_counts("shop").await.unwrap(),
            vec![("product".to_string(), i64::from(n))],
            "{name}"
        );
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        assert!(
            s.lock(&keys, "a", 1, 100).await.unwrap().iter().all(|t| *t),
            "{name}"
        );
        assert!(
            s.lock(&keys, "b", 2, 100)
                .await
                .unwrap()
                .iter()
                .all(|t| !*t),
            "{name}"
        );
        s.unlock(&keys, "a").await.unwrap();
        assert!(
            s.lock(&keys, "b", 3, 100).await.unwrap().iter().all(|t| *t),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_record_writes_refuses_one_and_keeps_the_others() {
    for (name, s, _dir) in storages().await {
        s.put_record(&put("product", "p1", serde_json::json!({"a": 1}), None), 1)
            .await
            .unwrap();
        let mut bound = put("product", "p2", serde_json::json!({"a": 2}), Some(0));
        bound.bind = Some(BindWrite {
            backend: "shop".into(),
            external_id: "E2".into(),
            sync_date: 5,
            synced: Some(r#"{"a":2}"#.into()),
        });
        // p3 wants E2 too: the binding is taken, so p3 is refused whole.
        let mut clash = put("product", "p3", serde_json::json!({"a": 3}), Some(0));
        clash.bind = Some(BindWrite {
            backend: "shop".into(),
            external_id: "E2".into(),
            sync_date: 5,
            synced: None,
        });
        let out = s
            .put_records(
                &[
                    put("product", "p1", serde_json::json!({"a": 9}), Some(7)),
                    bound,
                    clash,
                    put("product", "p4", serde_json::json!([1]), None),
                ],
                2,
            )
            .await
            .unwrap();
        assert!(
            matches!(out[0], Err(StorageError::VersionConflict { .. })),
            "{name}: {:?}",
            out[0]
        );
        assert!(matches!(out[1], Ok(Some(_))), "{name}");
        assert!(
            matches!(out[2], Err(StorageError::Rejected(_))),
            "{name}: {:?}",
            out[2]
        );
        assert!(out[3].is_err(), "{name}: not an object");
        assert_eq!(
            s.record("product", "p1").await.unwrap().unwrap().version,
            1,
            "{name}"
        );
        assert!(s.record("product", "p2").await.unwrap().is_some(), "{name}");
        assert!(
            s.record("product", "p3").await.unwrap().is_none(),
            "{name}: nothing half-written"
        );
        let b = s.binding("shop", "product", "E2").await.unwrap().unwrap();
        assert_eq!((b.local_id.as_str(), b.sync_date), ("p2", 5), "{name}");
        assert_eq!(b.synced.as_deref(), Some(r#"{"a":2}"#), "{name}");
        // A bind without a snapshot keeps the last one.
        s.bind("shop", "product", "E2", "p2", 9, None)
            .await
            .unwrap();
        let b = s.binding("shop", "product", "E2").await.unwrap().unwrap();
        assert_eq!(
            (b.sync_date, b.synced.as_deref()),
            (9, Some(r#"{"a":2}"#)),
            "{name}"
        );
        let many = s
            .bindings_of("shop", "product", &["E2".into(), "E9".into()])
            .await
            .unwrap();
        assert_eq!(many.len(), 1, "{name}");
        let records = s
            .records_of("product", &["p1".into(), "p2".into(), "p404".into()])
            .await
            .unwrap();
        assert_eq!(records.len(), 2, "{name}");
        assert!(s.unbind("shop", "product", "p2").await.unwrap(), "{name}");
        assert!(!s.unbind("shop", "product", "p2").await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn leases_exclude_other_holders_until_they_expire() {
    for (name, s, _dir) in storages().await {
        let keys = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            s.lock(&keys, "w1", 0, 100).await.unwrap(),
            vec![true, true],
            "{name}"
        );
        assert_eq!(
            s.lock(&["b".into(), "c".into()], "w2", 50, 150)
                .await
                .unwrap(),
            vec![false, true],
            "{name}"
        );
        // The holder itself may take it again; a lapsed lease is free.
        assert_eq!(
            s.lock(&["a".into()], "w1", 60, 160).await.unwrap(),
            vec![true],
            "{name}"
        );
        assert_eq!(
            s.lock(&["b".into()], "w2", 101, 200).await.unwrap(),
            vec![true],
            "{name}"
        );
        // Only the holder gives a lease back.
        s.unlock(&["a".into()], "w2").await.unwrap();
        assert_eq!(
            s.lock(&["a".into()], "w3", 70, 170).await.unwrap(),
            vec![false],
            "{name}"
        );
        s.unlock(&["a".into()], "w1").await.unwrap();
        assert_eq!(
            s.lock(&["a".into()], "w3", 70, 170).await.unwrap(),
            vec![true],
            "{name}"
        );
    }
}

#[tokio::test]
async fn state_quotas_count_the_prefix_keys_of_one_backend() {
    for (name, s, _dir) in storages().await {
        let quota = StateQuota {
            prefix: "guest:".into(),
            max_keys: 2,
            max_bytes: 40,
        };
        let q = Some(&quota);
        // Host keys and other backends do not count.
        s.state_set(
            "crm",
            "import:customer:since",
            "x".repeat(100).as_str(),
            1,
            None,
        )
        .await
        .unwrap();
        s.state_set("other", "guest:a", "1", 1, q).await.unwrap();
        s.state_set("other", "guest:b", "1", 1, q).await.unwrap();
        s.state_set("crm", "guest:a", "1", 1, q).await.unwrap();
        s.state_set("crm", "guest:b", "1", 1, q).await.unwrap();
        // Rewriting a key is no new key.
        s.state_set("crm", "guest:b", "22", 2, q).await.unwrap();
        let err = s.state_set("crm", "guest:c", "1", 3, q).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Rejected(m) if m.contains("max_state_keys")),
            "{name}: {err}"
        );
        // Bytes: keys and values together (7 + 1 and 7 + 2 so far).
        let err = s
            .state_set("crm", "guest:a", &"y".repeat(30), 4, q)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::Rejected(m) if m.contains("max_state_bytes")),
            "{name}: {err}"
        );
        assert_eq!(
            s.state_get("crm", "guest:a").await.unwrap().as_deref(),
            Some("1"),
            "{name}: a refused write changes nothing"
        );
        assert_eq!(s.state_get("crm", "guest:c").await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn connectors_and_backends_are_stored_once() {
    for (name, s, _dir) in storages().await {
        let c = InstalledConnector {
            digest: "sha256:1".into(),
            name: "magento".into(),
            version: "0.1.0".into(),
            backend_kind: "magento".into(),
            backend_versions: ">=2".into(),
            manifest: "{}".into(),
            installed_at: 1,
            active: false,
        };
        assert!(s.install_connector(&c, b"wasm").await.unwrap(), "{name}");
        assert!(
            !s.install_connector(&c, b"wasm").await.unwrap(),
            "{name}: same digest"
        );
        assert_eq!(s.connectors().await.unwrap(), vec![c.clone()], "{name}");
        assert_eq!(
            s.connector_component("sha256:1").await.unwrap().as_deref(),
            Some(&b"wasm"[..])
        );
        s.put_backend("shop", "magento", "2.4.6", "{\"a\":1}", 1)
            .await
            .unwrap();
        s.put_backend("shop", "magento", "2.4.7", "{\"a\":2}", 2)
            .await
            .unwrap();
        let backends = s.backends().await.unwrap();
        assert_eq!(backends.len(), 1, "{name}");
        assert_eq!(backends[0].config, "{\"a\":2}", "{name}");
        assert!(s.remove_connector("sha256:1").await.unwrap(), "{name}");
        assert!(s.connectors().await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn activations_and_rollbacks_walk_the_history_of_versions() {
    for (name, s, _dir) in storages().await {
        let version = |digest: &str, v: &str| InstalledConnector {
            digest: digest.into(),
            name: "magento".into(),
            version: v.into(),
            backend_kind: "magento".into(),
            backend_versions: ">=2".into(),
            manifest: "{}".into(),
            installed_at: 1,
            active: false,
        };
        let active = || async {
            s.connectors()
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c.active)
                .map(|c| c.digest)
                .collect::<Vec<_>>()
        };
        let g0 = s.registry_generation().await.unwrap();
        for (d, v) in [
            ("sha256:1", "1.0.0"),
            ("sha256:2", "2.0.0"),
            ("sha256:3", "3.0.0"),
        ] {
            s.install_connector(&version(d, v), b"wasm").await.unwrap();
        }
        assert!(active().await.is_empty(), "{name}: installed inactive");
        assert_eq!(s.rollback_connector("magento", 2).await.unwrap(), None);
        for d in ["sha256:1", "sha256:2", "sha256:3"] {
            assert!(s.activate_connector(d, 3).await.unwrap(), "{name}");
            assert_eq!(active().await, vec![d.to_string()], "{name}: one active");
        }
        assert!(!s.activate_connector("sha256:9", 3).await.unwrap());
        assert!(s.registry_generation().await.unwrap() > g0, "{name}");
        assert_eq!(
            s.rollback_connector("magento", 4).await.unwrap().as_deref(),
            Some("sha256:2"),
            "{name}"
        );
        // A version removed meanwhile is skipped.
        assert!(s.remove_connector("sha256:1").await.unwrap());
        assert_eq!(s.rollback_connector("magento", 5).await.unwrap(), None);
        assert_eq!(active().await, vec!["sha256:2".to_string()], "{name}");
        assert!(s.activate_connector("sha256:3", 6).await.unwrap());
        assert_eq!(
            s.rollback_connector("magento", 7).await.unwrap().as_deref(),
            Some("sha256:2"),
            "{name}: back from a re-activation"
        );
    }
}

#[tokio::test]
async fn shared_channel_limits_hold_across_nodes() {
    for (name, s, _dir) in storages().await {
        let in_channel = |channel: &str| NewJob {
            channel: channel.into(),
            ..job("f")
        };
        let ids: Vec<i64> = s
            .enqueue(
                &[
                    in_channel("root.shop"),
                    in_channel("root.shop.orders"),
                    in_channel("root.shop"),
                    in_channel("root.crm"),
                ],
                1,
            )
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let limited = |node: &str| ClaimRequest {
            node: node.into(),
            shared_limits: vec![("root.shop".into(), 2), ("root.shop.orders".into(), 1)],
            ..claim(2)
        };
        // Node a may take two jobs under root.shop, and root.crm.
        let a = s.claim(&ids, &limited("node-a")).await.unwrap();
        let mut got: Vec<i64> = a.iter().map(|j| j.id).collect();
        got.sort_unstable();
        assert_eq!(got, vec![ids[0], ids[1], ids[3]], "{name}");
        // Node b finds root.shop full: node a's jobs count for it too.
        assert!(
            s.claim(&ids, &limited("node-b")).await.unwrap().is_empty(),
            "{name}"
        );
        s.complete(&[done(ids[0])], &[], 3).await.unwrap();
        let b = s.claim(&ids, &limited("node-b")).await.unwrap();
        assert_eq!(
            b.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[2]],
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_node_registry_keeps_beats_stops_and_held_jobs() {
    for (name, s, _dir) in storages().await {
        let node = |beat: i64| NodeInfo {
            name: "node-a".into(),
            version: "0.1.0".into(),
            host: "host-1".into(),
            started_at: 10,
            heartbeat_at: beat,
            stopped_at: None,
            running: 0,
        };
        s.node_beat(&node(10)).await.unwrap();
        s.node_beat(&node(20)).await.unwrap();
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        assert_eq!(start_all(s.as_ref(), 2).await, vec![id], "{name}");
        let nodes = s.nodes().await.unwrap();
        assert_eq!(
            nodes,
            vec![NodeInfo {
                running: 1,
                ..node(20)
            }],
            "{name}"
        );
        s.node_stopped("node-a", 30).await.unwrap();
        assert_eq!(s.nodes().await.unwrap()[0].stopped_at, Some(30), "{name}");
        s.node_beat(&node(40)).await.unwrap();
        assert_eq!(
            s.nodes().await.unwrap()[0].stopped_at,
            None,
            "{name}: restarted"
        );
    }
}

#[tokio::test]
async fn a_jobs_lease_lapses_when_the_job_stops_running() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        assert_eq!(start_all(s.as_ref(), 2).await, vec![id], "{name}");
        let holder = format!("job-{id}:node-a");
        let r = vec!["r".to_string()];
        assert_eq!(
            s.lock(&r, &holder, 3, 1_000_000).await.unwrap(),
            vec![true],
            "{name}"
        );
        assert_eq!(
            s.lock(&r, "job-999:node-b", 4, 1_000_000).await.unwrap(),
            vec![false],
            "{name}: held while the job runs"
        );
        s.complete(&[done(id)], &[], 5).await.unwrap();
        assert_eq!(
            s.lock(&r, "job-999:node-b", 6, 1_000_000).await.unwrap(),
            vec![true],
            "{name}: the holder job is done, so its lease lapsed"
        );
    }
}

#[tokio::test]
async fn a_write_batch_answers_each_write_as_its_own_method_would() {
    use junction_runtime::storage::{WriteDone, WriteOp};
    for (name, s, _dir) in storages().await {
        let out = s
            .write_batch(&[
                WriteOp::Lock {
                    keys: vec!["k".into()],
                    holder: "a".into(),
                    now: 1,
                    until: 100,
                },
                WriteOp::Lock {
                    keys: vec!["k".into()],
                    holder: "b".into(),
                    now: 1,
                    until: 100,
                },
                WriteOp::Put {
                    writes: vec![
                        put("product", "p1", serde_json::json!({"a": 1}), Some(0)),
                        put("product", "p2", serde_json::json!({"a": 1}), Some(3)),
                    ],
                    now: 2,
                },
                WriteOp::Unlock {
                    keys: vec!["k".into()],
                    holder: "a".into(),
                },
            ])
            .await
            .unwrap();
        assert!(
            matches!(&out[0], WriteDone::Locked(t) if t == &[true]),
            "{name}: {out:?}"
        );
        assert!(
            matches!(&out[1], WriteDone::Locked(t) if t == &[false]),
            "{name}: {out:?}"
        );
        match &out[2] {
            WriteDone::Put(p) => {
                assert!(matches!(p[0], Ok(Some(_))), "{name}");
                assert!(
                    matches!(p[1], Err(StorageError::VersionConflict { .. })),
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(matches!(out[3], WriteDone::Unlocked), "{name}");
        assert_eq!(
            s.lock(&["k".into()], "b", 3, 100).await.unwrap(),
            vec![true],
            "{name}"
        );
        assert!(s.record("product", "p2").await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn removing_a_backend_is_refused_while_it_has_jobs_and_purges_only_when_asked() {
    for (name, s, _dir) in storages().await {
        for b in ["shop", "crm"] {
            s.put_backend(b, "magento", "2.4.6", "{}", 1).await.unwrap();
            s.bind(b, "product", "E1", "p1", 1, None).await.unwrap();
            s.state_set(b, "cursor", "x", 1, None).await.unwrap();
        }
        let mut live = job("junction.noop");
        live.backend = Some("shop".into());
        let parent = s.enqueue(&[live], 1).await.unwrap()[0].id;
        // A job of no backend waiting for the shop's job is cancelled with it.
        let mut child = job("junction.noop");
        child.parents = vec![Parent::Stored(parent)];
        let child = s.enqueue(&[child], 1).await.unwrap()[0].id;
        let g0 = s.registry_generation().await.unwrap();

        let busy = s
            .remove_backend("shop", RemoveBackend::default(), 2)
            .await
            .unwrap_err();
        assert!(
            matches!(busy, StorageError::BackendBusy { jobs: 1, .. }),
            "{name}: {busy}"
        );
        assert_eq!(
            s.backends().await.unwrap().len(),
            2,
            "{name}: nothing removed"
        );
        assert_eq!(s.registry_generation().await.unwrap(), g0, "{name}");

        let how = RemoveBackend {
            cancel_jobs: true,
            purge: false,
        };
        let removed = s.remove_backend("shop", how, 3).await.unwrap().unwrap();
        assert_eq!(removed.cancelled_jobs, 2, "{name}");
        assert_eq!((removed.bindings, removed.state_keys), (0, 0), "{name}");
        for id in [parent, child] {
            let j = s.job(id).await.unwrap().unwrap();
            assert_eq!(j.state, JobState::Cancelled, "{name}: job {id}");
        }
        assert!(s.registry_generation().await.unwrap() > g0, "{name}");
        let names: Vec<String> = s
            .backends()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["crm"], "{name}");
        assert_eq!(
            s.binding_to_local("shop", "product", "E1")
                .await
                .unwrap()
                .as_deref(),
            Some("p1"),
            "{name}: bindings kept"
        );
        assert_eq!(
            s.state_get("shop", "cursor").await.unwrap().as_deref(),
            Some("x"),
            "{name}: state kept"
        );
        assert!(
            s.remove_backend("shop", how, 4).await.unwrap().is_none(),
            "{name}"
        );

        let purge = RemoveBackend {
            cancel_jobs: false,
            purge: true,
        };
        let removed = s.remove_backend("crm", purge, 5).await.unwrap().unwrap();
        assert_eq!((removed.bindings, removed.state_keys), (1, 1), "{name}");
        assert!(
            s.binding_to_local("crm", "product", "E1")
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(
            s.state_get("crm", "cursor").await.unwrap().is_none(),
            "{name}"
        );
        // The other backend's kept rows are untouched by the purge.
        assert!(
            s.binding_to_local("shop", "product", "E1")
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
    }
}

/// Jobs by (channel, state, count), counted from the jobs themselves.
async fn counted(s: &dyn Storage) -> Vec<(String, JobState, i64)> {
    let jobs = s
        .jobs(&JobFilter {
            limit: 100_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let mut by: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for j in jobs {
        *by.entry((j.channel, j.state.to_string())).or_default() += 1;
    }
    by.into_iter()
        .map(|((channel, state), n)| (channel, JobState::parse(&state).unwrap(), n))
        .collect()
}

/// The counts the database keeps, in the same shape.
async fn kept(s: &dyn Storage) -> Vec<(String, JobState, i64)> {
    let mut kept: Vec<(String, JobState, i64)> = s
        .counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.channel, c.state, c.count))
        .collect();
    kept.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
    kept
}

#[tokio::test]
async fn kept_job_counts_follow_every_kind_of_change() {
    for (name, s, _dir) in storages().await {
        let s = &*s;
        let mut shop = job("a");
        shop.channel = "root.shop".into();
        shop.backend = Some("shop".into());
        let mut waits = job("b");
        waits.parents = vec![Parent::InBatch(0)];
        let ids: Vec<i64> = s
            .enqueue(&[shop, waits, job("c"), job("d"), job("e")], 1)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after enqueue");
        assert_eq!(
            kept(s).await.iter().map(|c| c.2).sum::<i64>(),
            5,
            "{name}: every job counted once"
        );

        start_all(s, 10).await;
        assert_eq!(kept(s).await, counted(s).await, "{name}: after claim");
        let failed = Completion {
            outcome: Outcome::Failed {
                kind: "permanent".into(),
                message: "no".into(),
            },
            ..done(ids[2])
        };
        let retry = Completion {
            outcome: Outcome::Retry {
                eta: 30,
                count_try: true,
                kind: "retryable".into(),
                message: "later".into(),
            },
            ..done(ids[3])
        };
        s.complete(&[done(ids[0]), failed, retry], &[(ids[4], 11)], 20)
            .await
            .unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after complete");

        s.requeue(ids[2], 25).await.unwrap();
        s.cancel(ids[3], 26).await.unwrap();
        s.mark_done(ids[1], 27).await.unwrap();
        assert_eq!(
            kept(s).await,
            counted(s).await,
            "{name}: after requeue, cancel, mark done"
        );
        // ids[4] is started with a lease until 1010.
        s.requeue_expired(5_000).await.unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after expiry");

        s.compact_counts().await.unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after compaction");
        assert!(
            s.purge(100_000, 100, &PurgeScope::default()).await.unwrap() > 0,
            "{name}"
        );
        assert_eq!(kept(s).await, counted(s).await, "{name}: after purge");
        s.compact_counts().await.unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: compacted again");
        assert!(
            !kept(s).await.iter().any(|c| c.2 == 0),
            "{name}: no empty groups are reported"
        );
    }
}

#[tokio::test]
async fn a_database_from_before_the_kept_counts_gets_them_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junction.db");
    let s = SqliteStorage::open(&path).await.unwrap();
    let mut shop = job("a");
    shop.channel = "root.shop".into();
    s.enqueue(&[shop, job("b"), job("c")], 1).await.unwrap();
    start_all(&s, 10).await;
    let before = counted(&s).await;
    drop(s);
    // Take the database back to schema 5, as an older Junction left it
    // (undoing every later migration: a new one adds its undo here).
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER job_counts_insert; DROP TRIGGER job_counts_update;
         DROP TRIGGER job_counts_delete; DROP TABLE job_counts;
         DROP TABLE backend_breakers; DROP TABLE paused; DROP INDEX jobs_failed;
         DROP INDEX jobs_record; ALTER TABLE jobs DROP COLUMN record; DROP INDEX outbox_record;
         DROP TABLE notifications; DROP TABLE notification_drops; DROP TABLE record_keys;
         DELETE FROM schema_migrations WHERE version >= 6;",
    )
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    let s = SqliteStorage::open(&path).await.unwrap();
    assert_eq!(s.schema_version().await.unwrap(), 10);
    assert_eq!(
        kept(&s).await,
        before,
        "the jobs already stored are counted"
    );

    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let pg = PgStorage::open(&url, Some(&schema)).await.unwrap();
    let mut shop = job("a");
    shop.channel = "root.shop".into();
    pg.enqueue(&[shop, job("b"), job("c")], 1).await.unwrap();
    start_all(&pg, 10).await;
    let before = counted(&pg).await;
    drop(pg);
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!(
        "SET search_path TO {schema};
         DROP TABLE job_counts; DROP FUNCTION job_counts_inserted() CASCADE;
         DROP FUNCTION job_counts_updated() CASCADE; DROP FUNCTION job_counts_deleted() CASCADE;
         DROP TABLE backend_breakers; DROP TABLE paused; DROP INDEX jobs_failed;
         DROP INDEX jobs_record; ALTER TABLE jobs DROP COLUMN record; DROP INDEX outbox_record;
         DROP TABLE notifications; DROP TABLE notification_drops; DROP TABLE record_keys;
         DELETE FROM schema_migrations WHERE version >= 7;"
    ))
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    let pg = PgStorage::open(&url, Some(&schema)).await.unwrap();
    assert_eq!(pg.schema_version().await.unwrap(), 11);
    assert_eq!(
        kept(&pg).await,
        before,
        "postgres: the jobs already stored are counted"
    );
}

#[tokio::test]
async fn the_oldest_due_job_of_each_channel_counts_pending_and_enqueued_only() {
    for (name, s, _dir) in storages().await {
        let s = &*s;
        let at = |function: &str, channel: &str, eta: i64| NewJob {
            channel: channel.to_string(),
            eta,
            ..job(function)
        };
        let ids: Vec<i64> = s
            .enqueue(
                &[
                    at("a", "root", 5),
                    at("b", "root", 10),
                    at("c", "root.shop", 100),
                    at("d", "root.crm", 7),
                ],
                1,
            )
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let due = |v: Vec<(String, i64)>| {
            let mut v = v;
            v.sort();
            v
        };
        let expected = vec![("root".to_string(), 5), ("root.crm".to_string(), 7)];
        assert_eq!(due(s.oldest_due(50).await.unwrap()), expected, "{name}");
        // Claimed but not begun (enqueued): still waiting to start.
        start_all(s, 50).await;
        assert_eq!(due(s.oldest_due(50).await.unwrap()), expected, "{name}");
        // Begun: no longer waiting.
        s.complete(&[], &[(ids[0], 51)], 51).await.unwrap();
        assert_eq!(
            due(s.oldest_due(51).await.unwrap()),
            vec![("root".to_string(), 10), ("root.crm".to_string(), 7)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn jobs_changed_by_a_session_outside_the_schema_are_still_counted() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let pg = PgStorage::open(&url, Some(&schema)).await.unwrap();
    pg.enqueue(&[job("a"), job("b")], 1).await.unwrap();
    // A session whose search path lacks the schema (psql, pgbench, a
    // repair script): the count triggers must still find their table.
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {schema}.jobs SET state = 'cancelled', finished_at = 5 WHERE function = 'a'"
    ))
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    assert_eq!(kept(&pg).await, counted(&pg).await);
}
