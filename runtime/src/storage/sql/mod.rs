//! The SQL of [`Storage`], written once for both databases.
//!
//! [`SqlStorage`] implements [`Storage`] for any [`Dialect`]: the
//! statements live in one file per area (jobs, queue, records, events,
//! bindings, leases, connectors, nodes, backends, schema); statements
//! written out use `$n`, which both sqlx drivers read, and statements
//! built at run time take their placeholders from `rows::Params` in the
//! dialect's style. A dialect (`dialect.rs`) holds only what the two
//! databases really do differently. `storage::sqlite` and
//! `storage::postgres` are the two dialects.
//!
//! The `Storage` impl below only delegates: to the area files' inherent
//! methods of the same name (`Self::name(self, …)`), or to the dialect.
//! Each area's `impl` block repeats the list of sqlx bounds the generic
//! code needs, because Rust does not carry a trait's where-clauses to its
//! users.

mod backends;
mod bindings;
mod connectors;
mod dialect;
mod events;
mod jobs;
mod leases;
mod nodes;
mod queue;
mod records;
mod schema;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

pub use dialect::{Affected, Dialect, PlainDone, Value};

use super::{
    Binding, ClaimRequest, InstalledConnector, NodeInfo, OpenBreaker, PutOutcome, RecordWrite,
    RemoveBackend, RemovedBackend, StateCount, StateQuota, Storage, StorageError, StoredBackend,
    StoredEvent, WriteDone, WriteOp, copy,
};
use crate::model::{Event, LocalRecord};
use crate::storage::types::{
    Acted, Completion, Enqueued, Job, JobAction, JobAuditEntry, JobFilter, JobId, JobLogLine,
    NewJob,
};

/// [`Storage`] on a SQL database.
#[derive(Debug, Clone)]
pub struct SqlStorage<D> {
    pub(crate) d: D,
}

impl<D: Dialect> SqlStorage<D> {
    /// Start a write transaction, the dialect's way.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, D::Db>, sqlx::Error> {
        self.d.writer().begin_with(D::BEGIN).await
    }
}

#[async_trait]
impl<D: Dialect> Storage for SqlStorage<D>
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
    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<Vec<Enqueued>, StorageError> {
        Self::enqueue(self, jobs, now).await
    }

    async fn wakeups(&self) -> Option<tokio::sync::mpsc::Receiver<()>> {
        self.d.wakeups().await
    }

    async fn candidates(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<(JobId, String)>, StorageError> {
        Self::candidates(self, request).await
    }

    async fn claim(&self, ids: &[JobId], request: &ClaimRequest) -> Result<Vec<Job>, StorageError> {
        Self::claim(self, ids, request).await
    }

    async fn claim_next(&self, request: &ClaimRequest) -> Result<Vec<Job>, StorageError> {
        if let Some(jobs) = self.d.claim_next(request).await? {
            return Ok(jobs);
        }
        let ids: Vec<JobId> = Self::candidates(self, request)
            .await?
            .into_iter()
            .take(request.limit as usize)
            .map(|(id, _)| id)
            .collect();
        Self::claim(self, &ids, request).await
    }

    async fn complete(
        &self,
        completions: &[Completion],
        begun: &[(JobId, i64)],
        _now: i64,
    ) -> Result<(), StorageError> {
        Self::complete(self, completions, begun).await
    }

    async fn heartbeat(
        &self,
        node: &str,
        ids: &[JobId],
        lease_until: i64,
    ) -> Result<(), StorageError> {
        Self::heartbeat(self, node, ids, lease_until).await
    }

    async fn requeue_expired(&self, now: i64) -> Result<Vec<JobId>, StorageError> {
        Self::requeue_expired(self, now).await
    }

    async fn release(&self, node: &str, ids: &[JobId], now: i64) -> Result<(), StorageError> {
        Self::release(self, node, ids, now).await
    }

    async fn act(&self, action: JobAction, ids: &[JobId], now: i64) -> Result<Acted, StorageError> {
        Self::act(self, action, ids, now).await
    }

    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StorageError> {
        Self::count_jobs(self, filter).await
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, StorageError> {
        Self::job(self, id).await
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StorageError> {
        Self::jobs(self, filter).await
    }

    async fn job_log(&self, id: JobId) -> Result<Vec<JobLogLine>, StorageError> {
        Self::job_log(self, id).await
    }

    async fn job_audit(&self, id: JobId) -> Result<Vec<JobAuditEntry>, StorageError> {
        Self::job_audit(self, id).await
    }

    async fn parents(&self, id: JobId) -> Result<Vec<JobId>, StorageError> {
        Self::parents(self, id).await
    }

    async fn children(&self, id: JobId) -> Result<Vec<JobId>, StorageError> {
        Self::children(self, id).await
    }

    async fn oldest_due(&self, now: i64) -> Result<Vec<(String, i64)>, StorageError> {
        Self::oldest_due(self, now).await
    }

    async fn counts(&self) -> Result<Vec<StateCount>, StorageError> {
        Self::counts(self).await
    }

    async fn compact_counts(&self) -> Result<(), StorageError> {
        self.d.compact_counts().await
    }

    async fn purge(
        &self,
        before: i64,
        batch: u32,
        scope: &crate::storage::types::PurgeScope,
    ) -> Result<u64, StorageError> {
        Self::purge(self, before, batch, scope).await
    }

    async fn put_records(
        &self,
        writes: &[RecordWrite],
        now: i64,
    ) -> Result<Vec<PutOutcome>, StorageError> {
        Self::put_records(self, writes, now).await
    }

    async fn delete_record(
        &self,
        model: &str,
        id: &str,
        origin_backend: Option<&str>,
        now: i64,
    ) -> Result<Option<StoredEvent>, StorageError> {
        Self::delete_record(self, model, id, origin_backend, now).await
    }

    async fn record(&self, model: &str, id: &str) -> Result<Option<LocalRecord>, StorageError> {
        Self::record(self, model, id).await
    }

    async fn records_of(
        &self,
        model: &str,
        ids: &[String],
    ) -> Result<Vec<LocalRecord>, StorageError> {
        Self::records_of(self, model, ids).await
    }

    async fn records_by_keys(
        &self,
        model: &str,
        keys: &[crate::features::MatchKey],
    ) -> Result<Vec<(crate::features::MatchKey, String)>, StorageError> {
        Self::records_by_keys(self, model, keys).await
    }

    async fn records(
        &self,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LocalRecord>, StorageError> {
        Self::records(self, model, after, limit).await
    }

    async fn emit(&self, event: &Event, now: i64) -> Result<StoredEvent, StorageError> {
        Self::emit(self, event, now).await
    }

    async fn undispatched(&self, limit: u32) -> Result<Vec<StoredEvent>, StorageError> {
        Self::undispatched(self, limit).await
    }

    async fn live_jobs(&self, backend: &str, up_to: u64) -> Result<u64, StorageError> {
        Self::live_jobs(self, backend, up_to).await
    }

    async fn event(&self, id: i64) -> Result<Option<StoredEvent>, StorageError> {
        Self::event(self, id).await
    }

    async fn dispatch(
        &self,
        events: &[(i64, Vec<NewJob>)],
        now: i64,
    ) -> Result<Vec<Option<Vec<Enqueued>>>, StorageError> {
        Self::dispatch(self, events, now).await
    }

    async fn binding_to_local(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Self::binding_to_local(self, backend, model, external_id).await
    }

    async fn binding_to_external(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<String>, StorageError> {
        Self::binding_to_external(self, backend, model, local_id).await
    }

    async fn bind(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
        local_id: &str,
        sync_date: i64,
        synced: Option<&str>,
    ) -> Result<(), StorageError> {
        Self::bind(
            self,
            backend,
            model,
            external_id,
            local_id,
            sync_date,
            synced,
        )
        .await
    }

    async fn binding(
        &self,
        backend: &str,
        model: &str,
        external_id: &str,
    ) -> Result<Option<Binding>, StorageError> {
        Self::binding(self, backend, model, external_id).await
    }

    async fn bindings_of(
        &self,
        backend: &str,
        model: &str,
        external_ids: &[String],
    ) -> Result<Vec<Binding>, StorageError> {
        Self::bindings_of(self, backend, model, external_ids).await
    }

    async fn binding_of_local(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<Option<Binding>, StorageError> {
        Self::binding_of_local(self, backend, model, local_id).await
    }

    async fn record_jobs(
        &self,
        model: &str,
        local_id: &str,
        external: &[(String, String)],
        limit: u32,
    ) -> Result<Vec<Job>, StorageError> {
        Self::record_jobs(self, model, local_id, external, limit).await
    }

    async fn record_events(
        &self,
        model: &str,
        local_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        Self::record_events(self, model, local_id, limit).await
    }

    async fn notify_add(
        &self,
        target: &str,
        note: &crate::storage::types::Notification,
        max: u64,
    ) -> Result<bool, StorageError> {
        Self::notify_add(self, target, note, max).await
    }

    async fn notify_take(
        &self,
        target: &str,
        limit: u32,
    ) -> Result<(Vec<crate::storage::types::Notification>, u64), StorageError> {
        Self::notify_take(self, target, limit).await
    }

    async fn notify_done(
        &self,
        target: &str,
        ids: &[i64],
        dropped: u64,
    ) -> Result<(), StorageError> {
        Self::notify_done(self, target, ids, dropped).await
    }

    async fn unbind(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<bool, StorageError> {
        Self::unbind(self, backend, model, local_id).await
    }

    async fn binding_counts(&self, backend: &str) -> Result<Vec<(String, i64)>, StorageError> {
        Self::binding_counts(self, backend).await
    }

    async fn bindings_page(
        &self,
        backend: &str,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Binding>, StorageError> {
        Self::bindings_page(self, backend, model, after, limit).await
    }

    async fn lock(
        &self,
        keys: &[String],
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<bool>, StorageError> {
        Self::lock(self, keys, holder, now, until).await
    }

    async fn unlock(&self, keys: &[String], holder: &str) -> Result<(), StorageError> {
        Self::unlock(self, keys, holder).await
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> Result<Vec<WriteDone>, StorageError> {
        Self::write_batch(self, ops).await
    }

    async fn install_connector(
        &self,
        connector: &InstalledConnector,
        component: &[u8],
    ) -> Result<bool, StorageError> {
        Self::install_connector(self, connector, component).await
    }

    async fn connectors(&self) -> Result<Vec<InstalledConnector>, StorageError> {
        Self::connectors(self).await
    }

    async fn connector_component(&self, digest: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Self::connector_component(self, digest).await
    }

    async fn remove_connector(&self, digest: &str) -> Result<bool, StorageError> {
        Self::remove_connector(self, digest).await
    }

    async fn activate_connector(&self, digest: &str, now: i64) -> Result<bool, StorageError> {
        Self::activate_connector(self, digest, now).await
    }

    async fn rollback_connector(
        &self,
        name: &str,
        now: i64,
    ) -> Result<Option<String>, StorageError> {
        Self::rollback_connector(self, name, now).await
    }

    async fn registry_generation(&self) -> Result<i64, StorageError> {
        Self::registry_generation(self).await
    }

    async fn open_breaker(&self, breaker: &OpenBreaker) -> Result<bool, StorageError> {
        Self::open_breaker(self, breaker).await
    }

    async fn breakers(&self) -> Result<Vec<OpenBreaker>, StorageError> {
        Self::breakers(self).await
    }

    async fn breaker_probe_failed(
        &self,
        backend: &str,
        reason: &str,
        now: i64,
        max_cool_down: i64,
    ) -> Result<(), StorageError> {
        Self::breaker_probe_failed(self, backend, reason, now, max_cool_down).await
    }

    async fn close_breaker(&self, backend: &str) -> Result<bool, StorageError> {
        Self::close_breaker(self, backend).await
    }

    async fn set_paused(
        &self,
        kind: &str,
        name: &str,
        paused: bool,
        now: i64,
    ) -> Result<bool, StorageError> {
        Self::set_paused(self, kind, name, paused, now).await
    }

    async fn paused(&self) -> Result<Vec<(String, String, i64)>, StorageError> {
        Self::paused(self).await
    }

    async fn node_beat(&self, node: &NodeInfo) -> Result<(), StorageError> {
        Self::node_beat(self, node).await
    }

    async fn node_stopped(&self, name: &str, now: i64) -> Result<(), StorageError> {
        Self::node_stopped(self, name, now).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, StorageError> {
        Self::nodes(self).await
    }

    async fn schema_version(&self) -> Result<i64, StorageError> {
        Self::schema_version(self).await
    }

    async fn dump(
        &self,
        table: &copy::Table,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<Vec<copy::Cell>>, StorageError> {
        Self::dump(self, table, offset, limit).await
    }

    async fn loader(&self) -> Result<Box<dyn copy::Loader>, StorageError> {
        Self::loader(self).await
    }

    async fn put_backend(
        &self,
        name: &str,
        kind: &str,
        version: &str,
        config: &str,
        now: i64,
    ) -> Result<(), StorageError> {
        Self::put_backend(self, name, kind, version, config, now).await
    }

    async fn backends(&self) -> Result<Vec<StoredBackend>, StorageError> {
        Self::backends(self).await
    }

    async fn remove_backend(
        &self,
        name: &str,
        how: RemoveBackend,
        now: i64,
    ) -> Result<Option<RemovedBackend>, StorageError> {
        Self::remove_backend(self, name, how, now).await
    }

    async fn state_get(&self, backend: &str, key: &str) -> Result<Option<String>, StorageError> {
        Self::state_get(self, backend, key).await
    }

    async fn state_list(
        &self,
        backend: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String, i64)>, StorageError> {
        Self::state_list(self, backend, prefix).await
    }

    async fn state_delete(&self, backend: &str, key: &str) -> Result<bool, StorageError> {
        Self::state_delete(self, backend, key).await
    }

    async fn state_set(
        &self,
        backend: &str,
        key: &str,
        value: &str,
        now: i64,
        quota: Option<&StateQuota>,
    ) -> Result<(), StorageError> {
        Self::state_set(self, backend, key, value, now, quota).await
    }
}
