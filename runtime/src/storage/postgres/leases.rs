//! Leases held by jobs (the synchronizer's per-record leases, holders
//! named `job-<id>…`) on PostgreSQL, as session-level advisory locks held
//! on one connection of this node's own. Leases of other holders (a
//! schedule's period) must outlive the process that took them and stay
//! rows of `sync_locks`.
//!
//! A lease is a lock in PostgreSQL's lock table, not a row: taking and
//! giving one back writes nothing to disk, and when a node dies its
//! connection closes and every lease it held is free at once, without
//! waiting for `until` or for the reaper to requeue its jobs. Advisory
//! locks know no holder inside a session, so the node keeps the holders
//! itself (two jobs of one node must not both hold a record) and with them
//! `Storage::lock`'s rules: the holder (or a later try of its job) may take
//! a lease again, a lease
//! lapses at `until`, and a job's lease lapses once that job is no longer
//! claimed or running.
//!
//! Keys are hashed with the schema's name into the 64-bit key space, since
//! advisory locks belong to the database, not to a schema. If the lock
//! connection breaks (the database restarted), the server has dropped
//! every lease: the next call reconnects and takes the held ones again;
//! one another node took meanwhile is reported and forgotten.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};

use crate::storage::StorageError;
use crate::storage::rows::holder_job;

/// How often leases that lapsed (at `until`, or with their job) are given
/// back to PostgreSQL so that other nodes may take them.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Lease {
    holder: String,
    until: i64,
    job: Option<i64>,
}

#[derive(Debug, Default)]
struct State {
    conn: Option<PgConnection>,
    held: HashMap<String, Lease>,
    swept: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct AdvisoryLeases {
    options: PgConnectOptions,
    namespace: String,
    state: tokio::sync::Mutex<State>,
}

impl AdvisoryLeases {
    pub(crate) fn new(options: PgConnectOptions, namespace: &str) -> AdvisoryLeases {
        AdvisoryLeases {
            options,
            namespace: namespace.to_string(),
            state: tokio::sync::Mutex::default(),
        }
    }

    fn key(&self, key: &str) -> i64 {
        let digest = Sha256::new()
            .chain_update(self.namespace.as_bytes())
            .chain_update([0])
            .chain_update(key.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }

    /// See `Storage::lock`. `pool` answers which jobs still run.
    pub(crate) async fn lock(
        &self,
        pool: &PgPool,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        let mut state = self.state.lock().await;
        self.sweep(&mut state, pool, now).await?;
        // Leases of other holders whose job may have stopped: asked once.
        let jobs: Vec<i64> = keys
            .iter()
            .filter_map(|k| state.held.get(k))
            .filter(|l| l.holder != holder && l.until >= now)
            .filter_map(|l| l.job)
            .collect();
        let stopped = stopped_jobs(pool, &jobs).await?;
        let lease = Lease {
            holder: holder.to_string(),
            until,
            job: holder_job(holder),
        };
        let mut ask: Vec<&String> = Vec::new();
        for key in keys {
            match state.held.get_mut(key) {
                Some(l)
                    if l.holder == holder
                        || l.until < now
                        || l.job.is_some_and(|j| stopped.contains(&j))
                        // Another attempt of the same job: that run is gone
                        // (this run's own parts wait for each other).
                        || (l.job.is_some()
                            && l.job == lease.job
                            && !crate::storage::rows::same_attempt(&l.holder, holder)) =>
                {
                    // Still locked in PostgreSQL by this node: it only
                    // changes hands here.
                    *l = lease.clone();
                }
                Some(_) => {}
                None if ask.contains(&key) => {}
                None => ask.push(key),
            }
        }
        if !ask.is_empty() {
            let hashed: Vec<i64> = ask.iter().map(|k| self.key(k)).collect();
            let granted: Vec<bool> = {
                let conn = self.connection(&mut state).await?;
                let answer = try_lock_all(conn, &hashed).await;
                settle(&mut state, answer)?
            };
            for (key, granted) in ask.into_iter().zip(granted) {
                if granted {
                    state.held.insert(key.clone(), lease.clone());
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| state.held.get(k).is_some_and(|l| l.holder == holder))
            .collect())
    }

    /// See `Storage::unlock`: only `holder`'s leases are given back.
    pub(crate) async fn unlock(&self, keys: &[String], holder: &str) -> Result<(), StorageError> {
        let mut state = self.state.lock().await;
        let mine: Vec<String> = keys
            .iter()
            .filter(|k| state.held.get(*k).is_some_and(|l| l.holder == holder))
            .cloned()
            .collect();
        self.release(&mut state, mine).await
    }

    /// Forget `keys` and unlock them in PostgreSQL.
    async fn release(&self, state: &mut State, keys: Vec<String>) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        let hashed: Vec<i64> = keys.iter().map(|k| self.key(k)).collect();
        for key in &keys {
            state.held.remove(key);
        }
        let Some(conn) = state.conn.as_mut() else {
            // No connection: the server holds nothing for this node.
            return Ok(());
        };
        let answer = sqlx::query("SELECT pg_advisory_unlock(k) FROM UNNEST($1::bigint[]) AS t(k)")
            .bind(&hashed)
            .execute(conn)
            .await
            .map(|_| ());
        settle(state, answer)
    }

    /// Give back leases that lapsed, at most every `SWEEP_EVERY`.
    async fn sweep(&self, state: &mut State, pool: &PgPool, now: i64) -> Result<(), StorageError> {
        if state.swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return Ok(());
        }
        state.swept = Some(Instant::now());
        let jobs: Vec<i64> = state.held.values().filter_map(|l| l.job).collect();
        let stopped = stopped_jobs(pool, &jobs).await?;
        let lapsed: Vec<String> = state
            .held
            .iter()
            .filter(|(_, l)| l.until < now || l.job.is_some_and(|j| stopped.contains(&j)))
            .map(|(k, _)| k.clone())
            .collect();
        self.release(state, lapsed).await
    }

    /// The lock connection, opened (and the held leases taken again) if
    /// there is none.
    async fn connection<'s>(
        &self,
        state: &'s mut State,
    ) -> Result<&'s mut PgConnection, StorageError> {
        if state.conn.is_none() {
            let mut conn = self.options.connect().await?;
            if !state.held.is_empty() {
                let keys: Vec<String> = state.held.keys().cloned().collect();
                let hashed: Vec<i64> = keys.iter().map(|k| self.key(k)).collect();
                let granted = try_lock_all(&mut conn, &hashed).await?;
                for (key, granted) in keys.into_iter().zip(granted) {
                    if !granted {
                        tracing::warn!(
                            key,
                            "a sync lease was lost while the database was away: another node holds it now"
                        );
                        state.held.remove(&key);
                    }
                }
            }
            state.conn = Some(conn);
        }
        Ok(state.conn.as_mut().expect("connected above"))
    }
}

/// Try to take each of `keys` on `conn`; per key, whether it was granted.
async fn try_lock_all(conn: &mut PgConnection, keys: &[i64]) -> Result<Vec<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(k) FROM UNNEST($1::bigint[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
    )
    .bind(keys)
    .fetch_all(conn)
    .await
}

/// An error on the lock connection may mean it is gone, and with it every
/// lease in the server: drop it, so the next call reconnects.
fn settle<T>(state: &mut State, answer: Result<T, sqlx::Error>) -> Result<T, StorageError> {
    answer.map_err(|e| {
        if !matches!(e, sqlx::Error::Database(_)) {
            state.conn = None;
        }
        e.into()
    })
}

/// Which of `jobs` are no longer claimed or running.
async fn stopped_jobs(pool: &PgPool, jobs: &[i64]) -> Result<Vec<i64>, StorageError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let running: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE id = ANY($1) AND state IN ('enqueued', 'started')",
    )
    .bind(jobs)
    .fetch_all(pool)
    .await?;
    Ok(jobs
        .iter()
        .copied()
        .filter(|j| !running.contains(j))
        .collect())
}
