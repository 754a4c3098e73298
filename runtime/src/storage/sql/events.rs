//! The outbox (events waiting for dispatch) and notifications waiting for their target.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::{Dialect, SqlStorage, Value};
use crate::model::Event;
use crate::storage::rows::{IN_CHUNK, Params, event_from_row};
use crate::storage::types::{Enqueued, NewJob};
use crate::storage::{StorageError, StoredEvent, json_object};

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
    pub(crate) async fn outbox_in(
        tx: &mut Transaction<'_, D::Db>,
        event: &Event,
        now: i64,
    ) -> Result<StoredEvent, StorageError> {
        let fields = serde_json::to_string(&event.changed_fields).unwrap_or_else(|_| "[]".into());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (name, model, local_id, changed_fields, payload, origin_backend, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&event.name)
        .bind(&event.model)
        .bind(&event.local_id)
        .bind(fields)
        .bind(&event.payload)
        .bind(&event.origin_backend)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        Ok(StoredEvent {
            id,
            event: event.clone(),
            created_at: now,
        })
    }

    pub(crate) async fn emit(&self, event: &Event, now: i64) -> Result<StoredEvent, StorageError> {
        json_object(&event.payload, "event payload")?;
        let mut tx = self.begin().await?;
        let stored = Self::outbox_in(&mut tx, event, now).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(crate) async fn undispatched(&self, limit: u32) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, name, model, local_id, changed_fields, payload, origin_backend, created_at
             FROM outbox WHERE processed_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.d.reader())
        .await?;
        rows.iter()
            .map(|r| event_from_row(r).map_err(Into::into))
            .collect()
    }

    pub(crate) async fn event(&self, id: i64) -> Result<Option<StoredEvent>, StorageError> {
        let row = sqlx::query(
            "SELECT id, name, model, local_id, changed_fields, payload, origin_backend, created_at
             FROM outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.d.reader())
        .await?;
        row.as_ref()
            .map(|r| event_from_row(r).map_err(Into::into))
            .transpose()
    }

    pub(crate) async fn record_events(
        &self,
        model: &str,
        local_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let rows = sqlx::query(crate::storage::rows::RECORD_EVENTS)
            .bind(model)
            .bind(local_id)
            .bind(i64::from(limit))
            .fetch_all(self.d.reader())
            .await?;
        rows.iter()
            .map(|r| event_from_row(r).map_err(Into::into))
            .collect()
    }

    pub(crate) async fn notify_add(
        &self,
        target: &str,
        note: &crate::storage::types::Notification,
        max: u64,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let waiting: i64 = sqlx::query_scalar(crate::storage::rows::NOTIFY_COUNT)
            .bind(target)
            .fetch_one(&mut *tx)
            .await?;
        let stored = (waiting.max(0) as u64) < max;
        if stored {
            sqlx::query(crate::storage::rows::NOTIFY_ADD)
                .bind(target)
                .bind(&note.kind)
                .bind(&note.backend)
                .bind(&note.subject)
                .bind(&note.message)
                .bind(note.at)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(crate::storage::rows::NOTIFY_DROP)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    pub(crate) async fn notify_take(
        &self,
        target: &str,
        limit: u32,
    ) -> Result<(Vec<crate::storage::types::Notification>, u64), StorageError> {
        let rows = sqlx::query(crate::storage::rows::NOTIFY_TAKE)
            .bind(target)
            .bind(i64::from(limit))
            .fetch_all(self.d.reader())
            .await?;
        let notes = rows
            .iter()
            .map(crate::storage::rows::notification_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let dropped: Option<i64> = sqlx::query_scalar(crate::storage::rows::NOTIFY_DROPPED)
            .bind(target)
            .fetch_optional(self.d.reader())
            .await?;
        Ok((notes, dropped.unwrap_or(0).max(0) as u64))
    }

    pub(crate) async fn notify_done(
        &self,
        target: &str,
        ids: &[i64],
        dropped: u64,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        for chunk in ids.chunks(crate::storage::rows::IN_CHUNK) {
            let mut p = Params::new(D::PARAM);
            let target_p = p.next();
            let sql = format!(
                "DELETE FROM notifications WHERE target = {target_p} AND id IN ({})",
                p.list(chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(target);
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
        if dropped > 0 {
            sqlx::query(crate::storage::rows::NOTIFY_UNDROP)
                .bind(i64::try_from(dropped).unwrap_or(i64::MAX))
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn dispatch(
        &self,
        events: &[(i64, Vec<NewJob>)],
        now: i64,
    ) -> Result<Vec<Option<Vec<Enqueued>>>, StorageError> {
        let mut tx = self.begin().await?;
        // Every event marked in one statement per chunk; those it does not
        // return were dispatched already (by another dispatcher): their
        // jobs exist.
        let ids: Vec<i64> = events.iter().map(|(id, _)| *id).collect();
        let mut marked = std::collections::HashSet::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let mut p = Params::new(D::PARAM);
            let now_p = p.next();
            let sql = format!(
                "UPDATE outbox SET processed_at = {now_p} WHERE processed_at IS NULL AND id IN ({}) RETURNING id",
                p.list(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(now);
            for id in chunk {
                q = q.bind(id);
            }
            marked.extend(q.fetch_all(&mut *tx).await?);
        }
        let mut out = Vec::with_capacity(events.len());
        for (event_id, jobs) in events {
            if !marked.remove(event_id) {
                out.push(None);
                continue;
            }
            out.push(Some(Self::enqueue_in(&mut tx, jobs, now).await?));
        }
        if out
            .iter()
            .any(|o| o.as_ref().is_some_and(|e| !e.is_empty()))
        {
            D::jobs_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}
