//! The synchronizer's group commit. Leases and record writes of all the
//! jobs running on a node go to one task, which writes whatever has queued
//! up while the previous transaction ran as one transaction: with one
//! SQLite writer, eight jobs each waiting for their own transaction would
//! otherwise spend most of their time in line. Nothing waits on a timer,
//! so a lone job is not slowed down.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::storage::{Storage, StorageError, WriteDone, WriteOp};

/// Ops written per transaction at most.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<WriteDone, String>>;

pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<(WriteOp, Reply)>,
}

impl Committer {
    /// Start the writing task on the current tokio runtime; it ends when
    /// the committer is dropped.
    pub(crate) fn start(storage: Arc<dyn Storage>) -> Committer {
        let (queue, mut ops) = mpsc::unbounded_channel::<(WriteOp, Reply)>();
        tokio::spawn(async move {
            while let Some(first) = ops.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match ops.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let (writes, replies): (Vec<WriteOp>, Vec<Reply>) = batch.into_iter().unzip();
                match storage.write_batch(&writes).await {
                    Ok(done) => {
                        for (reply, done) in replies.into_iter().zip(done) {
                            let _ = reply.send(Ok(done));
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Committer { queue }
    }

    /// Write `op` with whatever else is waiting; its own answer.
    pub(crate) async fn write(&self, op: WriteOp) -> Result<WriteDone, StorageError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StorageError::Rejected("the synchronizer is shutting down".into());
        self.queue.send((op, reply)).map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|m| StorageError::Database(sqlx::Error::Protocol(m)))
    }

    pub(crate) async fn lock(
        &self,
        keys: Vec<String>,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        match self
            .write(WriteOp::Lock {
                keys,
                holder: holder.to_string(),
                now,
                until,
            })
            .await?
        {
            WriteDone::Locked(taken) => Ok(taken),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn unlock(&self, keys: Vec<String>, holder: &str) -> Result<(), StorageError> {
        match self
            .write(WriteOp::Unlock {
                keys,
                holder: holder.to_string(),
            })
            .await?
        {
            WriteDone::Unlocked => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub(crate) async fn put(
        &self,
        writes: Vec<crate::storage::RecordWrite>,
        now: i64,
    ) -> Result<Vec<crate::storage::PutOutcome>, StorageError> {
        match self.write(WriteOp::Put { writes, now }).await? {
            WriteDone::Put(out) => Ok(out),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(done: WriteDone) -> StorageError {
    StorageError::Rejected(format!("storage answered a write with {done:?}"))
}
