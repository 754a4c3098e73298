//! Jobs: enqueueing (with dependencies and identity keys), operators'
//! actions, reads (one, a filtered page, counts, logs, audit,
//! dependencies, a record's jobs, the queue's lag) and purging.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::{Affected, Dialect, SqlStorage, Value};
use crate::storage::rows::{JOB_COLUMNS, Params, job_from_row};
use crate::storage::types::{
    Acted, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine, JobState, NewJob,
    Parent,
};
use crate::storage::{StateCount, StorageError};

impl<D: Dialect> SqlStorage<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'c> &'c Pool<D::Db>: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    for<'c> &'c str: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    i32: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    String: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Vec<u8>: Value<D::Db>,
    Option<Vec<u8>>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q String: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q Option<String>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
{
    pub(crate) async fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.d.reader())
            .await?;
        row.map(|r| job_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    pub(crate) async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StorageError> {
        let mut params = Params::new(D::PARAM);
        let (conditions, values) = crate::storage::rows::job_filter(filter, &mut params);
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1{conditions} ORDER BY id DESC LIMIT {}",
            params.next()
        );
        let query = crate::storage::rows::bind_values(sqlx::query(&sql), values);
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(self.d.reader())
            .await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    pub(crate) async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StorageError> {
        let filter = JobFilter {
            before: None,
            ..filter.clone()
        };
        let (conditions, values) =
            crate::storage::rows::job_filter(&filter, &mut Params::new(D::PARAM));
        let sql = format!("SELECT COUNT(*) FROM jobs WHERE 1 = 1{conditions}");
        let query = crate::storage::rows::bind_values(sqlx::query(&sql), values);
        let count: i64 = query.fetch_one(self.d.reader()).await?.try_get(0)?;
        Ok(count.max(0) as u64)
    }

    pub(crate) async fn job_log(&self, id: JobId) -> Result<Vec<JobLogLine>, StorageError> {
        let rows = sqlx::query(
            "SELECT try, level, source, message FROM job_logs WHERE job_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.d.reader())
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

    pub(crate) async fn job_audit(&self, id: JobId) -> Result<Vec<JobAuditEntry>, StorageError> {
        let rows = sqlx::query(
            "SELECT try, method, scheme, host, port, path, status, denied, error, request_bytes,
                    response_bytes, duration_ms
             FROM job_http_audit WHERE job_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.d.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobAuditEntry {
                    try_number: r.try_get::<i64, _>("try")? as u32,
                    entry: crate::storage::types::AuditEntry {
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

    pub(crate) async fn parents(&self, id: JobId) -> Result<Vec<JobId>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT parent FROM job_dependencies WHERE child = $1 ORDER BY parent",
        )
        .bind(id)
        .fetch_all(self.d.reader())
        .await?)
    }

    pub(crate) async fn children(&self, id: JobId) -> Result<Vec<JobId>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT child FROM job_dependencies WHERE parent = $1 ORDER BY child",
        )
        .bind(id)
        .fetch_all(self.d.reader())
        .await?)
    }

    pub(crate) async fn oldest_due(&self, now: i64) -> Result<Vec<(String, i64)>, StorageError> {
        Ok(sqlx::query_as(crate::storage::rows::OLDEST_DUE)
            .bind(now)
            .bind(now)
            .fetch_all(self.d.reader())
            .await?)
    }

    pub(crate) async fn counts(&self) -> Result<Vec<StateCount>, StorageError> {
        let rows = sqlx::query(crate::storage::rows::COUNTS)
            .fetch_all(self.d.reader())
            .await?;
        rows.iter()
            .map(crate::storage::rows::state_count_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub(crate) async fn purge(
        &self,
        before: i64,
        batch: u32,
        scope: &crate::storage::types::PurgeScope,
    ) -> Result<u64, StorageError> {
        let (sql, values) = crate::storage::rows::purge(D::PARAM, scope, before, batch);
        let query = crate::storage::rows::bind_values(sqlx::query(&sql), values);
        let mut tx = self.begin().await?;
        let done = query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn live_jobs(&self, backend: &str, up_to: u64) -> Result<u64, StorageError> {
        // Bounded: a backend far over its quota costs no more to check.
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE backend = $1 AND backend IS NOT NULL
               AND state IN ('wait_dependencies', 'pending', 'enqueued', 'started') LIMIT $2) AS live",
        )
        .bind(backend)
        .bind(i64::try_from(up_to.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_one(self.d.reader())
        .await?;
        Ok(n as u64)
    }

    pub(crate) async fn record_jobs(
        &self,
        model: &str,
        local_id: &str,
        external: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<Job>, StorageError> {
        let keys = crate::storage::rows::record_keys(model, local_id, external);
        let sql = crate::storage::rows::record_jobs(D::PARAM, keys.len());
        let mut query = sqlx::query(&sql);
        for key in &keys {
            query = query.bind(key);
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(self.d.reader())
            .await?;
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    pub(crate) async fn enqueue(
        &self,
        jobs: &[NewJob],
        now: i64,
    ) -> Result<Vec<Enqueued>, StorageError> {
        let mut tx = self.begin().await?;
        let out = Self::enqueue_in(&mut tx, jobs, now).await?;
        D::jobs_due(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Insert a batch of jobs inside an open transaction (shared by enqueue and
    /// event dispatch, so an event's jobs commit with its processed mark).
    pub(crate) async fn enqueue_in(
        tx: &mut Transaction<'_, D::Db>,
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
                    {
                        let mut p = Params::new(D::PARAM);
                        (0..chunk.len())
                            .map(|_| {
                                let [a, b, c] = [p.next(), p.next(), p.next()];
                                format!("({a}, {b}, {c}, 'pending', {})", p.list(7))
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
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
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
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
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
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
                            "INSERT INTO job_dependencies (parent, child) VALUES ($1, $2) ON CONFLICT DO NOTHING",
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
                        "SELECT id FROM jobs WHERE identity_key = $1
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

    pub(crate) async fn act(
        &self,
        action: JobAction,
        ids: &[JobId],
        now: i64,
    ) -> Result<Acted, StorageError> {
        let mut tx = self.begin().await?;
        let mut acted = Acted::default();
        for &id in ids {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
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
                    let tree: Vec<i64> =
                        sqlx::query_scalar(&crate::storage::rows::cancel_tree("SELECT $1"))
                            .bind(id)
                            .bind(now)
                            .fetch_all(&mut *tx)
                            .await?;
                    acted.changed.extend(tree);
                }
                JobAction::Requeue => {
                    let waiting: i64 = sqlx::query_scalar(crate::storage::rows::UNDONE_PARENTS)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(crate::storage::rows::REQUEUE)
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
                    sqlx::query(crate::storage::rows::MARK_DONE)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    Self::release_children(&mut tx, &[id]).await?;
                    acted.changed.push(id);
                }
                JobAction::Discard => {
                    sqlx::query(crate::storage::rows::DISCARD)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    acted.changed.push(id);
                    let tree: Vec<i64> = sqlx::query_scalar(&crate::storage::rows::cancel_tree(
                        crate::storage::rows::DEPENDENTS,
                    ))
                    .bind(id)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                    acted.changed.extend(tree);
                }
            }
        }
        if action == JobAction::Requeue && !acted.changed.is_empty() {
            D::jobs_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(acted)
    }
}
