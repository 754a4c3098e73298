//! The node registry, the schema version and `db copy`'s reads.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Type};

use super::{Dialect, SqlStorage, Value};
use crate::storage::{NodeInfo, StorageError};

/// name, version, host, started, heartbeat, stopped, jobs held.
type NodeRow = (String, String, String, i64, i64, Option<i64>, i64);

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
    pub(crate) async fn node_beat(&self, node: &NodeInfo) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO nodes (name, version, host, started_at, heartbeat_at, stopped_at)
             VALUES ($1, $2, $3, $4, $5, NULL)
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

    pub(crate) async fn node_stopped(&self, name: &str, now: i64) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE nodes SET stopped_at = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn nodes(&self) -> Result<Vec<NodeInfo>, StorageError> {
        let rows: Vec<NodeRow> = sqlx::query_as(
            "SELECT n.name, n.version, n.host, n.started_at, n.heartbeat_at, n.stopped_at,
                    (SELECT COUNT(*) FROM jobs j WHERE j.node = n.name AND j.state IN ('enqueued', 'started'))
             FROM nodes n ORDER BY n.name",
        )
        .fetch_all(self.d.reader())
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
}
