//! Importing one record (OCA's Importer): lease the record, read it through
//! the adapter, skip it when the binding is newer, import what it depends
//! on first, map it, merge it into the local record and bind it — record,
//! binding and event in one transaction, marked as coming from the backend
//! so that it is not exported straight back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use super::trail::{Trail, prefixed};
use super::{BackendUnits, Synchronizer, storage_failure};
use crate::model::{RemoteRecord, parse_timestamp};
use crate::queue::now_ms;
use crate::queue::worker::JobFailure;
use crate::storage::{BindWrite, RecordWrite};

/// What importing one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    Created {
        local_id: String,
    },
    Updated {
        local_id: String,
    },
    /// Read and mapped, but the local record already had that data.
    Unchanged {
        local_id: String,
    },
    /// Not read further: the binding's sync date is newer than the
    /// backend's last change.
    Skipped {
        local_id: String,
    },
}

impl fmt::Display for Imported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Imported::Created { local_id } => write!(f, "created local record {local_id}"),
            Imported::Updated { local_id } => write!(f, "updated local record {local_id}"),
            Imported::Unchanged { local_id } => {
                write!(f, "local record {local_id} already had this data")
            }
            Imported::Skipped { local_id } => write!(
                f,
                "skipped: local record {local_id} was synced after the backend's last change"
            ),
        }
    }
}

/// A new local id: the model and 64 random bits.
fn new_local_id(model: &str) -> String {
    format!("{model}-{:016x}", rand::random::<u64>())
}

/// An import's outcome and the mapped fields the backend changed since the
/// last sync (all of them when there was no earlier sync).
pub(crate) type Done = (Imported, Vec<String>);

type Flow<'a> = Pin<Box<dyn Future<Output = Result<Done, JobFailure>> + Send + 'a>>;

impl Synchronizer {
    /// Import `model` `external_id` from the backend (`force` ignores the
    /// sync date).
    pub async fn import_record(
        &self,
        b: &BackendUnits,
        model: &str,
        external_id: &str,
        force: bool,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<Imported, JobFailure> {
        self.import_one(b, model, external_id, None, force, holder, trail, 0)
            .await
            .map(|(i, _)| i)
    }

    /// Import a record a search already returned, without reading it again.
    pub(crate) async fn import_found(
        &self,
        b: &BackendUnits,
        model: &str,
        record: RemoteRecord,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<Imported, JobFailure> {
        let id = record.external_id.clone();
        self.import_one(b, model, &id, Some(record), false, holder, trail, 0)
            .await
            .map(|(i, _)| i)
    }

    /// Import a record whose lease the caller already holds (an export
    /// that found the backend's copy newer).
    pub(crate) async fn import_leased(
        &self,
        b: &BackendUnits,
        model: &str,
        record: RemoteRecord,
        holder: &str,
        trail: &mut Trail,
    ) -> Result<Done, JobFailure> {
        let id = record.external_id.clone();
        self.import_locked(b, model, &id, Some(record), false, holder, trail, 0)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    fn import_one<'a>(
        &'a self,
        b: &'a BackendUnits,
        model: &'a str,
        external_id: &'a str,
        found: Option<RemoteRecord>,
        force: bool,
        holder: &'a str,
        trail: &'a mut Trail,
        depth: u32,
    ) -> Flow<'a> {
        Box::pin(async move {
            let key = format!("record:{}:{model}:{external_id}", b.name());
            self.lock(&key, holder).await?;
            let result = self
                .import_locked(b, model, external_id, found, force, holder, trail, depth)
                .await;
            self.unlock(&key, holder).await;
            result
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn import_locked(
        &self,
        b: &BackendUnits,
        model: &str,
        external_id: &str,
        found: Option<RemoteRecord>,
        force: bool,
        holder: &str,
        trail: &mut Trail,
        depth: u32,
    ) -> Result<Done, JobFailure> {
        // The sync date is when the read began: a change made while this
        // import runs is newer and will be imported by the next run.
        let started = now_ms();
        let binding = self
            .storage
            .binding(b.name(), model, external_id)
            .await
            .map_err(storage_failure)?;
        let record = match found {
            Some(r) => r,
            None => trail.call(
                &format!("reading {model} {external_id} from {}", b.name()),
                b.adapter.read(&b.ctx, model, external_id).await,
            )?,
        };
        if let Some(bound) = &binding
            && !force
            && is_older(record.updated_at.as_deref(), bound.sync_date)
        {
            return Ok((
                Imported::Skipped {
                    local_id: bound.local_id.clone(),
                },
                Vec::new(),
            ));
        }
        let deps = trail.call(
            &format!("listing what {model} {external_id} depends on"),
            b.mapper.dependencies(&b.ctx, model, &record).await,
        )?;
        for dep in deps {
            let bound = self
                .storage
                .binding(b.name(), &dep.model, &dep.external_id)
                .await
                .map_err(storage_failure)?;
            if bound.is_some() {
                continue;
            }
            let step = format!(
                "{model} {external_id} needs {} {} imported first",
                dep.model, dep.external_id
            );
            if depth >= self.settings.max_dependency_depth {
                return Err(JobFailure::fail(
                    "dependencies",
                    format!(
                        "{step}, but dependencies nest deeper than {} levels; check the mapper's dependencies for a cycle",
                        self.settings.max_dependency_depth
                    ),
                ));
            }
            self.import_one(
                b,
                &dep.model,
                &dep.external_id,
                None,
                false,
                holder,
                trail,
                depth + 1,
            )
            .await
            .map_err(|f| prefixed(&step, f))?;
        }
        let mapped = trail.call(
            &format!("mapping {model} {external_id}"),
            b.mapper.map_import(&b.ctx, model, &record).await,
        )?;
        let Ok(Value::Object(mapped)) = serde_json::from_str::<Value>(&mapped) else {
            return Err(JobFailure::fail(
                "mapper",
                format!(
                    "mapping {model} {external_id}: {} returned something other than a JSON object",
                    b.mapper_label
                ),
            ));
        };
        // Three-way merge: only the fields the backend changed since the
        // last sync are applied, so a local change still waiting for its
        // export is not overwritten by the backend's older value.
        let snapshot: Option<Map<String, Value>> = binding
            .as_ref()
            .and_then(|bd| bd.synced.as_deref())
            .and_then(|t| serde_json::from_str(t).ok());
        let changed: Vec<String> = mapped
            .iter()
            .filter(|(k, v)| force || snapshot.as_ref().is_none_or(|s| s.get(*k) != Some(*v)))
            .map(|(k, _)| k.clone())
            .collect();
        let synced = Value::Object(mapped.clone()).to_string();
        let local_id = binding
            .map(|bd| bd.local_id)
            .unwrap_or_else(|| new_local_id(model));
        let existing = self
            .storage
            .record(model, &local_id)
            .await
            .map_err(storage_failure)?;
        let (data, expected) = match existing {
            Some(r) => {
                let mut merged: Map<String, Value> =
                    serde_json::from_str(&r.data).unwrap_or_default();
                for (k, v) in mapped {
                    if changed.contains(&k) || !merged.contains_key(&k) {
                        merged.insert(k, v);
                    }
                }
                (merged, r.version)
            }
            None => (mapped, 0),
        };
        let write = RecordWrite {
            model: model.to_string(),
            id: local_id.clone(),
            data: Value::Object(data).to_string(),
            expected_version: Some(expected),
            origin_backend: Some(b.name().to_string()),
            bind: Some(BindWrite {
                backend: b.name().to_string(),
                external_id: external_id.to_string(),
                sync_date: started,
                synced: Some(synced),
            }),
        };
        let stored = self
            .storage
            .put_record(&write, now_ms())
            .await
            .map_err(storage_failure)?;
        let outcome = match stored {
            Some((r, _)) if r.version == 1 => Imported::Created { local_id },
            Some(_) => Imported::Updated { local_id },
            None => Imported::Unchanged { local_id },
        };
        Ok((outcome, changed))
    }
}

/// Whether a backend change at `updated_at` is older than a sync at
/// `sync_date` (Unix ms). Backends often keep whole seconds, so a change
/// in the same second as the sync counts as newer; no update time at all
/// counts as newer too (import to be safe).
pub(crate) fn is_older(updated_at: Option<&str>, sync_date: i64) -> bool {
    updated_at
        .and_then(|t| parse_timestamp(t).ok())
        .is_some_and(|t| t < sync_date - sync_date.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::is_older;

    #[test]
    fn a_change_in_the_same_second_as_the_sync_is_not_older() {
        let sync = crate::model::parse_timestamp("2026-11-29T10:00:00.500Z").unwrap();
        assert!(is_older(Some("2026-11-29T09:59:59Z"), sync));
        assert!(!is_older(Some("2026-11-29T10:00:00Z"), sync));
        assert!(!is_older(Some("2026-11-29T10:00:01Z"), sync));
        assert!(!is_older(None, sync));
        assert!(!is_older(Some("garbage"), sync));
    }
}
