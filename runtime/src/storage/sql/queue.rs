//! The queue's hot paths: claims (candidates, then claim), completions,
//! heartbeats, expired leases and graceful release.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::{Affected, Dialect, PlainDone, SqlStorage, Value};
use crate::storage::rows::{JOB_COLUMNS, Params, job_from_row, like_prefix};
use crate::storage::types::{Completion, Job, JobId, Outcome};
use crate::storage::{ClaimRequest, StorageError};

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
    /// Ready candidates for a claim, in run order (see `Storage::candidates`).
    pub(crate) async fn candidates(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<(JobId, String)>, StorageError> {
        let mut p = Params::new(D::PARAM);
        let mut sql = format!(
            "SELECT id, channel FROM jobs WHERE state = 'pending' AND eta <= {}",
            p.next()
        );
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
            .fetch_all(self.d.claims().0)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("channel")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Claim these pending jobs (see `Storage::claim`).
    pub(crate) async fn claim(
        &self,
        ids: &[JobId],
        request: &ClaimRequest,
    ) -> Result<Vec<Job>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pool = self.d.claims().1;
        // Rows another node is claiming right now are skipped rather than
        // waited for (PostgreSQL): it will have them, this node the rest.
        let update = format!(
            "UPDATE jobs SET state = 'enqueued', started_at = NULL, lease_until = $1, node = $2, worker = $3
             WHERE id IN (SELECT id FROM jobs WHERE {} AND state = 'pending' {})
             RETURNING {JOB_COLUMNS}",
            D::in_ids("id", "$4"),
            D::SKIP_LOCKED
        );
        let rows = if request.shared_limits.is_empty() {
            // One statement, no explicit transaction: two round trips fewer.
            sqlx::query(&update)
                .bind(request.lease_until)
                .bind(&request.node)
                .bind(&request.worker)
                .bind(D::ids(ids))
                .fetch_all(pool)
                .await?
        } else {
            let mut tx = pool.begin_with(D::BEGIN).await?;
            // Shared limits count every node's running jobs: the count and
            // the claim are one step (SQLite's write lock; PostgreSQL's
            // claims take turns).
            D::claim_turn(&mut tx).await?;
            let mut pending: Vec<(i64, String)> = sqlx::query_as(&format!(
                "SELECT id, channel FROM jobs WHERE {} AND state = 'pending'",
                D::in_ids("id", "$1")
            ))
            .bind(D::ids(ids))
            .fetch_all(&mut *tx)
            .await?;
            pending.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
            let running: Vec<(String, i64)> = sqlx::query_as(
                "SELECT channel, COUNT(*) FROM jobs WHERE state IN ('enqueued', 'started') GROUP BY channel",
            )
            .fetch_all(&mut *tx)
            .await?;
            let admitted = crate::storage::admit(&pending, &running, &request.shared_limits);
            if admitted.is_empty() {
                return Ok(Vec::new());
            }
            let rows = sqlx::query(&update)
                .bind(request.lease_until)
                .bind(&request.node)
                .bind(&request.worker)
                .bind(D::ids(&admitted))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        };
        rows.iter()
            .map(|r| job_from_row(r).map_err(Into::into))
            .collect()
    }

    /// Record finished tries and mark begun jobs started, in one
    /// transaction (see `Storage::complete`).
    pub(crate) async fn complete(
        &self,
        completions: &[Completion],
        begun: &[(JobId, i64)],
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
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

    pub(crate) async fn requeue_expired(&self, now: i64) -> Result<Vec<JobId>, StorageError> {
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
        let mut p = Params::new(D::PARAM);
        let node_p = p.next();
        let sql = format!(
            "UPDATE jobs SET state = 'pending', lease_until = NULL, node = NULL, worker = NULL, started_at = NULL
             WHERE node = {node_p} AND state IN ('started', 'enqueued') AND id IN ({})",
            p.list(ids.len())
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
}
