//! The schema and whole-database moves: migrations (embedded, applied on
//! open in one transaction), the schema version, and `db copy`'s reads
//! and writes.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::{Dialect, SqlStorage, Value};
use crate::storage::migrate;
use crate::storage::{StorageError, copy};

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
    /// Apply the dialect's migrations not applied yet, all in one
    /// transaction: a database is either at the new version or untouched.
    pub(crate) async fn migrate(&self) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        D::migration_lock(&mut tx).await?;
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
        let supported = migrate::latest(D::MIGRATIONS);
        if current > supported {
            return Err(StorageError::SchemaTooNew {
                found: current,
                supported,
            });
        }
        for m in D::MIGRATIONS.iter().filter(|m| m.version > current) {
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
            .bind(crate::storage::types::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn schema_version(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(self.d.reader())
                .await?,
        )
    }

    pub(crate) async fn dump(
        &self,
        table: &copy::Table,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<Vec<copy::Cell>>, StorageError> {
        let sql = table.select();
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(offset)
            .fetch_all(self.d.reader())
            .await?;
        rows.iter()
            .map(|r| copy::cells(r, table).map_err(Into::into))
            .collect()
    }

    /// A transaction that `db copy` writes into.
    pub(crate) async fn loader(&self) -> Result<Box<dyn copy::Loader>, StorageError> {
        Ok(Box::new(SqlLoader::<D> {
            tx: self.begin().await?,
        }))
    }
}

/// `db copy`'s writer: one transaction for the whole copy.
struct SqlLoader<D: Dialect> {
    tx: Transaction<'static, D::Db>,
}

#[async_trait]
impl<D: Dialect> copy::Loader for SqlLoader<D>
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
    async fn load(
        &mut self,
        table: &copy::Table,
        rows: Vec<Vec<copy::Cell>>,
    ) -> Result<(), StorageError> {
        for chunk in rows.chunks(copy::rows_per_insert(table)) {
            let sql = table.insert(D::PARAM, chunk.len());
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
        D::after_copy(&mut self.tx).await?;
        sqlx::query("UPDATE registry_generation SET value = value + 1 WHERE id = 1")
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}
