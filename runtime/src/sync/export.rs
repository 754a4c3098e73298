//! Exporting (OCA's Exporter) and deleting (OCA's Deleter), both ways.
//!
//! Export of a bound record: if the backend's copy changed since the last
//! sync it is imported first (OCA's `_should_import`) and the backend wins
//! for the fields it changed; the rest of the changed fields are mapped
//! and written. An unbound record is mapped whole, created, and bound.
//! Relations the mapper cannot resolve yet (an order's product not yet in
//! the backend) come back as retryable errors, so the job waits for them.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::adopt;
use super::import::record_key;
use super::trail::{Trail, declined, prefixed};
use super::{BackendUnits, Synchronizer, route, storage_failure};
use crate::model::{LocalRecord, parse_timestamp};
use crate::queue::now_ms;
use crate::queue::worker::JobFailure;
use crate::storage::RecordWrite;

fn object(text: &str) -> serde_json::Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The fields an export of a bound record sends: those its job asked for
/// and every other field whose local value differs from what was last
/// synced. Export jobs of one record coalesce while they wait (see
/// `Queue::register_coalescing`), so the one that runs carries only the
/// first edit's fields; the snapshot has the rest. Without a snapshot
/// every field goes (`None`), so no edit is lost.
fn pending_fields(
    asked: Option<&[String]>,
    record: &LocalRecord,
    synced: Option<&str>,
) -> Option<Vec<String>> {
    let asked = asked?;
    let snapshot = object(synced?);
    let mut fields = asked.to_vec();
    for (k, v) in object(&record.data) {
        if !snapshot
            .get(&k)
            .is_some_and(|s| crate::model::same_value(s, &v))
            && !fields.contains(&k)
        {
            fields.push(k);
        }
    }
    Some(fields)
}

/// The state key holding the idempotency key of a record's create.
fn create_key_name(model: &str, local_id: &str) -> String {
    format!("export:create:{model}:{local_id}")
}

/// What every step of one export shares: the backend, the lease holder
/// (each dependency leases under a name of its own) and the records being
/// exported on the way here, to refuse a cycle.
#[derive(Clone, Copy)]
struct ExportRun<'a> {
    b: &'a BackendUnits,
    holder: &'a str,
    ancestors: &'a [(String, String)],
}

impl Synchronizer {
    /// The idempotency key of creating local `model` `local_id` in the
    /// backend: the one stored by an earlier try, else a new one, stored
    /// before the create is sent (the caller holds the record's lease).
    async fn create_key(
        &self,
        backend: &str,
        model: &str,
        local_id: &str,
    ) -> Result<String, JobFailure> {
        let name = create_key_name(model, local_id);
        if let Some(key) = self
            .storage
            .state_get(backend, &name)
            .await
            .map_err(storage_failure)?
        {
            return Ok(key);
        }
        let key = format!("junction-{:032x}", rand::random::<u128>());
        self.storage
            .state_set(backend, &name, &key, now_ms(), None)
            .await
            .map_err(storage_failure)?;
        Ok(key)
    }

    /// Export local `model` `local_id` to the backend; `fields` are the
    /// changed fields (`None`: all).
    pub async fn export_record(
        &self,
        b: &BackendUnits,
        model: &str,
        local_id: &str,
        fields: Option<&[String]>,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        let run = ExportRun {
            b,
            holder,
            ancestors: &[],
        };
        self.export_one(run, model, local_id, fields, trail).await
    }

    fn export_one<'a>(
        &'a self,
        run: ExportRun<'a>,
        model: &'a str,
        local_id: &'a str,
        fields: Option<&'a [String]>,
        trail: &'a mut Trail,
    ) -> Pin<Box<dyn Future<Output = Result<String, JobFailure>> + Send + 'a>> {
        Box::pin(async move {
            let ExportRun { b, holder, .. } = run;
            let binding = self
                .storage
                .binding_of_local(b.name(), model, local_id)
                .await
                .map_err(storage_failure)?;
            let key = match &binding {
                Some(bd) => record_key(b.name(), model, &bd.external_id),
                None => format!("record:{}:{model}:local:{local_id}", b.name()),
            };
            let export = self.export_locked(run, model, local_id, fields, trail);
            self.leased(&key, holder, export).await
        })
    }

    /// Export the local records `record` points to that the backend does
    /// not have yet (OCA's `_export_dependencies`).
    async fn export_dependencies(
        &self,
        run: ExportRun<'_>,
        model: &str,
        record: &LocalRecord,
        trail: &mut Trail,
    ) -> Result<(), JobFailure> {
        let ExportRun {
            b,
            holder,
            ancestors,
        } = run;
        let mut chain = ancestors.to_vec();
        chain.push((model.to_string(), record.id.clone()));
        // "Nothing to do" for what it needs: it needs nothing.
        let deps = trail
            .call_unless_nothing_to_do(
                &format!("listing what {model} {} needs exported first", record.id),
                route(b, model)?
                    .mapper
                    .export_dependencies(&b.ctx, model, record.clone())
                    .await,
            )?
            .unwrap_or_default();
        for (k, dep) in deps.iter().enumerate() {
            let bound = self
                .storage
                .binding_of_local(b.name(), &dep.model, &dep.local_id)
                .await
                .map_err(storage_failure)?;
            if bound.is_some() {
                continue;
            }
            let step = format!(
                "{model} {} needs {} {} exported first",
                record.id, dep.model, dep.local_id
            );
            if chain.contains(&(dep.model.clone(), dep.local_id.clone())) {
                return Err(JobFailure::fail(
                    "dependencies",
                    format!(
                        "{step}, but it is already being exported on the way here: the mapper's export dependencies form a cycle"
                    ),
                ));
            }
            if ancestors.len() as u32 >= self.settings.max_dependency_depth {
                return Err(JobFailure::fail(
                    "dependencies",
                    format!(
                        "{step}, but dependencies nest deeper than {} levels; check the mapper's export dependencies for a cycle",
                        self.settings.max_dependency_depth
                    ),
                ));
            }
            // Each dependency leases under a name of its own.
            let holder = format!("{holder}:{}:{k}", chain.len());
            let run = ExportRun {
                b,
                holder: &holder,
                ancestors: &chain,
            };
            match self
                .export_one(run, &dep.model, &dep.local_id, None, trail)
                .await
            {
                // The connector declined to export the dependency: the
                // record goes on without it (its mapper finds no binding
                // and decides).
                Err(f) if declined(&f) => {}
                other => {
                    other.map_err(|f| prefixed(&step, f))?;
                }
            }
        }
        Ok(())
    }

    async fn export_locked(
        &self,
        run: ExportRun<'_>,
        model: &str,
        local_id: &str,
        fields: Option<&[String]>,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        let ExportRun { b, holder, .. } = run;
        let Some(mut record) = self
            .storage
            .record(model, local_id)
            .await
            .map_err(storage_failure)?
        else {
            return Ok(format!(
                "nothing to export: local {model} {local_id} no longer exists"
            ));
        };
        self.export_dependencies(run, model, &record, trail).await?;
        // Read again under the lease: an import may have bound it meanwhile.
        let binding = self
            .storage
            .binding_of_local(b.name(), model, local_id)
            .await
            .map_err(storage_failure)?;
        let started = now_ms();
        let Some(binding) = binding else {
            let snapshot = record.data.clone();
            let version = record.version;
            let data = trail.call(
                &format!("mapping {model} {local_id} for {}", b.name()),
                route(b, model)?
                    .mapper
                    .map_export(&b.ctx, model, record, None)
                    .await,
            )?;
            // The backend may hold this record already (made there by
            // hand, or by another system): found by natural key, it is
            // adopted — written and bound — instead of created again.
            if let Some(ext) = self
                .find_existing(b, model, local_id, &snapshot, version, trail)
                .await?
            {
                trail.call(
                    &format!(
                        "writing {model} {local_id} to {ext} in {} (adopted)",
                        b.name()
                    ),
                    route(b, model)?
                        .adapter
                        .write(&b.ctx, model, &ext, &data)
                        .await,
                )?;
                self.storage
                    .bind(b.name(), model, &ext, local_id, started, Some(&snapshot))
                    .await
                    .map_err(storage_failure)?;
                return Ok(format!(
                    "adopted {model} {ext} in {} (same natural key) for local {local_id}, and wrote it",
                    b.name()
                ));
            }
            // The create carries a key stored before the call: a try that
            // dies, or loses the backend's answer, after the backend made
            // the record repeats the create with the same key, and a
            // backend that honours `Idempotency-Key` answers the record it
            // made instead of making another.
            let key = self.create_key(b.name(), model, local_id).await?;
            let ctx = match b.ctx.egress.with_idempotency_key(&key) {
                Some(egress) => std::sync::Arc::new(crate::capabilities::CallContext {
                    egress: std::sync::Arc::new(egress),
                    ..(*b.ctx).clone()
                }),
                None => b.ctx.clone(),
            };
            let external_id = trail.call(
                &format!("creating {model} {local_id} in {}", b.name()),
                route(b, model)?.adapter.create(&ctx, model, &data).await,
            )?;
            self.storage
                .bind(
                    b.name(),
                    model,
                    &external_id,
                    local_id,
                    started,
                    Some(&snapshot),
                )
                .await
                .map_err(storage_failure)?;
            // Bound: a later create of this record (after an unbind) is a
            // new one.
            self.storage
                .state_delete(b.name(), &create_key_name(model, local_id))
                .await
                .map_err(storage_failure)?;
            return Ok(format!(
                "created {model} {external_id} in {} from local {local_id}",
                b.name()
            ));
        };
        let ext = &binding.external_id;
        let mut fields = pending_fields(fields, &record, binding.synced.as_deref());
        let mut note = String::new();
        // OCA's `_should_import`: has the backend's copy changed since we
        // last synced it?
        let remote = trail.call(
            &format!("reading {model} {ext} from {} before exporting", b.name()),
            route(b, model)?.adapter.read(&b.ctx, model, ext).await,
        )?;
        let changed_remotely = remote
            .updated_at
            .as_deref()
            .and_then(|t| parse_timestamp(t).ok())
            .is_some_and(|t| t > binding.sync_date);
        if changed_remotely {
            let (_, theirs) = self.import_leased(b, model, remote, holder, trail).await?;
            let Some(after) = self
                .storage
                .record(model, local_id)
                .await
                .map_err(storage_failure)?
            else {
                return Ok(format!(
                    "nothing to export: local {model} {local_id} is gone"
                ));
            };
            // A field both sides changed is a conflict, and the backend
            // wins; the fields only we changed still go out.
            let wanted = fields
                .clone()
                .unwrap_or_else(|| object(&after.data).keys().cloned().collect());
            let (lost, keep): (Vec<String>, Vec<String>) =
                wanted.into_iter().partition(|f| theirs.contains(f));
            note = format!(
                "; {ext} had changed in {} since the last sync, so it was imported first{}",
                b.name(),
                if lost.is_empty() {
                    String::new()
                } else {
                    format!(" and its values won for {}", lost.join(", "))
                }
            );
            if keep.is_empty() {
                return Ok(format!("nothing left to export{note}"));
            }
            fields = Some(keep);
            record = after;
        }
        let local = object(&record.data);
        let exported: Vec<String> = fields
            .clone()
            .unwrap_or_else(|| local.keys().cloned().collect());
        let data = self
            .map_for_export(b, model, local_id, record, fields, trail)
            .await?;
        let Some(data) = data else {
            return Ok(format!("nothing to export{note}"));
        };
        trail.call(
            &format!("writing {model} {ext} in {}", b.name()),
            route(b, model)?
                .adapter
                .write(&b.ctx, model, ext, &data)
                .await,
        )?;
        // What the backend now has for the exported fields is what we sent;
        // and the sync date must be after our own write, or the next import
        // would take our write for theirs.
        let mut synced = self
            .storage
            .binding(b.name(), model, ext)
            .await
            .map_err(storage_failure)?
            .and_then(|bd| bd.synced)
            .map(|t| object(&t))
            .unwrap_or_default();
        for f in &exported {
            if let Some(v) = local.get(f) {
                synced.insert(f.clone(), v.clone());
            }
        }
        let synced = Value::Object(synced).to_string();
        self.storage
            .bind(b.name(), model, ext, local_id, now_ms(), Some(&synced))
            .await
            .map_err(storage_failure)?;
        Ok(format!(
            "wrote {data} to {model} {ext} in {}{note}",
            b.name()
        ))
    }

    /// The backend's record that local `local_id` already is, by natural
    /// key, when its connector declares match fields for `model` and can
    /// find by them. The record's keys are stored on the way (a record
    /// made locally has none until it is synced), so that another
    /// backend's import adopts it too.
    async fn find_existing(
        &self,
        b: &BackendUnits,
        model: &str,
        local_id: &str,
        data: &str,
        version: u64,
        trail: &mut Trail,
    ) -> Result<Option<String>, JobFailure> {
        let units = route(b, model)?;
        let step = |label: &str| format!("reading the features of {label}");
        let mapper = units
            .mapper
            .features(&b.ctx)
            .await
            .map_err(|e| super::trail::failure(&step(&units.mapper_label), &e))?;
        let fields = mapper.match_fields(model);
        let data_object = object(data);
        let keys = crate::features::keys_of(&fields, &data_object);
        if fields.is_empty() {
            return Ok(None);
        }
        // Unchanged data writes no event; a record changed meanwhile keeps
        // its keys until its next sync.
        let write = RecordWrite {
            model: model.to_string(),
            id: local_id.to_string(),
            data: data.to_string(),
            expected_version: Some(version),
            origin_backend: None,
            bind: None,
            keys: Some(keys.clone()),
        };
        self.commit
            .put(vec![write], now_ms())
            .await
            .map_err(storage_failure)?;
        let adapter = units
            .adapter
            .features(&b.ctx)
            .await
            .map_err(|e| super::trail::failure(&step(&units.adapter_label), &e))?;
        if keys.is_empty() || !adapter.finds(model) {
            return Ok(None);
        }
        let wanted = adopt::Wanted {
            model,
            local_id,
            keys: &keys,
            data: &data_object,
        };
        match adopt::remote_match(&*self.storage, b, &units.adapter, wanted, trail).await? {
            adopt::Found::None => Ok(None),
            adopt::Found::One(ext) => Ok(Some(ext)),
            adopt::Found::Many(candidates) => Err(adopt::ambiguous(
                &format!("local {model} {local_id}"),
                &format!("{} {model}", b.name()),
                &candidates,
            )),
        }
    }

    /// The mapped data, or `None` when the mapper had nothing to send.
    async fn map_for_export(
        &self,
        b: &BackendUnits,
        model: &str,
        local_id: &str,
        record: LocalRecord,
        fields: Option<Vec<String>>,
        trail: &mut Trail,
    ) -> Result<Option<String>, JobFailure> {
        let report = route(b, model)?
            .mapper
            .map_export(&b.ctx, model, record, fields)
            .await;
        let data = trail.call_unless_nothing_to_do(
            &format!("mapping {model} {local_id} for {}", b.name()),
            report,
        )?;
        Ok(data.filter(|d| !object(d).is_empty()))
    }

    /// Delete the backend's copy of a deleted local record, then unbind.
    pub async fn delete_remote(
        &self,
        b: &BackendUnits,
        model: &str,
        local_id: &str,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        let Some(binding) = self
            .storage
            .binding_of_local(b.name(), model, local_id)
            .await
            .map_err(storage_failure)?
        else {
            return Ok(format!(
                "nothing to delete: local {model} {local_id} is not bound to {}",
                b.name()
            ));
        };
        let ext = &binding.external_id;
        let key = record_key(b.name(), model, ext);
        let delete = async {
            let report = route(b, model)?.adapter.delete(&b.ctx, model, ext).await;
            trail.call_unless_nothing_to_do(
                &format!("deleting {model} {ext} in {}", b.name()),
                report,
            )?;
            self.storage
                .unbind(b.name(), model, local_id)
                .await
                .map_err(storage_failure)?;
            Ok(format!("deleted {model} {ext} in {}", b.name()))
        };
        self.leased(&key, holder, delete).await
    }

    /// Delete the local record bound to a record the backend deleted,
    /// marked as coming from that backend, then unbind.
    /// Delete the local copy of a record the backend deleted, then unbind.
    /// `verify` (a reconciliation's deletions) first asks the backend for
    /// it: a record it still has, or has again, is kept.
    pub async fn delete_local(
        &self,
        b: &BackendUnits,
        model: &str,
        external_id: &str,
        verify: bool,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<String, JobFailure> {
        let key = record_key(b.name(), model, external_id);
        let delete = async {
            if verify {
                let report = route(b, model)?
                    .adapter
                    .read(&b.ctx, model, external_id)
                    .await;
                match trail.take(report) {
                    Ok(_) => {
                        return Ok(format!(
                            "kept: {model} {external_id} is in {} (again), so it was not deleted",
                            b.name()
                        ));
                    }
                    Err(crate::error::CallError::Guest(
                        crate::error::GuestError::NotFound { .. },
                        _,
                    )) => {}
                    Err(e) => {
                        return Err(super::trail::failure(
                            &format!(
                                "checking that {model} {external_id} is gone from {}",
                                b.name()
                            ),
                            &e,
                        ));
                    }
                }
            }
            let Some(binding) = self
                .storage
                .binding(b.name(), model, external_id)
                .await
                .map_err(storage_failure)?
            else {
                return Ok(format!(
                    "nothing to delete: {model} {external_id} of {} is not bound",
                    b.name()
                ));
            };
            self.storage
                .delete_record(model, &binding.local_id, Some(b.name()), now_ms())
                .await
                .map_err(storage_failure)?;
            self.storage
                .unbind(b.name(), model, &binding.local_id)
                .await
                .map_err(storage_failure)?;
            Ok(format!(
                "deleted local {model} {} ({external_id} was deleted in {})",
                binding.local_id,
                b.name()
            ))
        };
        self.leased(&key, holder, delete).await
    }
}
