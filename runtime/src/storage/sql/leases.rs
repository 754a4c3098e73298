//! Leases (`sync_locks`): who may work on a key until when. A job's
//! leases may live elsewhere ([`Dialect::lock_job`]); the rest are rows.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::{Dialect, SqlStorage, Value};
use crate::storage::rows::{IN_CHUNK, Params, holder_attempt, holder_job, like_prefix};
use crate::storage::{StorageError, WriteDone, WriteOp};

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
    /// Take the leases `keys` for `holder` (see `Storage::lock`).
    pub(crate) async fn lock(
        &self,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        if let Some(got) = self.d.lock_job(keys, holder, now, until).await? {
            return Ok(got);
        }
        let mut tx = self.begin().await?;
        let out = Self::lock_in(&mut tx, keys, holder, now, until).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Give leases back (those `holder` still has).
    pub(crate) async fn unlock(&self, keys: &[String], holder: &str) -> Result<(), StorageError> {
        if self.d.unlock_job(keys, holder).await? {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        Self::unlock_in(&mut tx, keys, holder).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lease and record writes in one transaction (see
    /// `Storage::write_batch`).
    pub(crate) async fn write_batch(
        &self,
        ops: &[WriteOp],
    ) -> Result<Vec<WriteDone>, StorageError> {
        // Leases a dialect keeps outside the transaction are given back if
        // the batch's writes fail, as a rolled-back lease row would be.
        let mut taken: Vec<(Vec<String>, &str)> = Vec::new();
        let written = async {
            let mut tx = self.begin().await?;
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(match op {
                    WriteOp::Lock {
                        keys,
                        holder,
                        now,
                        until,
                    } => WriteDone::Locked(
                        match self.d.lock_job(keys, holder, *now, *until).await? {
                            Some(got) => {
                                let granted = keys.iter().zip(&got).filter(|(_, g)| **g);
                                taken.push((granted.map(|(k, _)| k.clone()).collect(), holder));
                                got
                            }
                            None => Self::lock_in(&mut tx, keys, holder, *now, *until).await?,
                        },
                    ),
                    WriteOp::Unlock { keys, holder } => {
                        if !self.d.unlock_job(keys, holder).await? {
                            Self::unlock_in(&mut tx, keys, holder).await?;
                        }
                        WriteDone::Unlocked
                    }
                    WriteOp::Put { writes, now } => {
                        WriteDone::Put(Self::put_many_in(&mut tx, writes, *now).await?)
                    }
                });
            }
            tx.commit().await?;
            Ok::<_, StorageError>(out)
        }
        .await;
        if written.is_err() {
            for (keys, holder) in taken {
                let _ = self.d.unlock_job(&keys, holder).await;
            }
        }
        written
    }

    /// Take lease rows inside a transaction; per key, whether it was taken.
    async fn lock_in(
        tx: &mut Transaction<'_, D::Db>,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let job = holder_job(holder);
        // Another attempt of the same job is gone (a job never runs twice at
        // once): its leases are taken over; this attempt's own concurrent
        // parts (dependency imports) wait for each other.
        let attempt = like_prefix(holder_attempt(holder).unwrap_or(""));
        // One statement per chunk of keys: the keys it returns are the ones
        // taken (inserted, or updated because the lease was free to take).
        let mut taken = std::collections::HashSet::new();
        for chunk in keys.chunks(IN_CHUNK / 2) {
            let mut p = Params::new(D::PARAM);
            let rows = p.rows(chunk.len(), 4);
            let sql = format!(
                "INSERT INTO sync_locks (key, holder, job, until) VALUES {rows}
                 ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, job = excluded.job,
                     until = excluded.until
                 WHERE sync_locks.until < {} OR sync_locks.holder = excluded.holder
                    OR (sync_locks.job = excluded.job AND sync_locks.holder NOT LIKE {} ESCAPE '\\')
                    OR (sync_locks.job IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM jobs WHERE jobs.id = sync_locks.job
                          AND jobs.state IN ('enqueued', 'started')))
                 RETURNING key",
                p.next(),
                p.next()
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for key in chunk {
                q = q.bind(key).bind(holder).bind(job).bind(until);
            }
            taken.extend(q.bind(now).bind(&attempt).fetch_all(&mut **tx).await?);
        }
        Ok(keys.iter().map(|k| taken.contains(k)).collect())
    }

    /// Delete `holder`'s lease rows of `keys` inside a transaction.
    async fn unlock_in(
        tx: &mut Transaction<'_, D::Db>,
        keys: &[String],
        holder: &str,
    ) -> Result<(), StorageError> {
        for chunk in keys.chunks(IN_CHUNK) {
            let mut p = Params::new(D::PARAM);
            let holder_p = p.next();
            let sql = format!(
                "DELETE FROM sync_locks WHERE holder = {holder_p} AND key IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(holder);
            for key in chunk {
                q = q.bind(key);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }
}
