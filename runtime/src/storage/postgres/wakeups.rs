//! Wake-ups between nodes: a transaction that makes jobs due sends a
//! NOTIFY that commits with it; every node LISTENs, so that a job another
//! node enqueued starts at once instead of at the next poll.

use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};

use crate::storage::StorageError;

/// The channel other nodes LISTEN on: jobs may have become due.
const WAKE_CHANNEL: &str = "junction_jobs";

/// Tell every node that jobs may be due, when the transaction commits.
/// PostgreSQL folds identical notifications of one transaction into one,
/// so a batch of enqueues is one notification, and listeners fold a
/// burst further into one wake-up.
pub(super) async fn notify_in(tx: &mut Transaction<'_, Postgres>) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Listen for other nodes' wake-ups on a connection of its own
/// (reconnecting when it is lost); a burst arrives as one wake-up.
pub(super) fn listen(pool: PgPool) -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for job wake-ups; polling meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(WAKE_CHANNEL).await {
                tracing::warn!(error = %e, "cannot LISTEN for job wake-ups; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // recv() reconnects by itself after a lost connection.
            loop {
                match listener.recv().await {
                    // A full channel already holds a wake-up: the
                    // burst folds into it.
                    Ok(_) => match tx.try_send(()) {
                        Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(())) => {}
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => return,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "job wake-ups interrupted; reconnecting");
                        break;
                    }
                }
            }
        }
    });
    rx
}
