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
use super::{
    Binding, ClaimRequest, InstalledConnector, NodeInfo, OpenBreaker, PutOutcome, RecordWrite,
    RemoveBackend, RemovedBackend, StateCount, StateQuota, Storage, StorageError, StoredBackend,
    StoredEvent, WriteDone, WriteOp, json_object,
};
use crate::capabilities::egress::AuditEntry;
use crate::model::{Event, LocalRecord};
use crate::queue::job::{
    Acted, Completion, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine,
    JobState, NewJob, Outcome, Parent,
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

async fn outbox_in(
    tx: &mut Transaction<'_, Sqlite>,
    event: &Event,
    now: i64,
) -> Result<StoredEvent, StorageError> {
    let fields = serde_json::to_string(&event.changed_fields).unwrap_or_else(|_| "[]".into());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (name, model, local_id, changed_fields, payload, origin_backend, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&event.name)
    .bind(&event.model)
    .bind(&event.local_id)
    .bind(fields)
    .bind(&event.payload)
    .bind(&event.origin_backend)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(StoredEvent {
        id,
        event: event.clone(),
        created_at: now,
    })
}

/// Insert a batch of jobs inside an open transaction (shared by enqueue and
/// event dispatch, so an event's jobs commit with its processed mark).
async fn enqueue_in(
    tx: &mut Transaction<'_, Sqlite>,
    jobs: &[NewJob],
    now: i64,
) -> Result<Vec<Enqueued>, StorageError> {
    // Jobs with no identity key and no parents cannot collide or wait:
    // insert them many rows per statement. Rowids are assigned in VALUES
    // order, so the sorted returned ids map back to the batch in order.
    if jobs
        .iter()
        .all(|j| j.identity_key.is_none() && j.parents.is_empty())
    {
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(500) {
            let sql = format!(
                "INSERT INTO jobs (function, args, backend, state, priority, eta, channel, max_retries,
                                   description, created_at, record)
                 VALUES {} RETURNING id",
                vec!["(?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query_scalar::<_, i64>(&sql);
            for job in chunk {
                query = query
                    .bind(&job.function)
                    .bind(&job.args)
                    .bind(&job.backend)
                    .bind(job.priority)
                    .bind(job.eta)
                    .bind(&job.channel)
                    .bind(i64::from(job.max_retries))
                    .bind(&job.description)
                    .bind(now)
                    .bind(&job.record);
            }
            let mut ids = query.fetch_all(&mut **tx).await?;
            ids.sort_unstable();
            out.extend(ids.into_iter().map(|id| Enqueued {
                id,
                deduplicated: false,
            }));
        }
        return Ok(out);
    }
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
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut **tx)
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
                                   max_retries, description, pending_parents, created_at, record)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            .bind(&job.record)
            .fetch_optional(&mut **tx)
            .await?;
        match inserted {
            Some(id) => {
                for parent in &parent_ids {
                    sqlx::query(
                        "INSERT OR IGNORE INTO job_dependencies (parent, child) VALUES (?, ?)",
                    )
                    .bind(parent)
                    .bind(id)
                    .execute(&mut **tx)
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
                .fetch_one(&mut **tx)
                .await?;
                out.push(Enqueued {
                    id,
                    deduplicated: true,
                });
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<Vec<Enqueued>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let out = enqueue_in(&mut tx, jobs, now).await?;
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

    async fn requeue_expired(&self, now: i64) -> Result<Vec<JobId>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let message = "the node running this job stopped renewing its lease (crashed or was killed); the try counts";
        let failed: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'failed', tries = tries + 1, error_kind = 'lease-expired',
                 error_message = ?, finished_at = ?, lease_until = NULL
             WHERE state = 'started' AND lease_until < ?
               AND max_retries > 0 AND tries + 1 >= max_retries
             RETURNING id",
        )
        .bind(message)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut requeued: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'pending',
                 tries = tries + CASE WHEN state = 'started' THEN 1 ELSE 0 END,
                 error_kind = CASE WHEN state = 'started' THEN 'lease-expired' ELSE error_kind END,
                 error_message = CASE WHEN state = 'started' THEN ? ELSE error_message END,
                 lease_until = NULL, node = NULL, worker = NULL, eta = ?
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

    async fn act(&self, action: JobAction, ids: &[JobId], now: i64) -> Result<Acted, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let mut acted = Acted::default();
        for &id in ids {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(state) = state.as_deref().and_then(JobState::parse) else {
                acted.missing.push(id);
                continue;
            };
            if !action.applies_to(state) {
                acted.skipped.push((id, state));
                continue;
            }
            match action {
                JobAction::Cancel => {
                    // The job and, transitively, every unfinished job
                    // depending on it.
                    let tree: Vec<i64> = sqlx::query_scalar(&super::rows::cancel_tree("SELECT ?"))
                        .bind(id)
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await?;
                    acted.changed.extend(tree);
                }
                JobAction::Requeue => {
                    let waiting: i64 = sqlx::query_scalar(super::rows::UNDONE_PARENTS)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(super::rows::REQUEUE)
                        .bind(if waiting > 0 {
                            "wait_dependencies"
                        } else {
                            "pending"
                        })
                        .bind(now)
                        .bind(waiting)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    acted.changed.push(id);
                }
                JobAction::Done => {
                    sqlx::query(super::rows::MARK_DONE)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    release_children_of(&mut tx, &[id]).await?;
                    acted.changed.push(id);
                }
                JobAction::Discard => {
                    sqlx::query(super::rows::DISCARD)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    acted.changed.push(id);
                    let tree: Vec<i64> =
                        sqlx::query_scalar(&super::rows::cancel_tree(super::rows::DEPENDENTS))
                            .bind(id)
                            .bind(now)
                            .fetch_all(&mut *tx)
                            .await?;
                    acted.changed.extend(tree);
                }
            }
        }
        tx.commit().await?;
        Ok(acted)
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
        let (conditions, values) = super::rows::job_filter(filter);
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1{conditions} ORDER BY id DESC LIMIT ?"
        );
        let query = super::rows::bind_values(sqlx::query(&sql), values);
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let rows = query.bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StorageError> {
        let filter = JobFilter {
            before: None,
            ..filter.clone()
        };
        let (conditions, values) = super::rows::job_filter(&filter);
        let sql = format!("SELECT COUNT(*) FROM jobs WHERE 1 = 1{conditions}");
        let query = super::rows::bind_values(sqlx::query(&sql), values);
        let count: i64 = query.fetch_one(&self.reader).await?.try_get(0)?;
        Ok(count.max(0) as u64)
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

    async fn children(&self, id: JobId) -> Result<Vec<JobId>, StorageError> {
        Ok(
            sqlx::query_scalar(
                "SELECT child FROM job_dependencies WHERE parent = ? ORDER BY child",
            )
            .bind(id)
            .fetch_all(&self.reader)
            .await?,
        )
    }

    async fn oldest_due(&self, now: i64) -> Result<Vec<(String, i64)>, StorageError> {
        Ok(sqlx::query_as(super::rows::OLDEST_DUE)
            .bind(now)
            .bind(now)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn counts(&self) -> Result<Vec<StateCount>, StorageError> {
        let rows = sqlx::query(super::rows::COUNTS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(super::rows::state_count_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn compact_counts(&self) -> Result<(), StorageError> {
        // One row per channel and state already (the single writer updates
        // them in place); only rows of channels no job uses any more go.
        sqlx::query("DELETE FROM job_counts WHERE n = 0")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn purge(
        &self,
        before: i64,
        batch: u32,
        scope: &crate::queue::retention::PurgeScope,
    ) -> Result<u64, StorageError> {
        let (sql, values) = super::rows::purge(scope, before, batch);
        let query = super::rows::bind_values(sqlx::query(&sql), values);
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let done = query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn put_records(
        &self,
        writes: &[RecordWrite],
        now: i64,
    ) -> Result<Vec<PutOutcome>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let out = put_many_in(&mut tx, writes, now).await?;
        tx.commit().await?;
        Ok(out)
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
                    WriteDone::Put(put_many_in(&mut tx, writes, *now).await?)
                }
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn delete_record(
        &self,
        model: &str,
        id: &str,
        origin_backend: Option<&str>,
        now: i64,
    ) -> Result<Option<StoredEvent>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let data: Option<String> =
            sqlx::query_scalar("DELETE FROM records WHERE model = ? AND id = ? RETURNING data")
                .bind(model)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(data) = data else {
            return Ok(None);
        };
        sqlx::query(super::put::sql::delete_keys())
            .bind(model)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let event = Event {
            name: "record-deleted".to_string(),
            model: model.to_string(),
            local_id: Some(id.to_string()),
            changed_fields: Vec::new(),
            payload: data,
            origin_backend: origin_backend.map(str::to_string),
        };
        let stored = outbox_in(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    async fn record(&self, model: &str, id: &str) -> Result<Option<LocalRecord>, StorageError> {
        let row = sqlx::query(
            "SELECT model, id, data, version, updated_at FROM records WHERE model = ? AND id = ?",
        )
        .bind(model)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| record_from_row(&r)).transpose()?)
    }

    async fn records_by_keys(
        &self,
        model: &str,
        keys: &[crate::features::MatchKey],
    ) -> Result<Vec<(crate::features::MatchKey, String)>, StorageError> {
        super::put::records_by_keys!(&self.reader, model, keys, |sql: String| sql)
    }

    async fn records_of(
        &self,
        model: &str,
        ids: &[String],
    ) -> Result<Vec<LocalRecord>, StorageError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT model, id, data, version, updated_at FROM records WHERE model = ? AND id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(model);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.reader).await? {
                out.push(record_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LocalRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT model, id, data, version, updated_at FROM records
             WHERE model = ? AND (? IS NULL OR id > ?) ORDER BY id LIMIT ?",
        )
        .bind(model)
        .bind(after)
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| record_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn emit(&self, event: &Event, now: i64) -> Result<StoredEvent, StorageError> {
        json_object(&event.payload, "event payload")?;
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let stored = outbox_in(&mut tx, event, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn undispatched(&self, limit: u32) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, name, model, local_id, changed_fields, payload, origin_backend, created_at
             FROM outbox WHERE processed_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| event_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn live_jobs(&self, backend: &str, up_to: u64) -> Result<u64, StorageError> {
        // Bounded: a backend far over its quota costs no more to check.
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE backend = ? AND backend IS NOT NULL
               AND state IN ('wait_dependencies', 'pending', 'enqueued', 'started') LIMIT ?) AS live",
        )
        .bind(backend)
        .bind(i64::try_from(up_to.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_one(&self.reader)
        .await?;
        Ok(n as u64)
    }

    async fn event(&self, id: i64) -> Result<Option<StoredEvent>, StorageError> {
        let row = sqlx::query(
            "SELECT id, name, model, local_id, changed_fields, payload, origin_backend, created_at
             FROM outbox WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref()
            .map(|r| event_from_row(r).map_err(Into::into))
            .transpose()
    }

    async fn dispatch(
        &self,
        events: &[(i64, Vec<NewJob>)],
        now: i64,
    ) -> Result<Vec<Option<Vec<Enqueued>>>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        // Every event marked in one statement per chunk; those it does not
        // return were dispatched already (by another dispatcher): their
        // jobs exist.
        let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
        let mut marked = std::collections::HashSet::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "UPDATE outbox SET processed_at = ? WHERE processed_at IS NULL AND id IN ({}) RETURNING id",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(now);
            for id in chunk {
                q = q.bind(id);
            }
            marked.extend(q.fetch_all(&mut *tx).await?);
        }
        let mut out = Vec::with_capacity(events.len());
        for (event_id, jobs) in events {
            if !marked.remove(event_id) {
                out.push(None);
                continue;
            }
            out.push(Some(enqueue_in(&mut tx, jobs, now).await?));
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn binding_to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT local_id FROM bindings WHERE backend = ? AND model = ? AND external_id = ?",
        )
        .bind(backend)
        .bind(model)
        .bind(external_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn binding_to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT external_id FROM bindings WHERE backend = ? AND model = ? AND local_id = ?",
        )
        .bind(backend)
        .bind(model)
        .bind(local_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: i64,
        synced: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        bind_in(
            &mut tx,
            backend,
            model,
            external_id,
            local_id,
            sync_date,
            synced,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn binding(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<Binding>, StorageError> {
        Ok(self
            .bindings_of(backend, model, &[external_id.to_string()])
            .await?
            .pop())
    }

    async fn bindings_page(
        &self,
        backend: &str,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Binding>, StorageError> {
        let rows: Vec<BindingRow> = sqlx::query_as(
            "SELECT external_id, local_id, sync_date, synced FROM bindings
             WHERE backend = ? AND model = ? AND (? IS NULL OR external_id > ?)
             ORDER BY external_id LIMIT ?",
        )
        .bind(backend)
        .bind(model)
        .bind(after)
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| binding_from_row(backend, model, row))
            .collect())
    }

    async fn bindings_of(
        &self,
        backend: &str,
        model: &str,
        external_ids: &[String],
    ) -> Result<Vec<Binding>, StorageError> {
        let mut out = Vec::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT external_id, local_id, sync_date, synced FROM bindings
                 WHERE backend = ? AND model = ? AND external_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_as::<_, BindingRow>(&sql)
                .bind(backend)
                .bind(model);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.reader).await? {
                out.push(binding_from_row(backend, model, row));
            }
        }
        Ok(out)
    }

    async fn binding_of_local(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<Binding>, StorageError> {
        let row: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT external_id, sync_date, synced FROM bindings WHERE backend = ? AND model = ? AND local_id = ?",
        )
        .bind(backend)
        .bind(model)
        .bind(local_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(external_id, sync_date, synced)| Binding {
            backend: backend.to_string(),
            model: model.to_string(),
            external_id,
            local_id: local_id.to_string(),
            sync_date,
            synced,
        }))
    }

    async fn unbind(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<bool, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let n =
            sqlx::query("DELETE FROM bindings WHERE backend = ? AND model = ? AND local_id = ?")
                .bind(backend)
                .bind(model)
                .bind(local_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn binding_counts(&self, backend: &str) -> Result<Vec<(String, i64)>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT model, COUNT(*) FROM bindings WHERE backend = ? GROUP BY model ORDER BY model",
        )
        .bind(backend)
        .fetch_all(&self.reader)
        .await?)
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

    async fn install_connector(
        &self,
        c: &InstalledConnector,
        component: &[u8],
    ) -> Result<bool, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let n = sqlx::query(
            "INSERT INTO connectors (digest, name, version, backend_kind, backend_versions, manifest, component, active, installed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&c.digest)
        .bind(&c.name)
        .bind(&c.version)
        .bind(&c.backend_kind)
        .bind(&c.backend_versions)
        .bind(&c.manifest)
        .bind(component)
        .bind(c.installed_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn connectors(&self) -> Result<Vec<InstalledConnector>, StorageError> {
        let rows: Vec<(String, String, String, String, String, String, i64, bool)> = sqlx::query_as(
            "SELECT digest, name, version, backend_kind, backend_versions, manifest, installed_at, active
             FROM connectors ORDER BY name, installed_at",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    digest,
                    name,
                    version,
                    backend_kind,
                    backend_versions,
                    manifest,
                    installed_at,
                    active,
                )| {
                    InstalledConnector {
                        digest,
                        name,
                        version,
                        backend_kind,
                        backend_versions,
                        manifest,
                        installed_at,
                        active,
                    }
                },
            )
            .collect())
    }

    async fn connector_component(&self, digest: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT component FROM connectors WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn remove_connector(&self, digest: &str) -> Result<bool, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let n = sqlx::query("DELETE FROM connectors WHERE digest = ?")
            .bind(digest)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM connector_activations WHERE digest = ?")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn activate_connector(&self, digest: &str, now: i64) -> Result<bool, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM connectors WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(name) = name else {
            return Ok(false);
        };
        sqlx::query("UPDATE connectors SET active = (digest = ?) WHERE name = ?")
            .bind(digest)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO connector_activations (name, digest, at) VALUES (?, ?, ?)")
            .bind(&name)
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rollback_connector(
        &self,
        name: &str,
        _now: i64,
    ) -> Result<Option<String>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let current: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, digest FROM connector_activations
             WHERE name = ? AND rolled_back = 0 ORDER BY seq DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, digest)) = current else {
            return Ok(None);
        };
        let previous: Option<(i64, String)> = sqlx::query_as(
            "SELECT a.seq, a.digest FROM connector_activations a
             WHERE a.name = ? AND a.rolled_back = 0 AND a.seq < ? AND a.digest <> ?
               AND EXISTS (SELECT 1 FROM connectors c WHERE c.digest = a.digest)
             ORDER BY a.seq DESC LIMIT 1",
        )
        .bind(name)
        .bind(seq)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((back_to, previous)) = previous else {
            return Ok(None);
        };
        sqlx::query("UPDATE connector_activations SET rolled_back = 1 WHERE name = ? AND seq > ?")
            .bind(name)
            .bind(back_to)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE connectors SET active = (digest = ?) WHERE name = ?")
            .bind(&previous)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(previous))
    }

    async fn node_beat(&self, node: &NodeInfo) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        sqlx::query(
            "INSERT INTO nodes (name, version, host, started_at, heartbeat_at, stopped_at)
             VALUES (?, ?, ?, ?, ?, NULL)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, host = excluded.host,
                 started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
                 stopped_at = NULL",
        )
        .bind(&node.name)
        .bind(&node.version)
        .bind(&node.host)
        .bind(node.started_at)
        .bind(node.heartbeat_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn node_stopped(&self, name: &str, now: i64) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        sqlx::query("UPDATE nodes SET stopped_at = ? WHERE name = ?")
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StorageError> {
        let rows: Vec<(String, String, String, i64, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT n.name, n.version, n.host, n.started_at, n.heartbeat_at, n.stopped_at,
                    (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.state IN ('enqueued', 'started'))
             FROM nodes n ORDER BY n.name",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(name, version, host, started_at, heartbeat_at, stopped_at, running)| NodeInfo {
                    name,
                    version,
                    host,
                    started_at,
                    heartbeat_at,
                    stopped_at,
                    running,
                },
            )
            .collect())
    }

    async fn schema_version(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn dump(
        &self,
        table: &copy::Table,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<Vec<copy::Cell>>, StorageError> {
        let sql = table.select();
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(offset)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| copy::cells(r, table).map_err(Into::into))
            .collect()
    }

    async fn loader(&self) -> Result<Box<dyn copy::Loader>, StorageError> {
        Ok(Box::new(SqliteLoader {
            tx: self.writer.begin_with(BEGIN).await?,
        }))
    }

    async fn open_breaker(&self, b: &OpenBreaker) -> Result<bool, StorageError> {
        let done = sqlx::query(super::rows::OPEN_BREAKER)
            .bind(&b.backend)
            .bind(b.failures)
            .bind(&b.reason)
            .bind(b.opened_at)
            .bind(b.retry_at)
            .bind(b.cool_down)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn breakers(&self) -> Result<Vec<OpenBreaker>, StorageError> {
        let rows: Vec<super::rows::BreakerRow> = sqlx::query_as(super::rows::BREAKERS)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .into_iter()
            .map(super::rows::breaker_from_row)
            .collect())
    }

    async fn breaker_probe_failed(
        &self,
        backend: &str,
        reason: &str,
        now: i64,
        max_cool_down: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(super::rows::BREAKER_PROBE_FAILED)
            .bind(max_cool_down)
            .bind(max_cool_down)
            .bind(reason)
            .bind(now)
            .bind(max_cool_down)
            .bind(max_cool_down)
            .bind(backend)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn close_breaker(&self, backend: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(super::rows::CLOSE_BREAKER)
            .bind(backend)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_paused(
        &self,
        kind: &str,
        name: &str,
        paused: bool,
        now: i64,
    ) -> Result<bool, StorageError> {
        let done = if paused {
            sqlx::query(super::rows::PAUSE)
                .bind(kind)
                .bind(name)
                .bind(now)
                .execute(&self.writer)
                .await?
        } else {
            sqlx::query(super::rows::RESUME)
                .bind(kind)
                .bind(name)
                .execute(&self.writer)
                .await?
        };
        Ok(done.rows_affected() == 1)
    }

    async fn paused(&self) -> Result<Vec<(String, String, i64)>, StorageError> {
        Ok(sqlx::query_as(super::rows::PAUSED)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn registry_generation(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM registry_generation WHERE id = 1")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn put_backend(
        &self,
        name: &str,
        kind: &str,
        version: &str,
        config: &str,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        sqlx::query(
            "INSERT INTO backends (name, kind, version, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, version = excluded.version,
                 config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(kind)
        .bind(version)
        .bind(config)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_backend(
        &self,
        name: &str,
        how: RemoveBackend,
        now: i64,
    ) -> Result<Option<RemovedBackend>, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let found: Option<String> = sqlx::query_scalar("SELECT name FROM backends WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let mut removed = RemovedBackend::default();
        if how.cancel_jobs {
            // Its unfinished jobs and, transitively, the jobs depending on them.
            let ids: Vec<i64> =
                sqlx::query_scalar(&super::rows::cancel_tree(super::rows::BACKEND_UNFINISHED))
                    .bind(name)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
            removed.cancelled_jobs = ids.len() as u64;
        } else {
            let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE backend = ? AND state NOT IN ('done', 'cancelled', 'failed')")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            if jobs > 0 {
                return Err(StorageError::BackendBusy {
                    backend: name.to_string(),
                    jobs: jobs as u64,
                });
            }
        }
        if how.purge {
            removed.bindings = sqlx::query("DELETE FROM bindings WHERE backend = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            removed.state_keys = sqlx::query("DELETE FROM stream_state WHERE backend = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query("DELETE FROM backends WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(removed))
    }

    async fn backends(&self) -> Result<Vec<StoredBackend>, StorageError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, config, updated_at FROM backends ORDER BY name")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, config, updated_at)| StoredBackend {
                name,
                config,
                updated_at,
            })
            .collect())
    }

    async fn record_jobs(
        &self,
        model: &str,
        local_id: &str,
        external: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<Job>, StorageError> {
        let keys = super::rows::record_keys(model, local_id, external);
        let sql = super::rows::record_jobs(keys.len());
        let mut query = sqlx::query(&sql);
        for key in &keys {
            query = query.bind(key);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn record_events(
        &self,
        model: &str,
        local_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = sqlx::query(super::rows::RECORD_EVENTS)
            .bind(model)
            .bind(local_id)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| event_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn notify_add(
        &self,
        target: &str,
        note: &crate::queue::notify::Notification,
        max: u64,
    ) -> Result<bool, StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        let waiting: i64 = sqlx::query_scalar(super::rows::NOTIFY_COUNT)
            .bind(target)
            .fetch_one(&mut *tx)
            .await?;
        let stored = (waiting.max(0) as u64) < max;
        if stored {
            sqlx::query(super::rows::NOTIFY_ADD)
                .bind(target)
                .bind(&note.kind)
                .bind(&note.backend)
                .bind(&note.subject)
                .bind(&note.message)
                .bind(note.at)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(super::rows::NOTIFY_DROP)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn notify_take(
        &self,
        target: &str,
        limit: u32,
    ) -> Result<(Vec<crate::queue::notify::Notification>, u64), StorageError> {
        let rows = sqlx::query(super::rows::NOTIFY_TAKE)
            .bind(target)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        let notes = rows
            .iter()
            .map(super::rows::notification_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let dropped: Option<i64> = sqlx::query_scalar(super::rows::NOTIFY_DROPPED)
            .bind(target)
            .fetch_optional(&self.reader)
            .await?;
        Ok((notes, dropped.unwrap_or(0).max(0) as u64))
    }

    async fn notify_done(
        &self,
        target: &str,
        ids: &[i64],
        dropped: u64,
    ) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        for chunk in ids.chunks(super::rows::IN_CHUNK) {
            let sql = format!(
                "DELETE FROM notifications WHERE target = ? AND id IN ({})",
                super::rows::placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(target);
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
        if dropped > 0 {
            sqlx::query(super::rows::NOTIFY_UNDROP)
                .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn state_list(
        &self,
        backend: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StorageError> {
        Ok(sqlx::query_as(super::rows::STATE_LIST)
            .bind(backend)
            .bind(prefix.chars().count() as i64)
            .bind(prefix)
            .fetch_all(&self.reader)
            .await?)
    }

    async fn state_delete(&self, backend: &str, key: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(super::rows::STATE_DELETE)
            .bind(backend)
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn state_get(&self, backend: &str, key: &str) -> Result<Option<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM stream_state WHERE backend = ? AND key = ?")
                .bind(backend)
                .bind(key)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn state_set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        now: i64,
        quota: Option<&StateQuota>,
    ) -> Result<(), StorageError> {
        let mut tx = self.writer.begin_with(BEGIN).await?;
        if let Some(quota) = quota {
            // Usage of the quota's keys as they will be after this write
            // (a prefix compared as text, whatever the collation).
            let (keys, bytes): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(CAST(value AS BLOB))), 0) FROM stream_state WHERE backend = ? AND SUBSTR(key, 1, CAST(? AS INTEGER)) = ?")
                .bind(backend)
                .bind(quota.prefix.chars().count() as i64)
                .bind(&quota.prefix)
                .fetch_one(&mut *tx)
                .await?;
            let old: Option<(i64,)> = sqlx::query_as("SELECT LENGTH(CAST(value AS BLOB)) FROM stream_state WHERE backend = ? AND key = ?")
                .bind(backend)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            quota.check_write(
                backend,
                key,
                value,
                (keys.max(0) as u64, bytes.max(0) as u64),
                old.map(|(len,)| len.max(0) as u64),
            )?;
        }
        sqlx::query(
            "INSERT INTO stream_state (backend, key, value, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (backend, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(backend)
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn bump_generation(tx: &mut Transaction<'_, Sqlite>) -> Result<(), StorageError> {
    sqlx::query("UPDATE registry_generation SET value = value + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Record writes inside a transaction: the rows they touch read up front,
/// the outcomes planned in Rust, the rows written with a few multi-row
/// statements (`storage::put`); a refused write writes nothing and leaves
/// the others in place.
async fn put_many_in(
    tx: &mut Transaction<'_, Sqlite>,
    writes: &[RecordWrite],
    now: i64,
) -> Result<Vec<PutOutcome>, StorageError> {
    super::put::put_many!(tx, writes, now, |sql: String| sql)
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

/// Bind inside a transaction; `Rejected` when either id is bound to another.
async fn bind_in(
    tx: &mut Transaction<'_, Sqlite>,
    backend: &str,
    model: &str,
    external_id: &str,
    local_id: &str,
    sync_date: i64,
    synced: Option<&str>,
) -> Result<(), StorageError> {
    let other: Option<(String, String)> = sqlx::query_as(
        "SELECT external_id, local_id FROM bindings
         WHERE backend = ? AND model = ? AND (external_id = ? OR local_id = ?)
           AND NOT (external_id = ? AND local_id = ?)",
    )
    .bind(backend)
    .bind(model)
    .bind(external_id)
    .bind(local_id)
    .bind(external_id)
    .bind(local_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((ext, loc)) = other {
        return Err(StorageError::Rejected(format!(
            "{model} on {backend}: external id {ext} is already bound to local id {loc}; cannot bind {external_id} ↔ {local_id}"
        )));
    }
    sqlx::query(
        "INSERT INTO bindings (backend, model, external_id, local_id, sync_date, synced) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (backend, model, external_id) DO UPDATE SET sync_date = excluded.sync_date,
             synced = COALESCE(excluded.synced, bindings.synced)",
    )
    .bind(backend)
    .bind(model)
    .bind(external_id)
    .bind(local_id)
    .bind(sync_date)
    .bind(synced)
    .execute(&mut **tx)
    .await?;
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
