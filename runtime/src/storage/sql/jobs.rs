//! Reading jobs: one, a filtered page, counts, logs, audit, dependencies, a record's jobs, the queue's lag, and purging finished ones.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::{Affected, Dialect, PlainDone, SqlStorage, Value};
use crate::queue::job::{
    Acted, Completion, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine,
    JobState, NewJob, Outcome, Parent,
};
use crate::storage::rows::{JOB_COLUMNS, Params, job_from_row, like_prefix};
use crate::storage::{ClaimRequest, StateCount, StorageError};

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
        let mut params = Params::default();
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
            crate::storage::rows::job_filter(&filter, &mut Params::default());
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
                    entry: crate::capabilities::egress::AuditEntry {
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
        scope: &crate::queue::retention::PurgeScope,
    ) -> Result<u64, StorageError> {
        let (sql, values) = crate::storage::rows::purge(scope, before, batch);
        let query = crate::storage::rows::bind_values(sqlx::query(&sql), values);
        let mut tx = self.d.begin().await?;
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
        let sql = crate::storage::rows::record_jobs(keys.len());
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
        let mut tx = self.d.begin().await?;
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
                        let mut p = Params::default();
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

    pub(crate) async fn requeue_expired(&self, now: i64) -> Result<Vec<JobId>, StorageError> {
        let mut tx = self.d.begin().await?;
        let message = "the node running this job stopped renewing its lease (crashed or was killed); the try counts";
        let failed: Vec<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'failed', tries = tries + 1, error_kind = 'lease-expired',
                 error_message = $1, finished_at = $2, lease_until = NULL
             WHERE state = 'started' AND lease_until < $3
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
                 error_message = CASE WHEN state = 'started' THEN $1 ELSE error_message END,
                 lease_until = NULL, node = NULL, worker = NULL, eta = $2
             WHERE state IN ('started', 'enqueued') AND lease_until < $3
             RETURNING id",
        )
        .bind(message)
        .bind(now)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        D::jobs_due(&mut tx).await?;
        tx.commit().await?;
        requeued.extend(failed);
        Ok(requeued)
    }

    pub(crate) async fn release(
        &self,
        node: &str,
        ids: &[JobId],
        _now: i64,
    ) -> Result<(), StorageError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.d.begin().await?;
        let sql = format!(
            "UPDATE jobs SET state = 'pending', lease_until = NULL, node = NULL, worker = NULL, started_at = NULL
             WHERE node = $1 AND state IN ('started', 'enqueued') AND id IN ({})",
            Params::after(1).list(ids.len())
        );
        let mut query = sqlx::query(&sql).bind(node);
        for id in ids {
            query = query.bind(id);
        }
        query.execute(&mut *tx).await?;
        D::jobs_due(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn act(
        &self,
        action: JobAction,
        ids: &[JobId],
        now: i64,
    ) -> Result<Acted, StorageError> {
        let mut tx = self.d.begin().await?;
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

    /// Ready candidates for a claim, in run order (see `Storage::candidates`).
    pub(crate) async fn candidates(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<(JobId, String)>, StorageError> {
        let mut p = Params::after(1);
        let mut sql =
            String::from("SELECT id, channel FROM jobs WHERE state = 'pending' AND eta <= $1");
        // A full channel blocks itself and everything under it.
        for _ in &request.full_channels {
            sql.push_str(&format!(
                " AND channel != {} AND channel NOT LIKE {} ESCAPE '\\'",
                p.next(),
                p.next()
            ));
        }
        // A sequential channel with a failed job stops until an operator acts.
        if !request.sequential_channels.is_empty() {
            sql.push_str(&format!(
                " AND channel NOT IN (SELECT DISTINCT channel FROM jobs WHERE state = 'failed' AND channel IN ({}))",
                p.list(request.sequential_channels.len())
            ));
        }
        // A backend holding its share of this node's claims sits this out.
        if !request.held_backends.is_empty() {
            sql.push_str(&format!(
                " AND (backend IS NULL OR backend NOT IN ({}))",
                p.list(request.held_backends.len())
            ));
        }
        sql.push_str(&format!(" ORDER BY priority, eta, id LIMIT {}", p.next()));
        let mut query = sqlx::query(&sql).bind(request.now);
        for channel in &request.full_channels {
            query = query
                .bind(channel.clone())
                .bind(like_prefix(&format!("{channel}.")));
        }
        for channel in &request.sequential_channels {
            query = query.bind(channel.clone());
        }
        for backend in &request.held_backends {
            query = query.bind(backend.clone());
        }
        let rows = query
            .bind(i64::from(request.limit))
            .fetch_all(self.d.claims())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("channel")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Extend the lease of running jobs held by `node`.
    pub(crate) async fn heartbeat(
        &self,
        node: &str,
        ids: &[JobId],
        lease_until: i64,
    ) -> Result<(), StorageError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "UPDATE jobs SET lease_until = $1 WHERE node = $2 AND state IN ('started', 'enqueued') AND {}",
            D::in_ids("id", "$3")
        ))
        .bind(lease_until)
        .bind(node)
        .bind(D::ids(ids))
        .execute(self.d.writer())
        .await?;
        Ok(())
    }

    /// Jobs are done: their dependents count them off, and those with no
    /// parent left to wait for become pending. One statement for the batch.
    pub(crate) async fn release_children(
        tx: &mut Transaction<'_, D::Db>,
        parents: &[JobId],
    ) -> Result<(), StorageError> {
        if parents.is_empty() {
            return Ok(());
        }
        let parent = D::in_ids("d.parent", "$1");
        let released = sqlx::query(&format!(
            "UPDATE jobs SET
                 pending_parents = pending_parents - (SELECT COUNT(*) FROM job_dependencies d
                                                     WHERE d.child = jobs.id AND {parent}),
                 state = CASE WHEN state = 'wait_dependencies'
                                   AND pending_parents - (SELECT COUNT(*) FROM job_dependencies d
                                                          WHERE d.child = jobs.id AND {parent}) <= 0
                              THEN 'pending' ELSE state END
             WHERE id IN (SELECT d.child FROM job_dependencies d WHERE {parent})"
        ))
        .bind(D::ids(parents))
        .execute(&mut **tx)
        .await?;
        if released.rows_affected() > 0 {
            D::jobs_due(tx).await?;
        }
        Ok(())
    }

    /// Record finished tries and mark begun jobs started, in one
    /// transaction (see `Storage::complete`).
    pub(crate) async fn complete(
        &self,
        completions: &[Completion],
        begun: &[(JobId, i64)],
    ) -> Result<(), StorageError> {
        let mut tx = self.d.begin().await?;
        // A job that started and finished within one batch is written once
        // (its start time goes with its outcome): a write fewer per fast
        // job (on PostgreSQL, a row version fewer).
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
            D::mark_started(&mut tx, &begun).await?;
        }
        // The common case — done, nothing logged — is written for the
        // whole batch at once, the dialect's way.
        let (plain, rest): (Vec<&Completion>, Vec<&Completion>) =
            completions.iter().partition(|c| plain_done(c));
        let plain: Vec<PlainDone> = plain
            .iter()
            .map(|c| {
                let Outcome::Done { result } = &c.outcome else {
                    unreachable!("partitioned")
                };
                PlainDone {
                    id: c.id,
                    result: result.clone(),
                    finished_at: c.finished_at,
                    connector_digest: c.connector_digest.clone(),
                    started_at: finishing.get(&c.id).copied(),
                }
            })
            .collect();
        let finished = if plain.is_empty() {
            Vec::new()
        } else {
            D::finish_plain(&mut tx, &plain).await?
        };
        Self::release_children(&mut tx, &finished).await?;
        for c in rest {
            let tries: Option<i64> = sqlx::query_scalar(
                "SELECT tries FROM jobs WHERE id = $1 AND state IN ('started', 'enqueued')",
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
                        "UPDATE jobs SET state = 'done', tries = $1, result = $2, error_kind = NULL,
                             error_message = NULL, finished_at = $3, lease_until = NULL, connector_digest = $4
                         WHERE id = $5",
                    )
                    .bind(try_number)
                    .bind(result)
                    .bind(c.finished_at)
                    .bind(&c.connector_digest)
                    .bind(c.id)
                    .execute(&mut *tx)
                    .await?;
                    Self::release_children(&mut tx, &[c.id]).await?;
                }
                Outcome::Retry {
                    eta,
                    count_try,
                    kind,
                    message,
                } => {
                    let tries = if *count_try { try_number } else { tries };
                    sqlx::query(
                        "UPDATE jobs SET state = 'pending', tries = $1, eta = $2, error_kind = $3, error_message = $4,
                             lease_until = NULL, node = NULL, worker = NULL, connector_digest = $5
                         WHERE id = $6",
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
                        "UPDATE jobs SET state = 'failed', tries = $1, error_kind = $2, error_message = $3,
                             finished_at = $4, lease_until = NULL, connector_digest = $5
                         WHERE id = $6",
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
                    "SELECT COALESCE(MAX(seq), 0) FROM (SELECT seq FROM job_logs WHERE job_id = $1
                     UNION ALL SELECT seq FROM job_http_audit WHERE job_id = $2) AS s",
                )
                .bind(c.id)
                .bind(c.id)
                .fetch_one(&mut *tx)
                .await?;
                for line in &c.log {
                    seq += 1;
                    sqlx::query(
                        "INSERT INTO job_logs (job_id, seq, try, level, source, message) VALUES ($1, $2, $3, $4, $5, $6)",
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        // A retried job is due again at its eta: other nodes may take it.
        if completions
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Retry { .. }))
        {
            D::jobs_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
