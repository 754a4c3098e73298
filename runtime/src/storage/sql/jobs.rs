//! Reading jobs: one, a filtered page, counts, logs, audit, dependencies, a record's jobs, the queue's lag, and purging finished ones.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use super::{Affected, Dialect, SqlStorage, Value};
use crate::model::{Event, LocalRecord};
use crate::queue::job::*;
use crate::storage::rows::*;
use crate::storage::*;

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
}
