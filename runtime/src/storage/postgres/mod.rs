//! PostgreSQL's [`Dialect`]: [`Storage`] for several Junction nodes on one
//! database.
//!
//! The same tables, meanings and statements as SQLite (`storage::sql`
//! holds them; the one conformance suite checks both); here every
//! transaction runs at READ COMMITTED, concurrent writers are serialised
//! by row locks, and a conditional `UPDATE … WHERE state = 'pending'` with
//! `SKIP LOCKED` is what makes a claim exclusive across nodes. Besides the
//! dialect hooks: connecting (a schema per installation, claim connections
//! with their own planner settings), wake-ups between nodes
//! ([`wakeups`]) and jobs' leases as advisory locks ([`leases`]).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction};

use crate::storage::migrate::{self, Migration};
mod leases;
mod wakeups;

use crate::storage::rows::{JOB_COLUMNS, holder_job, job_from_row};
use crate::storage::sql::{Dialect, PlainDone, SqlStorage};
use crate::storage::types::{Job, JobId};
use crate::storage::{ClaimRequest, StorageError};
use leases::AdvisoryLeases;

/// [`Storage`] on PostgreSQL.
pub type PgStorage = SqlStorage<PgDialect>;

/// PostgreSQL's [`Dialect`].
#[derive(Debug, Clone)]
pub struct PgDialect {
    pool: PgPool,
    /// Claims only: see [`claim_options`].
    claims: PgPool,
    leases: std::sync::Arc<AdvisoryLeases>,
}

impl PgStorage {
    /// Connect to `url` (`postgres://user@host:port/database`) and migrate.
    /// With `schema`, everything lives in that schema (created if missing),
    /// so that several installations — or test runs — share a database.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<PgStorage, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            location: redact(url),
            reason,
        };
        let mut options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| open_err(e.to_string()))?;
        options = options.log_statements(tracing::log::LevelFilter::Trace);
        // One direct connection first: a wrong address or credentials fail
        // at once with the server's reason, not after a pool timeout.
        use sqlx::Connection;
        options
            .connect()
            .await
            .map_err(|e| open_err(e.to_string()))?
            .close()
            .await
            .map_err(|e| open_err(e.to_string()))?;
        if let Some(schema) = schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                || schema.is_empty()
            {
                return Err(open_err(format!(
                    "schema {schema:?}: use letters, digits and '_'"
                )));
            }
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await
                .map_err(|e| open_err(e.to_string()))?;
            let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&admin)
                .await;
            match created {
                Ok(_) => {}
                // Another node created it at the same moment: it exists.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
                Err(e) => return Err(open_err(e.to_string())),
            }
            admin.close().await;
            options = options.options([("search_path", schema)]);
        }
        let leases = AdvisoryLeases::new(options.clone(), schema.unwrap_or("public"));
        let claims = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(claim_options(options.clone()));
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let d = PgDialect {
            pool,
            claims,
            leases: std::sync::Arc::new(leases),
        };
        let storage = SqlStorage { d };
        storage.migrate().await?;
        Ok(storage)
    }
}

impl PgDialect {}

/// Connections for claims, whose planner may only read the ready index
/// in run order. Without fresh statistics (autovacuum off, or a queue just
/// filled in bulk) PostgreSQL guesses that few jobs are pending, and plans
/// a claim as a bitmap scan of *every* pending job plus a sort: measured
/// at 65 ms for a claim of 768 out of 50,000, against 8 ms for the index
/// read in order that stops at the limit. A claim never needs either.
fn claim_options(options: PgConnectOptions) -> PgConnectOptions {
    options.options(CLAIM_PLANNER.iter().copied())
}

/// The planner settings of claim connections (the benchmark gives the
/// same to pgbench and graphile-worker, to compare like with like).
pub const CLAIM_PLANNER: [(&str, &str); 2] = [("enable_bitmapscan", "off"), ("enable_sort", "off")];

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[async_trait]
impl Dialect for PgDialect {
    type Db = Postgres;
    type Done = sqlx::postgres::PgQueryResult;
    type Ids = Vec<JobId>;

    fn ids(ids: &[JobId]) -> Vec<JobId> {
        ids.to_vec()
    }

    fn in_ids(column: &str, param: &str) -> String {
        format!("{column} = ANY({param})")
    }

    fn reader(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }

    fn claims(&self) -> (&sqlx::Pool<Postgres>, &sqlx::Pool<Postgres>) {
        (&self.claims, &self.claims)
    }

    const BEGIN: &'static str = "BEGIN";
    const PARAM: &'static str = "$";
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";

    async fn claim_turn(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
        sqlx::query("SELECT pg_advisory_xact_lock(7478352962)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    fn writer(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }

    async fn jobs_due(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
        wakeups::notify_in(tx).await
    }

    async fn mark_started(
        tx: &mut Transaction<'_, Postgres>,
        begun: &[(JobId, i64)],
    ) -> Result<(), StorageError> {
        // Arrays, not a VALUES list: one statement text for any batch, so
        // PostgreSQL plans it once per connection.
        let (ids, ats): (Vec<i64>, Vec<i64>) = begun.iter().copied().unzip();
        sqlx::query(
            "UPDATE jobs SET state = 'started', started_at = v.at
             FROM UNNEST($1::bigint[], $2::bigint[]) AS v(id, at)
             WHERE jobs.id = v.id AND jobs.state = 'enqueued'",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn finish_plain(
        tx: &mut Transaction<'_, Postgres>,
        done: &[PlainDone],
    ) -> Result<Vec<JobId>, StorageError> {
        let mut ids = Vec::with_capacity(done.len());
        let mut results = Vec::with_capacity(done.len());
        let mut ats = Vec::with_capacity(done.len());
        let mut digests = Vec::with_capacity(done.len());
        let mut starts = Vec::with_capacity(done.len());
        for d in done {
            ids.push(d.id);
            results.push(d.result.as_deref());
            ats.push(d.finished_at);
            digests.push(d.connector_digest.as_deref());
            starts.push(d.started_at);
        }
        Ok(sqlx::query_scalar(
            "UPDATE jobs SET state = 'done', tries = tries + 1, result = v.result, error_kind = NULL,
                 error_message = NULL, finished_at = v.at, lease_until = NULL, connector_digest = v.digest,
                 started_at = COALESCE(v.started, jobs.started_at)
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])
                 AS v(id, result, at, digest, started)
             WHERE jobs.id = v.id AND jobs.state IN ('started', 'enqueued')
             RETURNING jobs.id",
        )
        .bind(&ids)
        .bind(&results)
        .bind(&ats)
        .bind(&digests)
        .bind(&starts)
        .fetch_all(&mut **tx)
        .await?)
    }

    async fn lock_job(
        &self,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<Vec<bool>>, StorageError> {
        if holder_job(holder).is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.leases
                .lock(&self.pool, keys, holder, now, until)
                .await?,
        ))
    }

    async fn unlock_job(&self, keys: &[String], holder: &str) -> Result<bool, StorageError> {
        if holder_job(holder).is_none() {
            return Ok(false);
        }
        self.leases.unlock(keys, holder).await?;
        Ok(true)
    }

    const MIGRATIONS: &'static [Migration] = migrate::POSTGRES;

    async fn migration_lock(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
        // One migrator at a time when several nodes start together.
        sqlx::query("SELECT pg_advisory_xact_lock(7478352961)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn after_copy(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
        // Serial ids continue after the copied ones.
        for (table, column) in [
            ("jobs", "id"),
            ("outbox", "id"),
            ("connector_activations", "seq"),
            ("notifications", "id"),
        ] {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                               COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            ))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    fn bytes(expr: &str) -> String {
        format!("OCTET_LENGTH({expr})")
    }

    async fn wakeups(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        Some(wakeups::listen(self.pool.clone()))
    }

    async fn claim_next(&self, request: &ClaimRequest) -> Result<Option<Vec<Job>>, StorageError> {
        debug_assert!(
            request.full_channels.is_empty()
                && request.sequential_channels.is_empty()
                && request.shared_limits.is_empty()
        );
        // Picking and claiming in one autocommit statement: one index scan
        // in run order and one round trip, where candidates + claim take
        // two scans, two round trips and a lookup by id.
        let rows = sqlx::query(&format!(
            "WITH picked AS MATERIALIZED (
                 SELECT id FROM jobs WHERE state = 'pending' AND eta <= $1
                   AND (backend IS NULL OR NOT (backend = ANY($6)))
                 ORDER BY priority, eta, id LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE jobs SET state = 'enqueued', started_at = NULL, lease_until = $3, node = $4, worker = $5
             WHERE id IN (SELECT id FROM picked)
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(request.now)
        .bind(i64::from(request.limit))
        .bind(request.lease_until)
        .bind(&request.node)
        .bind(&request.worker)
        .bind(&request.held_backends)
        .fetch_all(&self.claims)
        .await?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| (j.priority, j.eta, j.id));
        Ok(Some(jobs))
    }

    async fn compact_counts(&self) -> Result<(), StorageError> {
        // Fold the triggers' deltas into one row per channel and state.
        // Concurrent compactions are safe: each deleted delta is summed
        // back by exactly one of them, and the sums are unchanged.
        sqlx::query(
            "WITH gone AS (DELETE FROM job_counts RETURNING channel, state, n)
             INSERT INTO job_counts (channel, state, n)
             SELECT channel, state, SUM(n) FROM gone GROUP BY channel, state HAVING SUM(n) <> 0",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
