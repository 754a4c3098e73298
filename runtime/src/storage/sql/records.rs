//! Local records: writes (planned in `storage::put`, written in multi-row statements), deletes and reads.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use super::{Dialect, SqlStorage, Value};
use crate::model::{Event, LocalRecord};
use crate::storage::rows::{IN_CHUNK, record_from_row};
use crate::storage::{PutOutcome, RecordWrite, StorageError, StoredEvent};

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
    pub(crate) async fn put_records(
        &self,
        writes: &[RecordWrite],
        now: i64,
    ) -> Result<Vec<PutOutcome>, StorageError> {
        let mut tx = self.begin().await?;
        let out = Self::put_many_in(&mut tx, writes, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Record writes inside a transaction: the rows they touch read up front,
    /// the outcomes planned in Rust, the rows written with a few multi-row
    /// statements (`storage::put`); a refused write writes nothing and leaves
    /// the others in place.
    pub(crate) async fn put_many_in(
        tx: &mut Transaction<'_, D::Db>,
        writes: &[RecordWrite],
        now: i64,
    ) -> Result<Vec<PutOutcome>, StorageError> {
        let (record_ids, binding_ids) = crate::storage::put::Inputs::wanted(writes);
        let mut inputs = crate::storage::put::Inputs::default();
        for (model, ids) in &record_ids {
            for r in Self::read_records(tx, model, ids).await? {
                inputs.records.insert((r.model.clone(), r.id.clone()), r);
            }
        }
        for ((backend, model), (ext, loc)) in &binding_ids {
            let pairs = inputs
                .bindings
                .entry((backend.clone(), model.clone()))
                .or_default();
            for (ext, loc) in ext
                .chunks(crate::storage::rows::IN_CHUNK / 2)
                .zip(loc.chunks(crate::storage::rows::IN_CHUNK / 2))
            {
                let sql = crate::storage::put::sql::bindings(D::PARAM, ext.len());
                let mut q = sqlx::query_as::<_, (String, String)>(&sql)
                    .bind(backend)
                    .bind(model);
                for id in ext.iter().chain(loc) {
                    q = q.bind(id);
                }
                pairs.extend(q.fetch_all(&mut **tx).await?);
            }
        }
        let plan = crate::storage::put::plan(writes, inputs, now);
        for chunk in plan.bindings.chunks(crate::storage::put::ROWS) {
            let sql = crate::storage::put::sql::upsert_bindings(D::PARAM, chunk.len());
            let mut q = sqlx::query(&sql);
            for b in chunk {
                q = q
                    .bind(&b.backend)
                    .bind(&b.model)
                    .bind(&b.external_id)
                    .bind(&b.local_id)
                    .bind(b.sync_date)
                    .bind(&b.synced);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in plan.records.chunks(crate::storage::put::ROWS) {
            let sql = crate::storage::put::sql::upsert_records(D::PARAM, chunk.len());
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(&r.model)
                    .bind(&r.id)
                    .bind(&r.data)
                    .bind(r.version as i64)
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        // Natural keys: the old ones of every record written with keys
        // deleted per model in chunks, the new ones inserted in multi-row
        // statements (a statement per record would undo the batching).
        let mut by_model: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (model, id, _) in &plan.keys {
            by_model
                .entry(model.as_str())
                .or_default()
                .push(id.as_str());
        }
        for (model, ids) in &by_model {
            for chunk in ids.chunks(crate::storage::rows::IN_CHUNK) {
                let sql = crate::storage::put::sql::delete_keys_of(D::PARAM, chunk.len());
                let mut q = sqlx::query(&sql).bind(*model);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut **tx).await?;
            }
        }
        let rows: Vec<(&String, &String, &crate::features::MatchKey)> = plan
            .keys
            .iter()
            .flat_map(|(model, id, keys)| keys.iter().map(move |k| (model, id, k)))
            .collect();
        for chunk in rows.chunks(crate::storage::put::ROWS) {
            let sql = crate::storage::put::sql::insert_keys(D::PARAM, chunk.len());
            let mut q = sqlx::query(&sql);
            for (model, id, k) in chunk {
                q = q
                    .bind(*model)
                    .bind(&k.name)
                    .bind(k.stored_value())
                    .bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        let mut event_ids = Vec::with_capacity(plan.events.len());
        for chunk in plan.events.chunks(crate::storage::put::ROWS) {
            let sql = crate::storage::put::sql::insert_events(D::PARAM, chunk.len());
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for e in chunk {
                q = q
                    .bind(&e.name)
                    .bind(&e.model)
                    .bind(&e.local_id)
                    .bind(serde_json::to_string(&e.changed_fields).unwrap_or_else(|_| "[]".into()))
                    .bind(&e.payload)
                    .bind(&e.origin_backend)
                    .bind(now);
            }
            let mut ids = q.fetch_all(&mut **tx).await?;
            ids.sort_unstable();
            event_ids.extend(ids);
        }
        Ok(plan.finish(&event_ids, now))
    }

    pub(crate) async fn delete_record(
        &self,
        model: &str,
        id: &str,
        origin_backend: Option<&str>,
        now: i64,
    ) -> Result<Option<StoredEvent>, StorageError> {
        let mut tx = self.begin().await?;
        let data: Option<String> =
            sqlx::query_scalar("DELETE FROM records WHERE model = $1 AND id = $2 RETURNING data")
                .bind(model)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(data) = data else {
            return Ok(None);
        };
        sqlx::query(crate::storage::put::sql::delete_keys())
            .bind(model)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let event = Event {
            name: "record-deleted".to_string(),
            model: model.to_string(),
            local_id: Some(id.to_string()),
            changed_fields: Vec::new(),
            payload: data,
            origin_backend: origin_backend.map(str::to_string),
        };
        let stored = Self::outbox_in(&mut tx, &event, now).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    pub(crate) async fn record(
        &self,
        model: &str,
        id: &str,
    ) -> Result<Option<LocalRecord>, StorageError> {
        let row = sqlx::query(
            "SELECT model, id, data, version, updated_at FROM records WHERE model = $1 AND id = $2",
        )
        .bind(model)
        .bind(id)
        .fetch_optional(self.d.reader())
        .await?;
        Ok(row.map(|r| record_from_row(&r)).transpose()?)
    }

    pub(crate) async fn records_by_keys(
        &self,
        model: &str,
        keys: &[crate::features::MatchKey],
    ) -> Result<Vec<(crate::features::MatchKey, String)>, StorageError> {
        let mut by_name: std::collections::BTreeMap<&str, Vec<&crate::features::MatchKey>> =
            Default::default();
        for k in keys {
            by_name.entry(k.name.as_str()).or_default().push(k);
        }
        let mut out = Vec::new();
        for (name, keys) in by_name {
            for chunk in keys.chunks(crate::storage::rows::IN_CHUNK) {
                let sql = crate::storage::put::sql::records_by_keys(D::PARAM, chunk.len());
                let mut q = sqlx::query_as::<_, (String, String)>(&sql)
                    .bind(model)
                    .bind(name);
                for k in chunk {
                    q = q.bind(k.stored_value());
                }
                for (value, id) in q.fetch_all(self.d.reader()).await? {
                    // Hand back the key as asked (not its stored hash).
                    if let Some(k) = chunk.iter().find(|k| k.stored_value() == value) {
                        out.push(((*k).clone(), id));
                    }
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn records_of(
        &self,
        model: &str,
        ids: &[String],
    ) -> Result<Vec<LocalRecord>, StorageError> {
        let mut conn = self.d.reader().acquire().await?;
        Self::read_records(&mut conn, model, ids).await
    }

    /// The records of `model` among `ids` (those that exist), read in
    /// chunks on one connection: a write batch's own transaction, or a
    /// reader's.
    async fn read_records(
        conn: &mut <D::Db as Database>::Connection,
        model: &str,
        ids: &[String],
    ) -> Result<Vec<LocalRecord>, StorageError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = crate::storage::put::sql::records(D::PARAM, chunk.len());
            let mut q = sqlx::query(&sql).bind(model);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                out.push(record_from_row(&row)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LocalRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT model, id, data, version, updated_at FROM records
             WHERE model = $1 AND ($2 IS NULL OR id > $3) ORDER BY id LIMIT $4",
        )
        .bind(model)
        .bind(after)
        .bind(after)
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.d.reader())
        .await?;
        rows.iter()
            .map(|r| record_from_row(r).map_err(Into::into))
            .collect()
    }
}
