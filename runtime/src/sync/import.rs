//! Importing records (OCA's Importer): lease the record, read it through
//! the adapter, skip it when the binding is newer, import what it depends
//! on first, map it, merge it into the local record and bind it — record,
//! binding and event in one transaction, marked as coming from the backend
//! so that it is not exported straight back.
//!
//! One pipeline serves a single record and a search page alike: the
//! database is asked once per page for the bindings, the related records'
//! bindings (which the mapper's binder then finds without a query) and the
//! local records, and the page's writes go in one transaction; the guest
//! calls of the page run concurrently.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde_json::{Map, Value};

use super::adopt;
use super::binder::PrefetchedBinder;
use super::trail::{Trail, declined, prefixed};
use super::{BackendUnits, Synchronizer, route, storage_failure};
use crate::capabilities::{CallContext, Services};
use crate::model::{Dependency, RemoteRecord, parse_timestamp};
use crate::queue::now_ms;
use crate::queue::worker::JobFailure;
use crate::storage::{BindWrite, Binding, PutOutcome, RecordWrite};

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
    /// Bound to an existing local record with an equal natural key
    /// (`key`, as `name=value`) instead of creating another.
    Adopted {
        local_id: String,
        key: String,
    },
}

impl Imported {
    pub fn local_id(&self) -> &str {
        match self {
            Imported::Created { local_id }
            | Imported::Updated { local_id }
            | Imported::Unchanged { local_id }
            | Imported::Skipped { local_id }
            | Imported::Adopted { local_id, .. } => local_id,
        }
    }
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
            Imported::Adopted { local_id, key } => write!(
                f,
                "adopted local record {local_id} (same {key}) instead of creating another"
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

/// What one import is about, the same for every record it takes: the
/// backend, the model, whether to ignore sync dates (`force`), the lease
/// holder (the job's try), and the records whose import led here (a
/// dependency chain, to stop cycles).
#[derive(Clone, Copy)]
pub(crate) struct ImportRun<'a> {
    pub b: &'a BackendUnits,
    pub model: &'a str,
    pub force: bool,
    pub holder: &'a str,
    pub ancestors: &'a [(String, String)],
}

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
        let run = ImportRun {
            b,
            model,
            force,
            holder,
            ancestors: &[],
        };
        self.import_one(run, external_id, None, trail)
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
        let run = ImportRun {
            b,
            model,
            force: false,
            holder,
            ancestors: &[],
        };
        self.import_many(run, vec![(id, Some(record))], trail)
            .await
            .pop()
            .unwrap_or_else(|| Err(JobFailure::fail("import", "nothing was imported")))
    }

    fn import_one<'a>(
        &'a self,
        run: ImportRun<'a>,
        external_id: &'a str,
        found: Option<RemoteRecord>,
        trail: &'a mut Trail,
    ) -> Flow<'a> {
        Box::pin(async move {
            let key = record_key(run.b.name(), run.model, external_id);
            let import = self.import_many(run, vec![(external_id.to_string(), found)], trail);
            self.leased(&key, run.holder, async {
                import
                    .await
                    .pop()
                    .unwrap_or_else(|| Err(JobFailure::fail("import", "nothing was imported")))
            })
            .await
        })
    }

    /// Import records of one model whose leases the caller holds; each is
    /// given by id and, when a search already returned it, as found. The
    /// results are in the order of `wanted`.
    pub(crate) async fn import_many(
        &self,
        run: ImportRun<'_>,
        wanted: Vec<(String, Option<RemoteRecord>)>,
        trail: &mut Trail,
    ) -> Vec<Result<Done, JobFailure>> {
        let ImportRun {
            b,
            model,
            force,
            holder,
            ancestors,
        } = run;
        let n = wanted.len();
        let mut results: Vec<Option<Result<Done, JobFailure>>> = (0..n).map(|_| None).collect();
        let fail_all = |f: JobFailure, results: &mut Vec<Option<Result<Done, JobFailure>>>| {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Err(f.clone()));
            }
        };
        let units = match route(b, model) {
            Ok(r) => r,
            Err(f) => {
                fail_all(f, &mut results);
                return collect(results);
            }
        };
        // The sync date is when the read began: a change made while this
        // import runs is newer and will be imported by the next run.
        let started = now_ms();
        let ids: Vec<String> = wanted.iter().map(|(id, _)| id.clone()).collect();
        let bound: HashMap<String, Binding> =
            match self.storage.bindings_of(b.name(), model, &ids).await {
                Ok(v) => v
                    .into_iter()
                    .map(|bd| (bd.external_id.clone(), bd))
                    .collect(),
                Err(e) => {
                    fail_all(storage_failure(e), &mut results);
                    return collect(results);
                }
            };
        let concurrency = self.settings.direct_concurrency.max(1);

        // Read what a search did not return.
        let calls: Vec<_> = wanted
            .into_iter()
            .enumerate()
            .map(|(i, (id, found))| async move {
                let mut t = Trail::default();
                let r = match found {
                    Some(r) => Ok(r),
                    None => t.call(
                        &format!("reading {model} {id} from {}", b.name()),
                        units.adapter.read(&b.ctx, model, &id).await,
                    ),
                };
                (i, r, t)
            })
            .collect();
        let read: Vec<(usize, Result<RemoteRecord, JobFailure>, Trail)> = stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut records: Vec<(usize, RemoteRecord)> = Vec::new();
        for (i, r, t) in read {
            trail.absorb(t);
            match r {
                Err(f) => results[i] = Some(Err(f)),
                Ok(record) => match bound.get(&ids[i]) {
                    Some(bd) if !force && is_older(record.updated_at.as_deref(), bd.sync_date) => {
                        results[i] = Some(Ok((
                            Imported::Skipped {
                                local_id: bd.local_id.clone(),
                            },
                            Vec::new(),
                        )));
                    }
                    _ => records.push((i, record)),
                },
            }
        }

        // What each record depends on, and those dependencies' bindings.
        // Futures built before streaming them: a stream over borrowed items
        // inside this boxed, recursive future trips a higher-ranked
        // lifetime limit of the compiler.
        let calls: Vec<_> = records
            .iter()
            .map(|(i, record)| async move {
                let mut t = Trail::default();
                let r = t.call(
                    &format!("listing what {model} {} depends on", record.external_id),
                    units.mapper.dependencies(&b.ctx, model, record).await,
                );
                (*i, r, t)
            })
            .collect();
        let deps: Vec<(usize, Result<Vec<Dependency>, JobFailure>, Trail)> = stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut needs: HashMap<usize, Vec<Dependency>> = HashMap::new();
        for (i, r, t) in deps {
            trail.absorb(t);
            match r {
                Ok(d) => {
                    needs.insert(i, d);
                }
                // "Nothing to do" for what it needs: it needs nothing.
                Err(f) if declined(&f) => {}
                Err(f) => results[i] = Some(Err(f)),
            }
        }
        let mut known: HashMap<(String, String), String> = HashMap::new();
        let mut by_model: HashMap<&str, HashSet<&str>> = HashMap::new();
        for d in needs.values().flatten() {
            by_model.entry(&d.model).or_default().insert(&d.external_id);
        }
        for (dep_model, dep_ids) in &by_model {
            let dep_ids: Vec<String> = dep_ids.iter().map(|s| s.to_string()).collect();
            match self
                .storage
                .bindings_of(b.name(), dep_model, &dep_ids)
                .await
            {
                Ok(found) => {
                    for bd in found {
                        known.insert((bd.model, bd.external_id), bd.local_id);
                    }
                }
                Err(e) => {
                    fail_all(storage_failure(e), &mut results);
                    return collect(results);
                }
            }
        }

        // Dependencies not imported yet are imported now, each once.
        let mut missing: Vec<&Dependency> = Vec::new();
        for d in needs.values().flatten() {
            if !known.contains_key(&(d.model.clone(), d.external_id.clone()))
                && !missing
                    .iter()
                    .any(|m| m.model == d.model && m.external_id == d.external_id)
            {
                missing.push(d);
            }
        }
        let mut dep_failures: HashMap<(String, String), JobFailure> = HashMap::new();
        // The records being imported on the way here, these included: a
        // dependency among them is a cycle, which would otherwise wait on
        // its own lease forever.
        let mut chain: Vec<(String, String)> = ancestors.to_vec();
        chain.extend(ids.iter().map(|id| (model.to_string(), id.clone())));
        missing.retain(|d| {
            let key = (d.model.clone(), d.external_id.clone());
            if chain.contains(&key) {
                dep_failures.insert(
                    key,
                    JobFailure::fail(
                        "dependencies",
                        format!(
                            "{} {} is already being imported on the way here: the mapper's dependencies form a cycle",
                            d.model, d.external_id
                        ),
                    ),
                );
                false
            } else {
                true
            }
        });
        if !missing.is_empty() && ancestors.len() as u32 >= self.settings.max_dependency_depth {
            for d in &missing {
                dep_failures.insert(
                    (d.model.clone(), d.external_id.clone()),
                    JobFailure::fail(
                        "dependencies",
                        format!(
                            "dependencies nest deeper than {} levels; check the mapper's dependencies for a cycle",
                            self.settings.max_dependency_depth
                        ),
                    ),
                );
            }
        } else {
            let calls: Vec<_> = missing
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    let chain = &chain;
                    async move {
                        let mut t = Trail::default();
                        // Each dependency import leases under a name of its own.
                        let holder = format!("{holder}:{}:{k}", chain.len());
                        let run = ImportRun {
                            b,
                            model: &d.model,
                            force: false,
                            holder: &holder,
                            ancestors: chain,
                        };
                        let r = self.import_one(run, &d.external_id, None, &mut t).await;
                        (*d, r, t)
                    }
                })
                .collect();
            let imported: Vec<(&Dependency, Result<Done, JobFailure>, Trail)> = stream::iter(calls)
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for (d, r, t) in imported {
                trail.absorb(t);
                let key = (d.model.clone(), d.external_id.clone());
                match r {
                    Ok((outcome, _)) => {
                        known.insert(key, outcome.local_id().to_string());
                    }
                    // The connector declined the dependency: the record is
                    // imported without it (its mapper finds no binding and
                    // decides).
                    Err(f) if declined(&f) => {}
                    Err(f) => {
                        dep_failures.insert(key, f);
                    }
                }
            }
        }
        records.retain(|(i, record)| {
            let failed = needs.get(i).into_iter().flatten().find_map(|d| {
                dep_failures
                    .get(&(d.model.clone(), d.external_id.clone()))
                    .map(|f| (d, f))
            });
            match failed {
                Some((d, f)) => {
                    let step = format!(
                        "{model} {} needs {} {} imported first",
                        record.external_id, d.model, d.external_id
                    );
                    results[*i] = Some(Err(prefixed(&step, f.clone())));
                    false
                }
                None => results[*i].is_none(),
            }
        });

        // Map, with the relations' bindings already at hand.
        let ctx = Arc::new(CallContext {
            services: Services {
                binder: Arc::new(PrefetchedBinder::new(
                    b.name(),
                    known,
                    b.ctx.services.binder.clone(),
                )),
                ..b.ctx.services.clone()
            },
            ..(*b.ctx).clone()
        });
        let calls: Vec<_> = records
            .iter()
            .map(|(i, record)| {
                let ctx = ctx.clone();
                async move {
                    let mut t = Trail::default();
                    let r = t.call(
                        &format!("mapping {model} {}", record.external_id),
                        units.mapper.map_import(&ctx, model, record).await,
                    );
                    (*i, r, t)
                }
            })
            .collect();
        let mapped: Vec<(usize, Result<String, JobFailure>, Trail)> = stream::iter(calls)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let local_ids: Vec<String> = bound.values().map(|bd| bd.local_id.clone()).collect();
        let existing: HashMap<String, crate::model::LocalRecord> =
            match self.storage.records_of(model, &local_ids).await {
                Ok(v) => v.into_iter().map(|r| (r.id.clone(), r)).collect(),
                Err(e) => {
                    fail_all(storage_failure(e), &mut results);
                    return collect(results);
                }
            };
        // Natural keys: the match fields the mapper's component declares.
        let fields: Vec<String> = match units.mapper.features(&b.ctx).await {
            Ok(f) => f
                .match_fields(model)
                .into_iter()
                .map(str::to_string)
                .collect(),
            Err(e) => {
                fail_all(
                    super::trail::failure(
                        &format!("reading the features of {}", units.mapper_label),
                        &e,
                    ),
                    &mut results,
                );
                return collect(results);
            }
        };
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        // Mapped data parsed once; the keys of the records not bound yet
        // looked up together.
        let mapped: Vec<(usize, Result<Mapped, JobFailure>, Trail)> = mapped
            .into_iter()
            .map(|(i, r, t)| {
                (
                    i,
                    r.and_then(|text| object(&text, model, &ids[i], &units.mapper_label)),
                    t,
                )
            })
            .collect();
        let wanted: Vec<crate::features::MatchKey> = if fields.is_empty() {
            Vec::new()
        } else {
            let mut all: Vec<crate::features::MatchKey> = mapped
                .iter()
                .filter(|(i, _, _)| !bound.contains_key(&ids[*i]))
                .filter_map(|(_, r, _)| r.as_ref().ok())
                .flat_map(|data| crate::features::keys_of(&fields, data))
                .collect();
            all.sort();
            all.dedup();
            all
        };
        let held = match adopt::holders(&*self.storage, model, &wanted).await {
            Ok(held) => held,
            Err(e) => {
                fail_all(storage_failure(e), &mut results);
                return collect(results);
            }
        };
        // Local records adopted by this batch: another record of the batch
        // with the same key is a different record of the backend.
        let mut taken: HashSet<String> = HashSet::new();
        let mut writes = Vec::new();
        let mut pending = Vec::new();
        for (i, r, t) in mapped {
            trail.absorb(t);
            let id = &ids[i];
            let mapped = match r {
                Ok(mapped) => mapped,
                Err(f) => {
                    results[i] = Some(Err(f));
                    continue;
                }
            };
            let binding = bound.get(id);
            let keys = (!fields.is_empty()).then(|| crate::features::keys_of(&fields, &mapped));
            let mut adopted: Option<(crate::model::LocalRecord, String)> = None;
            if binding.is_none()
                && let Some(keys) = &keys
            {
                let found =
                    adopt::local_match(&*self.storage, b.name(), model, keys, &held, &taken).await;
                let local = match found {
                    Ok(adopt::Found::None) => None,
                    Ok(adopt::Found::One(local)) => Some(local),
                    Ok(adopt::Found::Many(candidates)) => {
                        results[i] = Some(Err(adopt::ambiguous(
                            &format!("{model} {id} from {}", b.name()),
                            &format!("local {model}"),
                            &candidates,
                        )));
                        continue;
                    }
                    Err(e) => {
                        results[i] = Some(Err(storage_failure(e)));
                        continue;
                    }
                };
                if let Some(local) = local {
                    match self.storage.record(model, &local).await {
                        Ok(Some(r)) => {
                            let key = keys
                                .iter()
                                .map(|k| k.label())
                                .collect::<Vec<_>>()
                                .join(", ");
                            taken.insert(local);
                            adopted = Some((r, key));
                        }
                        // Deleted since its keys were read: create.
                        Ok(None) => {}
                        Err(e) => {
                            results[i] = Some(Err(storage_failure(e)));
                            continue;
                        }
                    }
                }
            }
            let (mut write, changed) = merge(
                run,
                id,
                mapped,
                binding,
                adopted
                    .as_ref()
                    .map(|(r, _)| r)
                    .or_else(|| binding.and_then(|bd| existing.get(&bd.local_id))),
                started,
            );
            write.keys = keys;
            writes.push(write);
            pending.push((i, changed, adopted.map(|(_, key)| key)));
        }
        if !writes.is_empty() {
            let local_ids: Vec<String> = writes.iter().map(|w| w.id.clone()).collect();
            match self.commit.put(writes, now_ms()).await {
                Ok(stored) => {
                    for ((outcome, local_id), (i, changed, adopted)) in
                        stored.into_iter().zip(local_ids).zip(pending)
                    {
                        results[i] = Some(finish(outcome, local_id, changed).map(
                            |(imported, changed)| match adopted {
                                Some(key) => (
                                    Imported::Adopted {
                                        local_id: imported.local_id().to_string(),
                                        key,
                                    },
                                    changed,
                                ),
                                None => (imported, changed),
                            },
                        ));
                    }
                }
                Err(e) => fail_all(storage_failure(e), &mut results),
            }
        }
        collect(results)
    }
}

/// A mapped record: local data.
type Mapped = Map<String, Value>;

/// What a mapper returned, as the JSON object it must be.
fn object(
    text: &str,
    model: &str,
    id: &str,
    mapper: &str,
) -> Result<Map<String, Value>, JobFailure> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mapped)) => Ok(mapped),
        Ok(_) => Err(JobFailure::fail(
            "mapper",
            format!("mapping {model} {id}: {mapper} returned something other than a JSON object"),
        )),
        Err(e) => Err(JobFailure::fail(
            "mapper",
            format!(
                "mapping {model} {id}: what {mapper} returned {}",
                crate::model::json_problem(&e)
            ),
        )),
    }
}

/// The write for a mapped record. Three-way merge: only the fields the
/// backend changed since the last sync are applied, so a local change
/// still waiting for its export is not overwritten by the backend's older
/// value; fields only the local side has stay.
fn merge(
    run: ImportRun<'_>,
    external_id: &str,
    mapped: Map<String, Value>,
    binding: Option<&Binding>,
    existing: Option<&crate::model::LocalRecord>,
    started: i64,
) -> (RecordWrite, Vec<String>) {
    let (backend, model, force) = (run.b.name(), run.model, run.force);
    let snapshot: Option<Map<String, Value>> = binding
        .and_then(|bd| bd.synced.as_deref())
        .and_then(|t| serde_json::from_str(t).ok());
    let changed: Vec<String> = mapped
        .iter()
        .filter(|(k, v)| {
            force
                || snapshot
                    .as_ref()
                    .is_none_or(|s| !s.get(*k).is_some_and(|o| crate::model::same_value(o, v)))
        })
        .map(|(k, _)| k.clone())
        .collect();
    let synced = Value::Object(mapped.clone()).to_string();
    // An adopted record has no binding yet but is `existing`.
    let local_id = binding
        .map(|bd| bd.local_id.clone())
        .or_else(|| existing.map(|r| r.id.clone()))
        .unwrap_or_else(|| new_local_id(model));
    let (data, expected) = match existing {
        Some(r) => {
            let mut merged: Map<String, Value> = serde_json::from_str(&r.data).unwrap_or_default();
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
        id: local_id,
        data: Value::Object(data).to_string(),
        expected_version: Some(expected),
        origin_backend: Some(backend.to_string()),
        bind: Some(BindWrite {
            backend: backend.to_string(),
            external_id: external_id.to_string(),
            sync_date: started,
            synced: Some(synced),
        }),
        keys: None,
    };
    (write, changed)
}

fn collect(results: Vec<Option<Result<Done, JobFailure>>>) -> Vec<Result<Done, JobFailure>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(JobFailure::fail("import", "the record was not handled"))))
        .collect()
}

/// The outcome of an import's write.
pub(crate) fn finish(
    stored: PutOutcome,
    local_id: String,
    changed: Vec<String>,
) -> Result<Done, JobFailure> {
    let outcome = match stored.map_err(storage_failure)? {
        Some((r, _)) if r.version == 1 => Imported::Created { local_id },
        Some(_) => Imported::Updated { local_id },
        None => Imported::Unchanged { local_id },
    };
    Ok((outcome, changed))
}

/// The lease name of a record of a backend.
pub(crate) fn record_key(backend: &str, model: &str, external_id: &str) -> String {
    format!("record:{backend}:{model}:{external_id}")
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
