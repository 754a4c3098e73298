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
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::copy;
use super::migrate::{self, Migration};
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

/// [`Storage`] on an embedded SQLite file.
pub type SqliteStorage = SqlStorage<SqliteDialect>;

/// SQLite's [`Dialect`].
#[derive(Debug, Clone)]
pub struct SqliteDialect {
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
        let d = SqliteDialect { writer, reader };
        d.migrate(migrate::SQLITE).await?;
        Ok(SqlStorage { d })
    }
}

impl SqliteDialect {
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
}

/// Jobs are done: their dependents count them off, and those with no
/// parent left to wait for become pending. One statement for the batch.
async fn release_children_of(
    tx: &mut Transaction<'_, Sqlite>,
    parents: &[JobId],
) -> Result<(), StorageError> {
    for chunk in parents.chunks(500) {
        let list = placeholders(chunk.len());
        let sql = format!(
            "UPDATE jobs SET
                 pending_parents = pending_parents - (SELECT COUNT(*) FROM job_dependencies d
                                                     WHERE d.child = jobs.id AND d.parent IN ({list})),
                 state = CASE WHEN state = 'wait_dependencies'
                                   AND pending_parents - (SELECT COUNT(*) FROM job_dependencies d
                                                          WHERE d.child = jobs.id AND d.parent IN ({list})) <= 0
                              THEN 'pending' ELSE state END
             WHERE id IN (SELECT child FROM job_dependencies WHERE parent IN ({list}))"
        );
        let mut query = sqlx::query(&sql);
        for _ in 0..3 {
            for id in chunk {
                query = query.bind(id);
            }
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Done = sqlx::sqlite::SqliteQueryResult;

    fn reader(&self) -> &sqlx::Pool<Sqlite> {
        &self.reader
    }

    fn writer(&self) -> &sqlx::Pool<Sqlite> {
        &self.writer
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with(BEGIN).await
    }

    async fn jobs_due(_: &mut Transaction<'_, Sqlite>) -> Result<(), StorageError> {
        // No notifications: other processes on the file poll for due jobs.
        Ok(())
    }

    async fn release_children(
        tx: &mut Transaction<'_, Sqlite>,
        parents: &[JobId],
    ) -> Result<(), StorageError> {
        release_children_of(tx, parents).await
    }

    fn bytes(expr: &str) -> String {
        format!("LENGTH(CAST({expr} AS BLOB))")
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
            .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin_with(BEGIN).await?;
        // Shared limits count every process's running jobs; the write lock
        // of BEGIN IMMEDIATE makes this count and the claim one step.
        let admitted;
        let ids = if request.shared_limits.is_empty() {
            ids
        } else {
            let sql = format!(
                "SELECT id, channel FROM jobs WHERE state = 'pending' AND id IN ({})",
                placeholders(ids.len())
            );
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for id in ids {
                q = q.bind(id);
            }
            let mut pending = q.fetch_all(&mut *tx).await?;
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
        let sql = format!(
            "UPDATE jobs SET state = 'enqueued', started_at = NULL, lease_until = ?, node = ?, worker = ?
             WHERE state = 'pending' AND id IN ({})
             RETURNING {JOB_COLUMNS}",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(&sql)
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

    async fn complete(
        &self,
        completions: &[Completion],
        begun: &[(JobId, i64)],
        _now: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        for chunk in begun.chunks(400) {
            let sql = format!(
                "UPDATE jobs SET state = 'started', started_at = v.column2 FROM (VALUES {}) AS v
                 WHERE jobs.id = v.column1 AND jobs.state = 'enqueued'",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (id, at) in chunk {
                query = query.bind(id).bind(at);
            }
            query.execute(&mut *tx).await?;
        }
        // The common case — done, nothing logged — is one statement per
        // chunk: with SQLite, statements are what a transaction pays for.
        let (plain, rest): (Vec<&Completion>, Vec<&Completion>) =
            completions.iter().partition(|c| {
                matches!(c.outcome, Outcome::Done { .. }) && c.log.is_empty() && c.audit.is_empty()
            });
        let mut finished = Vec::with_capacity(plain.len());
        for chunk in plain.chunks(200) {
            let sql = format!(
                "UPDATE jobs SET state = 'done', tries = tries + 1, result = v.column2, error_kind = NULL,
                     error_message = NULL, finished_at = v.column3, lease_until = NULL, connector_digest = v.column4
                 FROM (VALUES {}) AS v
                 WHERE jobs.id = v.column1 AND jobs.state IN ('started', 'enqueued')
                 RETURNING jobs.id",
                vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query_scalar::<_, i64>(&sql);
            for c in chunk {
                let Outcome::Done { result } = &c.outcome else {
                    unreachable!("partitioned")
                };
                query = query
                    .bind(c.id)
                    .bind(result)
                    .bind(c.finished_at)
                    .bind(&c.connector_digest);
            }
            finished.extend(query.fetch_all(&mut *tx).await?);
        }
        release_children_of(&mut tx, &finished).await?;
        for c in rest {
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

    async fn compact_counts(&self) -> Result<(), StorageError> {
        // One row per channel and state already (the single writer updates
        // them in place); only rows of channels no job uses any more go.
        sqlx::query("DELETE FROM job_counts WHERE n = 0")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> Result<Vec<WriteDone>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                WriteOp::Lock {
                    keys,
                    holder,
                    now,
                    until,
                } => WriteDone::Locked(lock_in(&mut tx, keys, holder, *now, *until).await?),
                WriteOp::Unlock { keys, holder } => {
                    unlock_in(&mut tx, keys, holder).await?;
                    WriteDone::Unlocked
                }
                WriteOp::Put { writes, now } => {
                    WriteDone::Put(SqliteStorage::put_many_in(&mut tx, writes, *now).await?)
                }
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn lock(
        &self,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let out = lock_in(&mut tx, keys, holder, now, until).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn unlock(&self, keys: &[String], holder: &str) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        unlock_in(&mut tx, keys, holder).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn loader(&self) -> Result<Box<dyn copy::Loader>, StorageError> {
        Ok(Box::new(SqliteLoader {
            tx: self.writer.begin_with(BEGIN).await?,
        }))
    }
}

/// Take leases inside a transaction (see `Storage::lock`).
async fn lock_in(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &[String],
    holder: &str,
    now: i64,
    until: i64,
) -> Result<Vec<bool>, StorageError> {
    let job = holder_job(holder);
    // Another attempt of the same job is gone (a job never runs twice at
    // once): its leases are taken over; this attempt's own concurrent
    // parts (dependency imports) wait for each other.
    let attempt = super::rows::like_prefix(super::rows::holder_attempt(holder).unwrap_or(""));
    // One statement per chunk of keys: the keys it returns are the ones
    // taken (inserted, or updated because the lease was free to take).
    let mut taken = std::collections::HashSet::new();
    for chunk in keys.chunks(IN_CHUNK / 2) {
        let sql = format!(
            "INSERT INTO sync_locks (key, holder, job, until) VALUES {}
             ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, job = excluded.job,
                 until = excluded.until
             WHERE sync_locks.until < ? OR sync_locks.holder = excluded.holder
                OR (sync_locks.job = excluded.job AND sync_locks.holder NOT LIKE ? ESCAPE '\\')
                OR (sync_locks.job IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM jobs WHERE jobs.id = sync_locks.job
                      AND jobs.state IN ('enqueued', 'started')))
             RETURNING key",
            vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for key in chunk {
            q = q.bind(key).bind(holder).bind(job).bind(until);
        }
        taken.extend(q.bind(now).bind(&attempt).fetch_all(&mut **tx).await?);
    }
    Ok(keys.iter().map(|k| taken.contains(k)).collect())
}

/// Give leases back inside a transaction.
async fn unlock_in(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &[String],
    holder: &str,
) -> Result<(), StorageError> {
    for chunk in keys.chunks(IN_CHUNK) {
        let sql = format!(
            "DELETE FROM sync_locks WHERE holder = ? AND key IN ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(holder);
        for key in chunk {
            q = q.bind(key);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `db copy`'s writer: one transaction for the whole copy.
struct SqliteLoader {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl copy::Loader for SqliteLoader {
    async fn load(
        &mut self,
        table: &copy::Table,
        rows: Vec<Vec<copy::Cell>>,
    ) -> Result<(), StorageError> {
        for chunk in rows.chunks(copy::rows_per_insert(table)) {
            let sql = table.insert(chunk.len());
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
        sqlx::query("UPDATE registry_generation SET value = value + 1 WHERE id = 1")
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
