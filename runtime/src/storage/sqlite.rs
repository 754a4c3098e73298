//! [`Storage`] on an embedded SQLite file.
//!
//! One writer connection (SQLite allows one writer; queueing writes in
//! process beats spinning on `SQLITE_BUSY`) and a few readers, WAL mode,
//! `synchronous = NORMAL` (durable across process crashes; a power loss may
//! drop the last commits), a busy timeout for other processes on the same
//! file, and `BEGIN IMMEDIATE` for every write so a transaction never has
//! to upgrade its lock halfway.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::migrate::{self, Migration};
use super::{ClaimRequest, StateCount, Storage, StorageError};
use crate::capabilities::egress::AuditEntry;
use crate::queue::job::{
    Completion, Enqueued, Job, JobAuditEntry, JobFilter, JobId, JobLogLine, JobState, NewJob,
    Outcome, Parent,
};

#[derive(Debug, Clone)]
pub struct SqliteStorage {
    writer: SqlitePool,
    reader: SqlitePool,
}

const BEGIN: &str = "BEGIN IMMEDIATE";

impl SqliteStorage {
    /// Open (creating if needed) the database file and migrate it.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        let location = path.display().to_string();
        let open_err = |reason: String| StorageError::Open {
            location: location.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| open_err(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let storage = SqliteStorage { writer, reader };
        storage.migrate(migrate::SQLITE).await?;
        Ok(storage)
    }

    async fn migrate(&self, migrations: &[Migration]) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
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
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
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

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.reader)
                .await?,
        )
    }
}

const JOB_COLUMNS: &str = "id, function, args, backend, state, priority, eta, channel, identity_key, \
    max_retries, tries, description, result, error_kind, error_message, created_at, started_at, \
    finished_at, lease_until, node, worker, connector_digest";

fn job_from_row(row: &SqliteRow) -> Result<Job, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        function: row.try_get("function")?,
        args: row.try_get("args")?,
        backend: row.try_get("backend")?,
        state: JobState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job state {state:?}").into()))?,
        priority: row.try_get("priority")?,
        eta: row.try_get("eta")?,
        channel: row.try_get("channel")?,
        identity_key: row.try_get("identity_key")?,
        max_retries: row.try_get::<i64, _>("max_retries")? as u32,
        tries: row.try_get::<i64, _>("tries")? as u32,
        description: row.try_get("description")?,
        result: row.try_get("result")?,
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        lease_until: row.try_get("lease_until")?,
        node: row.try_get("node")?,
        worker: row.try_get("worker")?,
        connector_digest: row.try_get("connector_digest")?,
    })
}

/// `?, ?, ?` for `n` parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

async fn job_in(tx: &mut Transaction<'_, Sqlite>, id: JobId) -> Result<Job, StorageError> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StorageError::NoSuchJob(id))?;
    Ok(job_from_row(&row)?)
}

/// A job is done: every dependent that waited only for it becomes pending.
async fn release_children(
    tx: &mut Transaction<'_, Sqlite>,
    parent: JobId,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE jobs SET pending_parents = pending_parents - 1,
             state = CASE WHEN pending_parents - 1 <= 0 AND state = 'wait_dependencies' THEN 'pending' ELSE state END
         WHERE id IN (SELECT child FROM job_dependencies WHERE parent = ?)",
    )
    .bind(parent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<Vec<Enqueued>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let mut out: Vec<Enqueued> = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            let mut parent_ids = Vec::with_capacity(job.parents.len());
            for parent in &job.parents {
                let id = match parent {
                    Parent::Stored(id) => *id,
                    Parent::InBatch(i) if *i < index => out[*i].id,
                    Parent::InBatch(i) => {
                        return Err(StorageError::MissingParent {
                            child: index,
                            parent: *i as JobId,
                        });
                    }
                };
                parent_ids.push(id);
            }
            // A parent that is done no longer holds its child back.
            let mut waiting = 0i64;
            for id in &parent_ids {
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                match state.as_deref() {
                    None => {
                        return Err(StorageError::MissingParent {
                            child: index,
                            parent: *id,
                        });
                    }
                    Some("done") => {}
                    Some(_) => waiting += 1,
                }
            }
            let state = if waiting > 0 {
                "wait_dependencies"
            } else {
                "pending"
            };
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO jobs (function, args, backend, state, priority, eta, channel, identity_key,
                                   max_retries, description, pending_parents, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT DO NOTHING
                 RETURNING id",
            )
            .bind(&job.function)
            .bind(&job.args)
            .bind(&job.backend)
            .bind(state)
            .bind(job.priority)
            .bind(job.eta)
            .bind(&job.channel)
            .bind(&job.identity_key)
            .bind(i64::from(job.max_retries))
            .bind(&job.description)
            .bind(waiting)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            match inserted {
                Some(id) => {
                    for parent in &parent_ids {
                        sqlx::query(
                            "INSERT OR IGNORE INTO job_dependencies (parent, child) VALUES (?, ?)",
                        )
                        .bind(parent)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    out.push(Enqueued {
                        id,
                        deduplicated: false,
                    });
                }
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "SELECT id FROM jobs WHERE identity_key = ?
                           AND state IN ('wait_dependencies', 'pending', 'enqueued')",
                    )
                    .bind(&job.identity_key)
                    .fetch_one(&mut *tx)
                    .await?;
                    out.push(Enqueued {
                        id,
                        deduplicated: true,
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(out)
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
        sql.push_str(" ORDER BY priority, eta, id LIMIT ?");
        let mut query = sqlx::query(&sql).bind(request.now);
        for channel in &request.full_channels {
            let escaped = channel
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            query = query.bind(channel.clone()).bind(format!("{escaped}.%"));
        }
        for channel in &request.sequential_channels {
            query = query.bind(channel.clone());
        }
        let rows = query
            .bind(i64::from(request.limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("channel")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn mark_started(
        &self,
        ids: &[JobId],
        request: &ClaimRequest,
    ) -> Result<Vec<Job>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let sql = format!(
            "UPDATE jobs SET state = 'started', started_at = ?, lease_until = ?, node = ?, worker = ?
             WHERE state = 'pending' AND id IN ({})
             RETURNING {JOB_COLUMNS}",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(request.now)
            .bind(request.lease_until)
            .bind(&request.node)
            .bind(&request.worker);
        for id in ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn complete(&self, completions: &[Completion], now: i64) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        for c in completions {
            let tries: Option<i64> = sqlx::query_scalar(
                "SELECT tries FROM jobs WHERE id = ? AND state IN ('started', 'enqueued')",
            )
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
                        "UPDATE jobs SET state = 'done', tries = ?, result = ?, error_kind = NULL,
                             error_message = NULL, finished_at = ?, lease_until = NULL, connector_digest = ?
                         WHERE id = ?",
                    )
                    .bind(try_number)
                    .bind(result)
                    .bind(c.finished_at)
                    .bind(&c.connector_digest)
                    .bind(c.id)
                    .execute(&mut *tx)
                    .await?;
                    release_children(&mut tx, c.id).await?;
                }
                Outcome::Retry {
                    eta,
                    count_try,
                    kind,
                    message,
                } => {
                    let tries = if *count_try { try_number } else { tries };
                    sqlx::query(
                        "UPDATE jobs SET state = 'pending', tries = ?, eta = ?, error_kind = ?, error_message = ?,
                             lease_until = NULL, node = NULL, worker = NULL, connector_digest = ?
                         WHERE id = ?",
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
                        "UPDATE jobs SET state = 'failed', tries = ?, error_kind = ?, error_message = ?,
                             finished_at = ?, lease_until = NULL, connector_digest = ?
                         WHERE id = ?",
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
                let mut seq: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(seq), 0) FROM (SELECT seq FROM job_logs WHERE job_id = ?
                     UNION ALL SELECT seq FROM job_http_audit WHERE job_id = ?)",
                )
                .bind(c.id)
                .bind(c.id)
                .fetch_one(&mut *tx)
                .await?;
                for line in &c.log {
                    seq += 1;
                    sqlx::query(
                        "INSERT INTO job_logs (job_id, seq, try, level, source, message) VALUES (?, ?, ?, ?, ?, ?)",
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
                        "INSERT INTO job_http_audit (job_id, seq, try, method, scheme, host, port, path, status,
                             denied, error, request_bytes, response_bytes, duration_ms)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        let _ = now;
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
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let sql = format!(
            "UPDATE jobs SET lease_until = ? WHERE node = ? AND state IN ('started', 'enqueued') AND id IN ({})",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(&sql).bind(lease_until).bind(node);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn requeue_expired(&self, now: i64) -> Result<Vec<JobId>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let message = "the node running this job stopped renewing its lease (crashed or was killed); the try counts";
        let failed: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'failed', tries = tries + 1, error_kind = 'lease-expired',
                 error_message = ?, finished_at = ?, lease_until = NULL
             WHERE state IN ('started', 'enqueued') AND lease_until < ?
               AND max_retries > 0 AND tries + 1 >= max_retries
             RETURNING id",
        )
        .bind(message)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut requeued: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'pending', tries = tries + 1, error_kind = 'lease-expired',
                 error_message = ?, lease_until = NULL, node = NULL, worker = NULL, eta = ?
             WHERE state IN ('started', 'enqueued') AND lease_until < ?
             RETURNING id",
        )
        .bind(message)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        requeued.extend(failed);
        Ok(requeued)
    }

    async fn release(&self, node: &str, ids: &[JobId], _now: i64) -> Result<(), StorageError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let sql = format!(
            "UPDATE jobs SET state = 'pending', lease_until = NULL, node = NULL, worker = NULL, started_at = NULL
             WHERE node = ? AND state IN ('started', 'enqueued') AND id IN ({})",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(&sql).bind(node);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn cancel(&self, id: JobId, now: i64) -> Result<Vec<JobId>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let job = job_in(&mut tx, id).await?;
        if job.state.is_final() {
            return Err(StorageError::WrongState {
                id,
                state: job.state,
                action: "cancel",
                expected: "not finished",
            });
        }
        // The job and, transitively, every unfinished job depending on it.
        let ids: Vec<i64> = sqlx::query_scalar(
            "WITH RECURSIVE tree(id) AS (
                 SELECT ? UNION SELECT d.child FROM job_dependencies d JOIN tree t ON d.parent = t.id)
             UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL
             WHERE id IN (SELECT id FROM tree) AND state NOT IN ('done', 'cancelled', 'failed')
             RETURNING id",
        )
        .bind(id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn requeue(&self, id: JobId, now: i64) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let job = job_in(&mut tx, id).await?;
        if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
            return Err(StorageError::WrongState {
                id,
                state: job.state,
                action: "requeue",
                expected: "failed or cancelled",
            });
        }
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_dependencies d JOIN jobs p ON p.id = d.parent
             WHERE d.child = ? AND p.state != 'done'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE jobs SET state = ?, tries = 0, eta = ?, pending_parents = ?, finished_at = NULL,
                 lease_until = NULL, node = NULL, worker = NULL
             WHERE id = ?",
        )
        .bind(if waiting > 0 { "wait_dependencies" } else { "pending" })
        .bind(now)
        .bind(waiting)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mark_done(&self, id: JobId, now: i64) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let job = job_in(&mut tx, id).await?;
        if job.state == JobState::Done {
            return Err(StorageError::WrongState {
                id,
                state: job.state,
                action: "mark done",
                expected: "not done",
            });
        }
        sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = ?, lease_until = NULL,
                 result = COALESCE(result, '\"marked done by an operator\"')
             WHERE id = ?",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        release_children(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| job_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StorageError> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
        if filter.state.is_some() {
            sql.push_str(" AND state = ?");
        }
        if filter.channel.is_some() {
            sql.push_str(" AND channel = ?");
        }
        if filter.backend.is_some() {
            sql.push_str(" AND backend = ?");
        }
        if filter.function.is_some() {
            sql.push_str(" AND function = ?");
        }
        if filter.before.is_some() {
            sql.push_str(" AND id < ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut query = sqlx::query(&sql);
        if let Some(s) = filter.state {
            query = query.bind(s.as_str());
        }
        for v in [&filter.channel, &filter.backend, &filter.function]
            .into_iter()
            .flatten()
        {
            query = query.bind(v.clone());
        }
        if let Some(b) = filter.before {
            query = query.bind(b);
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let rows = query.bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn job_log(&self, id: JobId) -> Result<Vec<JobLogLine>, StorageError> {
        let rows = sqlx::query(
            "SELECT try, level, source, message FROM job_logs WHERE job_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobLogLine {
                    try_number: r.try_get::<i64, _>("try")? as u32,
                    level: r.try_get("level")?,
                    source: r.try_get("source")?,
                    message: r.try_get("message")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn job_audit(&self, id: JobId) -> Result<Vec<JobAuditEntry>, StorageError> {
        let rows = sqlx::query(
            "SELECT try, method, scheme, host, port, path, status, denied, error, request_bytes,
                    response_bytes, duration_ms
             FROM job_http_audit WHERE job_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobAuditEntry {
                    try_number: r.try_get::<i64, _>("try")? as u32,
                    entry: AuditEntry {
                        method: r.try_get("method")?,
                        scheme: r.try_get("scheme")?,
                        host: r.try_get("host")?,
                        port: r.try_get::<i64, _>("port")? as u16,
                        path: r.try_get("path")?,
                        status: r.try_get::<Option<i64>, _>("status")?.map(|s| s as u16),
                        denied: r.try_get("denied")?,
                        error: r.try_get("error")?,
                        request_bytes: r.try_get::<i64, _>("request_bytes")? as u64,
                        response_bytes: r.try_get::<i64, _>("response_bytes")? as u64,
                        duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn parents(&self, id: JobId) -> Result<Vec<JobId>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT parent FROM job_dependencies WHERE child = ? ORDER BY parent",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn counts(&self) -> Result<Vec<StateCount>, StorageError> {
        let rows =
            sqlx::query("SELECT state, channel, COUNT(*) AS n FROM jobs GROUP BY state, channel")
                .fetch_all(&self.reader)
                .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(StateCount {
                    state: JobState::parse(&state).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown job state {state:?}").into())
                    })?,
                    channel: r.try_get("channel")?,
                    count: r.try_get("n")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn purge(&self, before: i64, batch: u32) -> Result<u64, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (
                 SELECT id FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < ?
                 AND id NOT IN (SELECT d.parent FROM job_dependencies d JOIN jobs c ON c.id = d.child
                                WHERE c.state NOT IN ('done', 'cancelled', 'failed'))
                 LIMIT ?)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
