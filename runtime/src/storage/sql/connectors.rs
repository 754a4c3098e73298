//! Installed connector components, their activations and the registry generation.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::{Affected, Dialect, SqlStorage, Value};
use crate::storage::{InstalledConnector, StorageError};

/// digest, name, version, backend kind and versions, manifest, installed
/// at, active.
type ConnectorRow = (String, String, String, String, String, String, i64, bool);

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
    pub(crate) async fn install_connector(
        &self,
        c: &InstalledConnector,
        component: &[u8],
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "INSERT INTO connectors (digest, name, version, backend_kind, backend_versions, manifest, component, active, installed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8) ON CONFLICT (digest) DO NOTHING",
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

    pub(crate) async fn connectors(&self) -> Result<Vec<InstalledConnector>, StorageError> {
        let rows: Vec<ConnectorRow> = sqlx::query_as(
            "SELECT digest, name, version, backend_kind, backend_versions, manifest, installed_at, active
             FROM connectors ORDER BY name, installed_at",
        )
        .fetch_all(self.d.reader())
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

    pub(crate) async fn connector_component(
        &self,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT component FROM connectors WHERE digest = $1")
                .bind(digest)
                .fetch_optional(self.d.reader())
                .await?,
        )
    }

    pub(crate) async fn remove_connector(&self, digest: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM connectors WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM connector_activations WHERE digest = $1")
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        Self::bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    pub(crate) async fn activate_connector(
        &self,
        digest: &str,
        now: i64,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM connectors WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(name) = name else {
            return Ok(false);
        };
        sqlx::query("UPDATE connectors SET active = (digest = $1) WHERE name = $2")
            .bind(digest)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO connector_activations (name, digest, at) VALUES ($1, $2, $3)")
            .bind(&name)
            .bind(digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Self::bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn rollback_connector(
        &self,
        name: &str,
        _now: i64,
    ) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin().await?;
        let current: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, digest FROM connector_activations
             WHERE name = $1 AND NOT rolled_back ORDER BY seq DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, digest)) = current else {
            return Ok(None);
        };
        let previous: Option<(i64, String)> = sqlx::query_as(
            "SELECT a.seq, a.digest FROM connector_activations a
             WHERE a.name = $1 AND NOT a.rolled_back AND a.seq < $2 AND a.digest <> $3
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
        sqlx::query(
            "UPDATE connector_activations SET rolled_back = TRUE WHERE name = $1 AND seq > $2",
        )
        .bind(name)
        .bind(back_to)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE connectors SET active = (digest = $1) WHERE name = $2")
            .bind(&previous)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Self::bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(previous))
    }

    pub(crate) async fn registry_generation(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM registry_generation WHERE id = 1")
                .fetch_one(self.d.reader())
                .await?,
        )
    }

    pub(crate) async fn bump_generation(
        tx: &mut Transaction<'_, D::Db>,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE registry_generation SET value = value + 1 WHERE id = 1")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
