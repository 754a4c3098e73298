//! Backends' configuration, state, circuit breakers and pauses.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Type};

use super::{Affected, Dialect, SqlStorage, Value};
use crate::storage::{
    OpenBreaker, RemoveBackend, RemovedBackend, StateQuota, StorageError, StoredBackend,
};

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
    pub(crate) async fn put_backend(
        &self,
        name: &str,
        kind: &str,
        version: &str,
        config: &str,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO backends (name, kind, version, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
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
        Self::bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn backends(&self) -> Result<Vec<StoredBackend>, StorageError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, config, updated_at FROM backends ORDER BY name")
                .fetch_all(self.d.reader())
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

    pub(crate) async fn remove_backend(
        &self,
        name: &str,
        how: RemoveBackend,
        now: i64,
    ) -> Result<Option<RemovedBackend>, StorageError> {
        let mut tx = self.begin().await?;
        let found: Option<String> = sqlx::query_scalar("SELECT name FROM backends WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let mut removed = RemovedBackend::default();
        if how.cancel_jobs {
            // Its unfinished jobs and, transitively, the jobs depending on them.
            let ids: Vec<i64> = sqlx::query_scalar(&crate::storage::rows::cancel_tree(
                crate::storage::rows::BACKEND_UNFINISHED,
            ))
            .bind(name)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            removed.cancelled_jobs = ids.len() as u64;
        } else {
            let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE backend = $1 AND state NOT IN ('done', 'cancelled', 'failed')")
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
            removed.bindings = sqlx::query("DELETE FROM bindings WHERE backend = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            removed.state_keys = sqlx::query("DELETE FROM stream_state WHERE backend = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query("DELETE FROM backends WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Self::bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(removed))
    }

    pub(crate) async fn state_get(
        &self,
        backend: &str,
        key: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM stream_state WHERE backend = $1 AND key = $2")
                .bind(backend)
                .bind(key)
                .fetch_optional(self.d.reader())
                .await?,
        )
    }

    pub(crate) async fn state_list(
        &self,
        backend: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StorageError> {
        Ok(sqlx::query_as(crate::storage::rows::STATE_LIST)
            .bind(backend)
            .bind(prefix.chars().count() as i64)
            .bind(prefix)
            .fetch_all(self.d.reader())
            .await?)
    }

    pub(crate) async fn state_delete(
        &self,
        backend: &str,
        key: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(crate::storage::rows::STATE_DELETE)
            .bind(backend)
            .bind(key)
            .execute(self.d.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn state_set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        now: i64,
        quota: Option<&StateQuota>,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        if let Some(quota) = quota {
            // Usage of the quota's keys as they will be after this write
            // (a prefix compared as text, whatever the collation).
            let (keys, bytes): (i64, i64) = sqlx::query_as(&format!(
                "SELECT COUNT(*), CAST(COALESCE(SUM({} + {}), 0) AS BIGINT) FROM stream_state \
                 WHERE backend = $1 AND SUBSTR(key, 1, CAST($2 AS INTEGER)) = $3",
                D::bytes("key"),
                D::bytes("value")
            ))
            .bind(backend)
            .bind(quota.prefix.chars().count() as i64)
            .bind(&quota.prefix)
            .fetch_one(&mut *tx)
            .await?;
            let old: Option<(i64,)> = sqlx::query_as(&format!(
                "SELECT CAST({} AS BIGINT) FROM stream_state WHERE backend = $1 AND key = $2",
                D::bytes("value")
            ))
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
            "INSERT INTO stream_state (backend, key, value, updated_at) VALUES ($1, $2, $3, $4)
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

    pub(crate) async fn open_breaker(&self, b: &OpenBreaker) -> Result<bool, StorageError> {
        let done = sqlx::query(crate::storage::rows::OPEN_BREAKER)
            .bind(&b.backend)
            .bind(b.failures)
            .bind(&b.reason)
            .bind(b.opened_at)
            .bind(b.retry_at)
            .bind(b.cool_down)
            .execute(self.d.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn breakers(&self) -> Result<Vec<OpenBreaker>, StorageError> {
        let rows: Vec<crate::storage::rows::BreakerRow> =
            sqlx::query_as(crate::storage::rows::BREAKERS)
                .fetch_all(self.d.reader())
                .await?;
        Ok(rows
            .into_iter()
            .map(crate::storage::rows::breaker_from_row)
            .collect())
    }

    pub(crate) async fn breaker_probe_failed(
        &self,
        backend: &str,
        reason: &str,
        now: i64,
        max_cool_down: i64,
    ) -> Result<(), StorageError> {
        sqlx::query(crate::storage::rows::BREAKER_PROBE_FAILED)
            .bind(max_cool_down)
            .bind(max_cool_down)
            .bind(reason)
            .bind(now)
            .bind(max_cool_down)
            .bind(max_cool_down)
            .bind(backend)
            .execute(self.d.writer())
            .await?;
        Ok(())
    }

    pub(crate) async fn close_breaker(&self, backend: &str) -> Result<bool, StorageError> {
        let done = sqlx::query(crate::storage::rows::CLOSE_BREAKER)
            .bind(backend)
            .execute(self.d.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn set_paused(
        &self,
        kind: &str,
        name: &str,
        paused: bool,
        now: i64,
    ) -> Result<bool, StorageError> {
        let done = if paused {
            sqlx::query(crate::storage::rows::PAUSE)
                .bind(kind)
                .bind(name)
                .bind(now)
                .execute(self.d.writer())
                .await?
        } else {
            sqlx::query(crate::storage::rows::RESUME)
                .bind(kind)
                .bind(name)
                .execute(self.d.writer())
                .await?
        };
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn paused(&self) -> Result<Vec<(String, String, i64)>, StorageError> {
        Ok(sqlx::query_as(crate::storage::rows::PAUSED)
            .fetch_all(self.d.reader())
            .await?)
    }
}
