//! `cargo bench -p junction-runtime --bench status`: what `/metrics`
//! costs with 10 and with 1,000,000 finished jobs stored, on SQLite and
//! (with JUNCTION_BENCH_POSTGRES_URL or JUNCTION_TEST_POSTGRES_URL) on
//! PostgreSQL: 50 concurrent scrapers through `app()` for a few seconds,
//! requests per second and the 99th percentile. Side by side in the same
//! run and on the same database, the statement every scrape ran before
//! the database kept the counts (`GROUP BY state, channel` over the whole
//! jobs table), under the same load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use junction_runtime::api::{ApiState, app};
use junction_runtime::node::{Node, NodeConfig};
use junction_runtime::storage::Storage;
use junction_runtime::storage::postgres::PgStorage;
use junction_runtime::storage::sqlite::SqliteStorage;
use tower::ServiceExt;

const TOKEN: &str = "bench-admin-token-0123456789";
const SCRAPERS: usize = 50;
const FOR: Duration = Duration::from_secs(4);
const OLD_COUNT: &str = "SELECT state, channel, COUNT(*) AS n FROM jobs GROUP BY state, channel";

/// Requests per second and the 99th percentile of `one` run by
/// `SCRAPERS` tasks at once for `FOR`.
async fn load<F, Fut>(one: F) -> (f64, Duration)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut took = Vec::new();
                while started.elapsed() < FOR {
                    let t = Instant::now();
                    one().await;
                    took.push(t.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
    (all.len() as f64 / elapsed.as_secs_f64(), p99)
}

/// Scrape `/metrics` of a node on `storage`, and run the old count on
/// `old` (a pool on the same database), under the same load.
async fn measure(label: &str, jobs: u64, storage: Arc<dyn Storage>, old: OldCount) {
    let node = Node::start(
        storage,
        NodeConfig {
            name: "bench".into(),
            ..NodeConfig::default()
        },
    )
    .await
    .unwrap();
    let router = app(ApiState::new(&node, TOKEN, None));
    let (rate, p99) = load(move || {
        let router = router.clone();
        async move {
            let req = Request::builder()
                .uri("/metrics")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.into_body().collect().await.unwrap();
        }
    })
    .await;
    println!(
        "{label:<9} {jobs:>9} jobs: /metrics {rate:>7.0} requests/s, p99 {:>7.1} ms",
        p99.as_secs_f64() * 1000.0
    );
    let (rate, p99) = match old {
        OldCount::Sqlite(pool) => {
            load(move || {
                let pool = pool.clone();
                async move {
                    sqlx::query(OLD_COUNT).fetch_all(&pool).await.unwrap();
                }
            })
            .await
        }
        OldCount::Postgres(pool) => {
            load(move || {
                let pool = pool.clone();
                async move {
                    sqlx::query(OLD_COUNT).fetch_all(&pool).await.unwrap();
                }
            })
            .await
        }
    };
    println!(
        "{label:<9} {jobs:>9} jobs: the old count alone {rate:>7.0} requests/s, p99 {:>7.1} ms",
        p99.as_secs_f64() * 1000.0
    );
    node.stop(Duration::from_secs(5)).await.unwrap();
}

enum OldCount {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// `n` finished jobs, inserted in one statement (the count triggers run
/// for them as for any other insert).
const FILL_SQLITE: &str = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
    INSERT INTO jobs (function, args, state, priority, eta, channel, max_retries, created_at, finished_at)
    SELECT 'junction.noop', '{}', CASE i % 10 WHEN 0 THEN 'failed' ELSE 'done' END, 10, 0,
           CASE i % 3 WHEN 0 THEN 'root' WHEN 1 THEN 'root.shop' ELSE 'root.crm' END, 3, i, i
    FROM c";

const FILL_POSTGRES: &str = "INSERT INTO jobs (function, args, state, priority, eta, channel, max_retries, created_at, finished_at)
    SELECT 'junction.noop', '{}', CASE i % 10 WHEN 0 THEN 'failed' ELSE 'done' END, 10, 0,
           CASE i % 3 WHEN 0 THEN 'root' WHEN 1 THEN 'root.shop' ELSE 'root.crm' END, 3, i, i
    FROM generate_series(1, $1::bigint) AS i";

async fn sqlite(jobs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let storage = SqliteStorage::open(&path).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(FILL_SQLITE)
        .bind(jobs as i64)
        .execute(&pool)
        .await
        .unwrap();
    measure("sqlite", jobs, Arc::new(storage), OldCount::Sqlite(pool)).await;
}

async fn postgres(url: &str, jobs: u64) {
    let schema = format!("jb_status_{:08x}", rand::random::<u32>());
    let storage = PgStorage::open(url, Some(&schema)).await.unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    sqlx::query(FILL_POSTGRES)
        .bind(jobs as i64)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE jobs").execute(&pool).await.unwrap();
    measure(
        "postgres",
        jobs,
        Arc::new(storage),
        OldCount::Postgres(pool.clone()),
    )
    .await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("status benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for jobs in [10, 1_000_000] {
            sqlite(jobs).await;
        }
        let url = std::env::var("JUNCTION_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("JUNCTION_TEST_POSTGRES_URL"));
        match url {
            Ok(url) => {
                for jobs in [10, 1_000_000] {
                    postgres(&url, jobs).await;
                }
            }
            Err(_) => println!(
                "postgres: skipped (set JUNCTION_BENCH_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test)"
            ),
        }
    });
}
