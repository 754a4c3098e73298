//! SQLite's [`Dialect`]: [`Storage`] on an embedded file.
//!
//! What differs from PostgreSQL is here and nothing else (the statements
//! are `storage::sql`'s): one writer connection (SQLite allows one writer; queueing writes in
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
use sqlx::{Sqlite, Transaction};

use super::StorageError;
use super::migrate::{self, Migration};
use super::rows::Params;
use super::sql::{Dialect, PlainDone, SqlStorage};
use crate::storage::types::JobId;

/// [`Storage`] on an embedded SQLite file.
pub type SqliteStorage = SqlStorage<SqliteDialect>;

/// SQLite's [`Dialect`].
#[derive(Debug, Clone)]
pub struct SqliteDialect {
    writer: SqlitePool,
    reader: SqlitePool,
}

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
        let d = SqliteDialect { writer, reader };
        let storage = SqlStorage { d };
        storage.migrate().await?;
        Ok(storage)
    }
}

impl SqliteDialect {}

#[async_trait]
impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Done = sqlx::sqlite::SqliteQueryResult;
    type Ids = String;

    fn ids(ids: &[JobId]) -> String {
        serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
    }

    fn in_ids(column: &str, param: &str) -> String {
        format!("{column} IN (SELECT value FROM json_each({param}))")
    }

    fn reader(&self) -> &sqlx::Pool<Sqlite> {
        &self.reader
    }

    fn claims(&self) -> (&sqlx::Pool<Sqlite>, &sqlx::Pool<Sqlite>) {
        (&self.reader, &self.writer)
    }

    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const PARAM: &'static str = "?";
    const SKIP_LOCKED: &'static str = "";

    fn writer(&self) -> &sqlx::Pool<Sqlite> {
        &self.writer
    }

    async fn jobs_due(_: &mut Transaction<'_, Sqlite>) -> Result<(), StorageError> {
        // No notifications: other processes on the file poll for due jobs.
        Ok(())
    }

    async fn mark_started(
        tx: &mut Transaction<'_, Sqlite>,
        begun: &[(JobId, i64)],
    ) -> Result<(), StorageError> {
        // A VALUES table per chunk: with SQLite, statements are what a
        // transaction pays for.
        for chunk in begun.chunks(400) {
            let sql = format!(
                "UPDATE jobs SET state = 'started', started_at = v.column2 FROM (VALUES {}) AS v
                 WHERE jobs.id = v.column1 AND jobs.state = 'enqueued'",
                Params::new(Self::PARAM).rows(chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (id, at) in chunk {
                query = query.bind(id).bind(at);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn finish_plain(
        tx: &mut Transaction<'_, Sqlite>,
        done: &[PlainDone],
    ) -> Result<Vec<JobId>, StorageError> {
        let mut finished = Vec::with_capacity(done.len());
        for chunk in done.chunks(200) {
            let sql = format!(
                "UPDATE jobs SET state = 'done', tries = tries + 1, result = v.column2, error_kind = NULL,
                     error_message = NULL, finished_at = v.column3, lease_until = NULL, connector_digest = v.column4,
                     started_at = COALESCE(v.column5, jobs.started_at)
                 FROM (VALUES {}) AS v
                 WHERE jobs.id = v.column1 AND jobs.state IN ('started', 'enqueued')
                 RETURNING jobs.id",
                Params::new(Self::PARAM).rows(chunk.len(), 5)
            );
            let mut query = sqlx::query_scalar::<_, i64>(&sql);
            for d in chunk {
                query = query
                    .bind(d.id)
                    .bind(&d.result)
                    .bind(d.finished_at)
                    .bind(&d.connector_digest)
                    .bind(d.started_at);
            }
            finished.extend(query.fetch_all(&mut **tx).await?);
        }
        Ok(finished)
    }

    const MIGRATIONS: &'static [Migration] = migrate::SQLITE;

    fn bytes(expr: &str) -> String {
        format!("LENGTH(CAST({expr} AS BLOB))")
    }

    async fn compact_counts(&self) -> Result<(), StorageError> {
        // One row per channel and state already (the single writer updates
        // them in place); only rows of channels no job uses any more go.
        sqlx::query("DELETE FROM job_counts WHERE n = 0")
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
