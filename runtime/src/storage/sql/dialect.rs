//! [`Dialect`]: what SQLite and PostgreSQL really do differently, and
//! nothing else. Everything a dialect does not say is written once in the
//! area files next to this one.

use async_trait::async_trait;
use sqlx::{Database, Decode, Encode, Pool, Transaction, Type};

use crate::storage::migrate::Migration;
use crate::storage::types::{Job, JobId};
use crate::storage::{ClaimRequest, StorageError};

/// A value both drivers read and write (a supertrait bundle, so that one
/// bound per type says all three).
pub trait Value<DB: Database>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> {}
impl<DB: Database, T> Value<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>
{
}

/// How many rows a statement changed (each driver answers it its own way).
pub trait Affected {
    fn rows_affected(&self) -> u64;
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// A try that ended done with nothing logged: the batch a completion
/// writes in one statement per dialect.
#[derive(Debug)]
pub struct PlainDone {
    pub id: JobId,
    pub result: Option<String>,
    pub finished_at: i64,
    pub connector_digest: Option<String>,
    /// Set when the job also began in this batch: its start is written
    /// with its end.
    pub started_at: Option<i64>,
}

/// What one database does its own way.
#[async_trait]
pub trait Dialect: Send + Sync + std::fmt::Debug + 'static {
    type Db: Database<QueryResult = Self::Done>;
    /// What a statement that changes rows answers.
    type Done: Affected + Send;

    // --- Connections and transactions.

    /// Connections for reads.
    fn reader(&self) -> &Pool<Self::Db>;
    /// Connections for writes.
    fn writer(&self) -> &Pool<Self::Db>;
    /// Connections for claims: their reads, and their writes.
    fn claims(&self) -> (&Pool<Self::Db>, &Pool<Self::Db>);
    /// The placeholders of statements built at run time (`rows::Params`),
    /// some with thousands of parameters: `$n` on PostgreSQL, positional
    /// `?` on SQLite, whose driver binds numbered ones in quadratic time.
    /// Statements written out use `$n`, which both read.
    const PARAM: &'static str;
    /// How a write transaction starts (SQLite takes the write lock up
    /// front, so that a transaction never has to upgrade it halfway).
    const BEGIN: &'static str;

    // --- SQL that differs.

    /// Job ids bound as one parameter (an array on PostgreSQL, JSON text
    /// on SQLite), so that a statement's text is the same for any number
    /// of ids and is prepared once.
    type Ids: for<'q> Encode<'q, Self::Db> + Type<Self::Db> + Send + Sync + 'static;
    fn ids(ids: &[JobId]) -> Self::Ids;
    /// The condition that `column` is one of the ids bound as `param`.
    fn in_ids(column: &str, param: &str) -> String;
    /// The length in bytes of a text expression (state quotas count
    /// bytes, not characters).
    fn bytes(expr: &str) -> String;
    /// What makes a claim skip rows another node is claiming right now
    /// instead of waiting for them (PostgreSQL's row locks); SQLite's one
    /// writer needs nothing.
    const SKIP_LOCKED: &'static str;
    /// The schema's migrations, oldest first.
    const MIGRATIONS: &'static [Migration];

    // --- Several nodes on one database.

    /// Jobs may have become due in this transaction: tell other nodes
    /// when it commits, where the database can (PostgreSQL's NOTIFY).
    async fn jobs_due(tx: &mut Transaction<'_, Self::Db>) -> Result<(), StorageError>;
    /// Wake-ups when another process may have made jobs due; `None`
    /// means poll (see `Storage::wakeups`).
    async fn wakeups(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        None
    }
    /// Claims that respect limits shared by all nodes take turns, so that
    /// two nodes never both fill a channel's last slot (inside the
    /// claiming transaction; SQLite's write lock already is one).
    async fn claim_turn(_tx: &mut Transaction<'_, Self::Db>) -> Result<(), StorageError> {
        Ok(())
    }
    /// Hold off other nodes migrating the same database at once (inside
    /// the migrating transaction).
    async fn migration_lock(_tx: &mut Transaction<'_, Self::Db>) -> Result<(), StorageError> {
        Ok(())
    }
    /// Take leases for a job holder (`job-<id>…`) the database's own way:
    /// `None` when they are rows like any other lease (SQLite); PostgreSQL
    /// keeps them as advisory locks, which a node that goes away frees at
    /// once. Outside any transaction.
    async fn lock_job(
        &self,
        _keys: &[String],
        _holder: &str,
        _now: i64,
        _until: i64,
    ) -> Result<Option<Vec<bool>>, StorageError> {
        Ok(None)
    }
    /// Give back leases [`Dialect::lock_job`] took; `false` when job
    /// leases are rows here.
    async fn unlock_job(&self, _keys: &[String], _holder: &str) -> Result<bool, StorageError> {
        Ok(false)
    }

    // --- Hot paths each database does its own way.

    /// `Storage::claim_next` in one statement, where the database can;
    /// `None` to have it done as candidates, then claim.
    async fn claim_next(&self, _request: &ClaimRequest) -> Result<Option<Vec<Job>>, StorageError> {
        Ok(None)
    }
    /// Mark claimed jobs started (id, start time), in one go.
    async fn mark_started(
        tx: &mut Transaction<'_, Self::Db>,
        begun: &[(JobId, i64)],
    ) -> Result<(), StorageError>;
    /// Finish jobs done with nothing logged, in one go; the ids of those
    /// that were still claimed or running (the others finished elsewhere).
    async fn finish_plain(
        tx: &mut Transaction<'_, Self::Db>,
        done: &[PlainDone],
    ) -> Result<Vec<JobId>, StorageError>;
    /// Fold the job counts the triggers keep (see `Storage::compact_counts`):
    /// SQLite's one writer updates a row per channel and state in place,
    /// PostgreSQL's concurrent writers append deltas.
    async fn compact_counts(&self) -> Result<(), StorageError>;
    /// After `db copy` loaded every table, before it commits (PostgreSQL's
    /// serial ids continue after the copied ones).
    async fn after_copy(_tx: &mut Transaction<'_, Self::Db>) -> Result<(), StorageError> {
        Ok(())
    }
}
