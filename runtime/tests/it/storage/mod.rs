//! The storage conformance suite, written against the `Storage` trait so
//! that both dialects run the same checks: SQLite always, PostgreSQL when
//! JUNCTION_TEST_POSTGRES_URL names a server. One module per area, as in
//! `storage::sql`; here the helpers and the schema's own tests.

mod backends;
mod bindings;
mod connectors;
mod events;
mod jobs;
mod leases;
mod nodes;
mod queue;
mod records;

use jobs::{counted, kept};

use std::sync::Arc;

use junction_runtime::queue::job::{Completion, JobFilter, JobState, NewJob, Outcome};
use junction_runtime::storage::postgres::PgStorage;
use junction_runtime::storage::sqlite::SqliteStorage;
use junction_runtime::storage::{ClaimRequest, Storage};

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

/// Enqueue `jobs` at `at`; their ids, in order.
pub(crate) async fn enqueue(s: &dyn Storage, jobs: Vec<NewJob>, at: i64) -> Vec<i64> {
    s.enqueue(&jobs, at)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

/// The ids a claim with `req` would pick among, in claim order.
pub(crate) async fn candidate_ids(s: &dyn Storage, req: &ClaimRequest) -> Vec<i64> {
    s.candidates(req)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

pub(crate) fn claim(now: i64) -> ClaimRequest {
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
    let ids = candidate_ids(s, &claim(now)).await;
    s.claim(&ids, &claim(now))
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect()
}

pub(crate) fn done(id: i64) -> Completion {
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

pub(crate) async fn state(s: &dyn Storage, id: i64) -> JobState {
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
