//! Bindings: external id ↔ local id per backend and model.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::{Affected, Dialect, SqlStorage, Value};
use crate::storage::rows::{BindingRow, IN_CHUNK, Params, binding_from_row};
use crate::storage::{Binding, StorageError};

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
    pub(crate) async fn binding_to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT local_id FROM bindings WHERE backend = $1 AND model = $2 AND external_id = $3",
        )
        .bind(backend)
        .bind(model)
        .bind(external_id)
        .fetch_optional(self.d.reader())
        .await?)
    }

    pub(crate) async fn binding_to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT external_id FROM bindings WHERE backend = $1 AND model = $2 AND local_id = $3",
        )
        .bind(backend)
        .bind(model)
        .bind(local_id)
        .fetch_optional(self.d.reader())
        .await?)
    }

    pub(crate) async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: i64,
        synced: Option<&str>,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        Self::bind_in(
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

    /// Bind inside a transaction; `Rejected` when either id is bound to another.
    pub(crate) async fn bind_in(
        tx: &mut Transaction<'_, D::Db>,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: i64,
        synced: Option<&str>,
    ) -> Result<(), StorageError> {
        let other: Option<(String, String)> = sqlx::query_as(
            "SELECT external_id, local_id FROM bindings
             WHERE backend = $1 AND model = $2 AND (external_id = $3 OR local_id = $4)
               AND NOT (external_id = $5 AND local_id = $6)",
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
            "INSERT INTO bindings (backend, model, external_id, local_id, sync_date, synced) VALUES ($1, $2, $3, $4, $5, $6)
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

    pub(crate) async fn binding(
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

    pub(crate) async fn bindings_page(
        &self,
        backend: &str,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Binding>, StorageError> {
        let rows: Vec<BindingRow> = sqlx::query_as(
            "SELECT external_id, local_id, sync_date, synced FROM bindings
             WHERE backend = $1 AND model = $2 AND ($3 IS NULL OR external_id > $4)
             ORDER BY external_id LIMIT $5",
        )
        .bind(backend)
        .bind(model)
        .bind(after)
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.d.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| binding_from_row(backend, model, row))
            .collect())
    }

    pub(crate) async fn bindings_of(
        &self,
        backend: &str,
        model: &str,
        external_ids: &[String],
    ) -> Result<Vec<Binding>, StorageError> {
        let mut out = Vec::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(IN_CHUNK) {
            let mut p = Params::new(D::PARAM);
            let (backend_p, model_p) = (p.next(), p.next());
            let sql = format!(
                "SELECT external_id, local_id, sync_date, synced FROM bindings
                 WHERE backend = {backend_p} AND model = {model_p} AND external_id IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query_as::<_, BindingRow>(&sql)
                .bind(backend)
                .bind(model);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(self.d.reader()).await? {
                out.push(binding_from_row(backend, model, row));
            }
        }
        Ok(out)
    }

    pub(crate) async fn binding_of_local(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<Binding>, StorageError> {
        let row: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT external_id, sync_date, synced FROM bindings WHERE backend = $1 AND model = $2 AND local_id = $3",
        )
        .bind(backend)
        .bind(model)
        .bind(local_id)
        .fetch_optional(self.d.reader())
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

    pub(crate) async fn unbind(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let n =
            sqlx::query("DELETE FROM bindings WHERE backend = $1 AND model = $2 AND local_id = $3")
                .bind(backend)
                .bind(model)
                .bind(local_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    pub(crate) async fn binding_counts(
        &self,
        backend: &str,
    ) -> Result<Vec<(String, i64)>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT model, COUNT(*) FROM bindings WHERE backend = $1 GROUP BY model ORDER BY model",
        )
        .bind(backend)
        .fetch_all(self.d.reader())
        .await?)
    }
}
