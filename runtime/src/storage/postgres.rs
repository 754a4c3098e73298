//! [`Storage`] on PostgreSQL, for several Junction nodes on one database.
//!
//! The same tables and meanings as the SQLite implementation (its SQL is
//! kept statement for statement where the two dialects agree, so the one
//! conformance suite checks both); here every transaction runs at READ
//! COMMITTED, concurrent writers are serialised by row locks, and a
//! conditional `UPDATE … WHERE state = 'pending'` is what makes a claim
//! exclusive across nodes. Statements are written with `?` and numbered
//! for PostgreSQL by [`pg`].

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Row, Transaction};

use super::copy;
use super::migrate::{self, Migration};
use super::pg_leases::AdvisoryLeases;
use super::rows::{
    BindingRow, IN_CHUNK, JOB_COLUMNS, binding_from_row, event_from_row, holder_job, job_from_row,
    placeholders, record_from_row,
};
use super::sql::{Dialect, SqlStorage};
use super::{
    Binding, ClaimRequest, InstalledConnector, NodeInfo, OpenBreaker, PutOutcome, RecordWrite,
    RemoveBackend, RemovedBackend, StateCount, StateQuota, StorageError, StoredBackend,
    StoredEvent, WriteDone, WriteOp, json_object,
};
use crate::capabilities::egress::AuditEntry;
use crate::model::{Event, LocalRecord};
use crate::queue::job::{
    Acted, Completion, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine,
    JobState, NewJob, Outcome, Parent,
};

/// Number `?` placeholders `$1`, `$2`, … (outside quoted literals), so
/// that statements read the same as their SQLite twins.
pub(crate) fn pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

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
        d.migrate(migrate::POSTGRES).await?;
        Ok(SqlStorage { d })
    }
}

impl PgDialect {
    async fn migrate(&self, migrations: &[Migration]) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        // One migrator at a time when several nodes start together.
        sqlx::query("SELECT pg_advisory_xact_lock(7478352961)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await?;
        let supported = migrate::latest(migrations);
        if current > supported {
            return Err(StorageError::SchemaTooNew {
                found: current,
                supported,
            });
        }
        for m in migrations.iter().filter(|m| m.version > current) {
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StorageError::Migration {
                    version: m.version,
                    name: m.name,
                    reason: e.to_string(),
                })?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(crate::queue::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

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

/// The channel other nodes LISTEN on: jobs may have become due.
const WAKE_CHANNEL: &str = "junction_jobs";

/// Tell every node that jobs may be due, when the transaction commits.
/// PostgreSQL folds identical notifications of one transaction into one,
/// so a batch of enqueues is one notification, and listeners fold a
/// burst further into one wake-up.
async fn notify_in(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

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

/// Jobs are done: their dependents count them off, and those with no
/// parent left to wait for become pending. One statement for the batch.
async fn release_children_of(
    tx: &mut Transaction<'_, Postgres>,
    parents: &[JobId],
) -> Result<(), StorageError> {
    if parents.is_empty() {
        return Ok(());
    }
    // One statement text for any batch size (arrays, not IN lists), so
    // PostgreSQL plans it once per connection.
    let released = sqlx::query(
        "UPDATE jobs SET
             pending_parents = pending_parents - (SELECT COUNT(*) FROM job_dependencies d
                                                 WHERE d.child = jobs.id AND d.parent = ANY($1)),
             state = CASE WHEN state = 'wait_dependencies'
                               AND pending_parents - (SELECT COUNT(*) FROM job_dependencies d
                                                      WHERE d.child = jobs.id AND d.parent = ANY($1)) <= 0
                          THEN 'pending' ELSE state END
         WHERE id IN (SELECT child FROM job_dependencies WHERE parent = ANY($1))",
    )
    .bind(parents)
    .execute(&mut **tx)
    .await?;
    if released.rows_affected() > 0 {
        notify_in(tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Dialect for PgDialect {
    type Db = Postgres;
    type Done = sqlx::postgres::PgQueryResult;

    fn reader(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }

    fn writer(&self) -> &sqlx::Pool<Postgres> {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn jobs_due(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
        notify_in(tx).await
    }

    async fn release_children(
        tx: &mut Transaction<'_, Postgres>,
        parents: &[JobId],
    ) -> Result<(), StorageError> {
        release_children_of(tx, parents).await
    }

    fn bytes(expr: &str) -> String {
        format!("OCTET_LENGTH({expr})")
    }

    async fn wakeups(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for job wake-ups; polling meanwhile");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(WAKE_CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for job wake-ups; polling meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // recv() reconnects by itself after a lost connection.
                loop {
                    match listener.recv().await {
                        // A full channel already holds a wake-up: the
                        // burst folds into it.
                        Ok(_) => match tx.try_send(()) {
                            Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(())) => {}
                            Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => return,
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "job wake-ups interrupted; reconnecting");
                            break;
                        }
                    }
                }
            }
        });
        Some(rx)
    }

    async fn candidates(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<(JobId, String)>, StorageError> {
        let mut sql =
            String::from("SELECT id, channel FROM jobs WHERE state = 'pending' AND eta <= ?");
        // A full channel blocks itself and everything under it.
        for _ in &request.full_channels {
            sql.push_str(" AND channel != ? AND channel NOT LIKE ? ESCAPE '\\'");
        }
        // A sequential channel with a failed job stops until an operator acts.
        if !request.sequential_channels.is_empty() {
            sql.push_str(&format!(
                " AND channel NOT IN (SELECT DISTINCT channel FROM jobs WHERE state = 'failed' AND channel IN ({}))",
                placeholders(request.sequential_channels.len())
            ));
        }
        // A backend holding its share of this node's claims sits this out.
        if !request.held_backends.is_empty() {
            sql.push_str(&format!(
                " AND (backend IS NULL OR backend NOT IN ({}))",
                placeholders(request.held_backends.len())
            ));
        }
        sql.push_str(" ORDER BY priority, eta, id LIMIT ?");
        let sql = pg(&sql);
        let mut query = sqlx::query(&sql).bind(request.now);
        for channel in &request.full_channels {
            query = query
                .bind(channel.clone())
                .bind(super::rows::like_prefix(&format!("{channel}.")));
        }
        for channel in &request.sequential_channels {
            query = query.bind(channel.clone());
        }
        for backend in &request.held_backends {
            query = query.bind(backend.clone());
        }
        let rows = query
            .bind(i64::from(request.limit))
            .fetch_all(&self.claims)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("channel")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn claim(&self, ids: &[JobId], request: &ClaimRequest) -> Result<Vec<Job>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if request.shared_limits.is_empty() {
            // One statement, no explicit transaction: two round trips fewer.
            let rows = sqlx::query(&format!(
                "UPDATE jobs SET state = 'enqueued', started_at = NULL, lease_until = $1, node = $2, worker = $3
                 WHERE id IN (SELECT id FROM jobs WHERE id = ANY($4) AND state = 'pending'
                              FOR UPDATE SKIP LOCKED)
                 RETURNING {JOB_COLUMNS}"
            ))
            .bind(request.lease_until)
            .bind(&request.node)
            .bind(&request.worker)
            .bind(ids)
            .fetch_all(&self.claims)
            .await?;
            return rows
                .iter()
                .map(|r| job_from_row(r).map_err(Into::into))
                .collect();
        }
        let mut tx = self.claims.begin().await?;
        let admitted;
        let ids = {
            // Claims that must respect limits shared by all nodes take
            // turns, so two nodes never both fill a channel's last slot.
            sqlx::query("SELECT pg_advisory_xact_lock(7478352962)")
                .execute(&mut *tx)
                .await?;
            let mut pending: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, channel FROM jobs WHERE id = ANY($1) AND state = 'pending'",
            )
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
            pending.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
            let running: Vec<(String, i64)> = sqlx::query_as(
                "SELECT channel, COUNT(*) FROM jobs WHERE state IN ('enqueued', 'started') GROUP BY channel",
            )
            .fetch_all(&mut *tx)
            .await?;
            admitted = super::admit(&pending, &running, &request.shared_limits);
            if admitted.is_empty() {
                return Ok(Vec::new());
            }
            &admitted[..]
        };
        // Rows another node is claiming right now are skipped rather than
        // waited for: it will have them, and this node takes the rest.
        let rows = sqlx::query(&format!(
            "UPDATE jobs SET state = 'enqueued', started_at = NULL, lease_until = $1, node = $2, worker = $3
             WHERE id IN (SELECT id FROM jobs WHERE id = ANY($4) AND state = 'pending'
                          FOR UPDATE SKIP LOCKED)
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(request.lease_until)
        .bind(&request.node)
        .bind(&request.worker)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn claim_next(&self, request: &ClaimRequest) -> Result<Vec<Job>, StorageError> {
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
        Ok(jobs)
    }

    async fn complete(
        &self,
        completions: &[Completion],
        begun: &[(JobId, i64)],
        _now: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        // A job that started and finished within one batch is written once
        // (its start time goes with its outcome): each UPDATE is a new row
        // version in PostgreSQL, so a fast job costs half as much.
        let plain_done = |c: &Completion| {
            matches!(c.outcome, Outcome::Done { .. }) && c.log.is_empty() && c.audit.is_empty()
        };
        let finishing: std::collections::HashMap<JobId, i64> = begun
            .iter()
            .filter(|(id, _)| completions.iter().any(|c| c.id == *id && plain_done(c)))
            .copied()
            .collect();
        let begun: Vec<(JobId, i64)> = begun
            .iter()
            .filter(|(id, _)| !finishing.contains_key(id))
            .copied()
            .collect();
        if !begun.is_empty() {
            let (ids, ats): (Vec<i64>, Vec<i64>) = begun.iter().copied().unzip();
            sqlx::query(
                "UPDATE jobs SET state = 'started', started_at = v.at
                 FROM UNNEST($1::bigint[], $2::bigint[]) AS v(id, at)
                 WHERE jobs.id = v.id AND jobs.state = 'enqueued'",
            )
            .bind(&ids)
            .bind(&ats)
            .execute(&mut *tx)
            .await?;
        }
        // The common case — done, nothing logged — is one statement for
        // the batch, with arrays so that its text never changes.
        let (plain, rest): (Vec<&Completion>, Vec<&Completion>) =
            completions.iter().partition(|c| plain_done(c));
        let mut finished = Vec::with_capacity(plain.len());
        if !plain.is_empty() {
            let mut ids = Vec::with_capacity(plain.len());
            let mut results = Vec::with_capacity(plain.len());
            let mut ats = Vec::with_capacity(plain.len());
            let mut digests = Vec::with_capacity(plain.len());
            let mut starts = Vec::with_capacity(plain.len());
            for c in &plain {
                let Outcome::Done { result } = &c.outcome else {
                    unreachable!("partitioned")
                };
                ids.push(c.id);
                results.push(result.clone());
                ats.push(c.finished_at);
                digests.push(c.connector_digest.clone());
                starts.push(finishing.get(&c.id).copied());
            }
            finished = sqlx::query_scalar(
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
            .fetch_all(&mut *tx)
            .await?;
        }
        release_children_of(&mut tx, &finished).await?;
        for c in rest {
            let tries: Option<i64> = sqlx::query_scalar(&pg(
                "SELECT tries FROM jobs WHERE id = ? AND state IN ('started', 'enqueued')",
            ))
            .bind(c.id)
            .fetch_optional(&mut *tx)
            .await?;
            // Finished elsewhere meanwhile (cancelled, or its lease expired
            // and another node ran it): this try's report is stale.
            let Some(tries) = tries else { continue };
            let try_number = tries + 1;
            match &c.outcome {
                Outcome::Done { result } => {
                    sqlx::query(
                        &pg("UPDATE jobs SET state = 'done', tries = ?, result = ?, error_kind = NULL,
                             error_message = NULL, finished_at = ?, lease_until = NULL, connector_digest = ?
                         WHERE id = ?"),
                    )
                    .bind(try_number)
                    .bind(result)
                    .bind(c.finished_at)
                    .bind(&c.connector_digest)
                    .bind(c.id)
                    .execute(&mut *tx)
                    .await?;
                    release_children_of(&mut tx, &[c.id]).await?;
                }
                Outcome::Retry {
                    eta,
                    count_try,
                    kind,
                    message,
                } => {
                    let tries = if *count_try { try_number } else { tries };
                    sqlx::query(
                        &pg("UPDATE jobs SET state = 'pending', tries = ?, eta = ?, error_kind = ?, error_message = ?,
                             lease_until = NULL, node = NULL, worker = NULL, connector_digest = ?
                         WHERE id = ?"),
                    )
                    .bind(tries)
                    .bind(eta)
                    .bind(kind)
                    .bind(message)
                    .bind(&c.connector_digest)
                    .bind(c.id)
                    .execute(&mut *tx)
                    .await?;
                }
                Outcome::Failed { kind, message } => {
                    sqlx::query(
                        &pg("UPDATE jobs SET state = 'failed', tries = ?, error_kind = ?, error_message = ?,
                             finished_at = ?, lease_until = NULL, connector_digest = ?
                         WHERE id = ?"),
                    )
                    .bind(try_number)
                    .bind(kind)
                    .bind(message)
                    .bind(c.finished_at)
                    .bind(&c.connector_digest)
                    .bind(c.id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if !c.log.is_empty() || !c.audit.is_empty() {
                let mut seq: i64 = sqlx::query_scalar(&pg(
                    "SELECT COALESCE(MAX(seq), 0) FROM (SELECT seq FROM job_logs WHERE job_id = ?
                     UNION ALL SELECT seq FROM job_http_audit WHERE job_id = ?) AS s",
                ))
                .bind(c.id)
                .bind(c.id)
                .fetch_one(&mut *tx)
                .await?;
                for line in &c.log {
                    seq += 1;
                    sqlx::query(
                        &pg("INSERT INTO job_logs (job_id, seq, try, level, source, message) VALUES (?, ?, ?, ?, ?, ?)"),
                    )
                    .bind(c.id)
                    .bind(seq)
                    .bind(try_number)
                    .bind(format!("{:?}", line.level).to_lowercase())
                    .bind(format!("{:?}", line.source).to_lowercase())
                    .bind(&line.message)
                    .execute(&mut *tx)
                    .await?;
                }
                for a in &c.audit {
                    seq += 1;
                    sqlx::query(
                        &pg("INSERT INTO job_http_audit (job_id, seq, try, method, scheme, host, port, path, status,
                             denied, error, request_bytes, response_bytes, duration_ms)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    )
                    .bind(c.id)
                    .bind(seq)
                    .bind(try_number)
                    .bind(&a.method)
                    .bind(&a.scheme)
                    .bind(&a.host)
                    .bind(i64::from(a.port))
                    .bind(&a.path)
                    .bind(a.status.map(i64::from))
                    .bind(&a.denied)
                    .bind(&a.error)
                    .bind(a.request_bytes as i64)
                    .bind(a.response_bytes as i64)
                    .bind(a.duration_ms as i64)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if completions
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Retry { .. }))
        {
            notify_in(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn heartbeat(
        &self,
        node: &str,
        ids: &[JobId],
        lease_until: i64,
    ) -> Result<(), StorageError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE node = $2 AND state IN ('started', 'enqueued') AND id = ANY($3)",
        )
        .bind(lease_until)
        .bind(node)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
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

    async fn write_batch(&self, ops: &[WriteOp]) -> Result<Vec<WriteDone>, StorageError> {
        // Jobs' leases are advisory locks, outside the transaction: those
        // taken here are given back if the batch's writes fail, as a
        // rolled-back lease row would be.
        let mut taken: Vec<(Vec<String>, &str)> = Vec::new();
        let written = async {
            let mut tx = self.pool.begin().await?;
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(match op {
                    WriteOp::Lock {
                        keys,
                        holder,
                        now,
                        until,
                    } => WriteDone::Locked(if holder_job(holder).is_some() {
                        let got = self
                            .leases
                            .lock(&self.pool, keys, holder, *now, *until)
                            .await?;
                        let granted = keys.iter().zip(&got).filter(|(_, g)| **g);
                        taken.push((granted.map(|(k, _)| k.clone()).collect(), holder));
                        got
                    } else {
                        lock_in(&mut tx, keys, holder, *now, *until).await?
                    }),
                    WriteOp::Unlock { keys, holder } => {
                        if holder_job(holder).is_some() {
                            self.leases.unlock(keys, holder).await?;
                        } else {
                            unlock_in(&mut tx, keys, holder).await?;
                        }
                        WriteDone::Unlocked
                    }
                    WriteOp::Put { writes, now } => {
                        WriteDone::Put(PgStorage::put_many_in(&mut tx, writes, *now).await?)
                    }
                });
            }
            tx.commit().await?;
            Ok::<_, StorageError>(out)
        }
        .await;
        if written.is_err() {
            for (keys, holder) in taken {
                let _ = self.leases.unlock(&keys, holder).await;
            }
        }
        written
    }

    async fn lock(
        &self,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        if holder_job(holder).is_some() {
            return self.leases.lock(&self.pool, keys, holder, now, until).await;
        }
        let mut tx = self.pool.begin().await?;
        let out = lock_in(&mut tx, keys, holder, now, until).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn unlock(&self, keys: &[String], holder: &str) -> Result<(), StorageError> {
        if holder_job(holder).is_some() {
            return self.leases.unlock(keys, holder).await;
        }
        let mut tx = self.pool.begin().await?;
        unlock_in(&mut tx, keys, holder).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn loader(&self) -> Result<Box<dyn copy::Loader>, StorageError> {
        Ok(Box::new(PgLoader {
            tx: self.pool.begin().await?,
        }))
    }
}

/// Take leases inside a transaction (see `Storage::lock`).
async fn lock_in(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[String],
    holder: &str,
    now: i64,
    until: i64,
) -> Result<Vec<bool>, StorageError> {
    let job = holder_job(holder);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let n = sqlx::query(&pg(
            "INSERT INTO sync_locks (key, holder, job, until) VALUES (?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, job = excluded.job,
                 until = excluded.until
             WHERE sync_locks.until < ? OR sync_locks.holder = excluded.holder
                OR sync_locks.job = excluded.job
                OR (sync_locks.job IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM jobs WHERE jobs.id = sync_locks.job
                      AND jobs.state IN ('enqueued', 'started')))",
        ))
        .bind(key)
        .bind(holder)
        .bind(job)
        .bind(until)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        out.push(n > 0);
    }
    Ok(out)
}

/// Give leases back inside a transaction.
async fn unlock_in(
    tx: &mut Transaction<'_, Postgres>,
    keys: &[String],
    holder: &str,
) -> Result<(), StorageError> {
    for key in keys {
        sqlx::query(&pg("DELETE FROM sync_locks WHERE key = ? AND holder = ?"))
            .bind(key)
            .bind(holder)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `db copy`'s writer: one transaction for the whole copy.
struct PgLoader {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl copy::Loader for PgLoader {
    async fn load(
        &mut self,
        table: &copy::Table,
        rows: Vec<Vec<copy::Cell>>,
    ) -> Result<(), StorageError> {
        for chunk in rows.chunks(copy::rows_per_insert(table)) {
            let sql = pg(&table.insert(chunk.len()));
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for (cell, (_, col)) in row.iter().zip(table.columns) {
                    q = match (cell, col) {
                        (copy::Cell::Int(v), _) => q.bind(*v),
                        (copy::Cell::Text(v), _) => q.bind(v.clone()),
                        (copy::Cell::Bytes(v), _) => q.bind(v.clone()),
                        (copy::Cell::Bool(v), _) => q.bind(*v),
                        (copy::Cell::Null, copy::Col::Int) => q.bind(None::<i64>),
                        (copy::Cell::Null, copy::Col::Text) => q.bind(None::<String>),
                        (copy::Cell::Null, copy::Col::Bytes) => q.bind(None::<Vec<u8>>),
                        (copy::Cell::Null, copy::Col::Bool) => q.bind(None::<bool>),
                    };
                }
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StorageError> {
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
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query("UPDATE registry_generation SET value = value + 1 WHERE id = 1")
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
