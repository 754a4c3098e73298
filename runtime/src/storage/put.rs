//! Many record writes planned at once: what [`super::Storage::put_records`]
//! decides for each write — refused (bad JSON, a version conflict, a
//! binding another record holds), unchanged, created or written — taken
//! in Rust from the rows the batch touches, read up front, so that the SQL
//! is a few multi-row statements per batch instead of several statements
//! per record. With SQLite each statement is a round trip to the
//! connection's thread; a direct import writing a page of 100 records
//! spent most of its time there.
//!
//! The writes are planned in order, each seeing the ones before it (a
//! record or binding written twice in one batch), and a refused write
//! writes nothing, as one transaction per write would. The dialects read
//! the inputs and run the plan's rows; the decisions are made here once.

use std::collections::HashMap;

use super::{
    Binding, PutOutcome, RecordWrite, StorageError, StoredEvent, changed_fields, json_object,
};
use crate::model::{Event, LocalRecord, format_timestamp};

/// What the batch reads before planning: the stored records it writes,
/// and per (backend, model) the bindings of its external and local ids.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    pub records: HashMap<(String, String), LocalRecord>,
    /// (backend, model) → pairs (external id, local id).
    pub bindings: HashMap<(String, String), Vec<(String, String)>>,
}

impl Inputs {
    /// The ids to read: (model → record ids) and ((backend, model) →
    /// (external ids, local ids)).
    #[allow(clippy::type_complexity)]
    pub fn wanted(
        writes: &[RecordWrite],
    ) -> (
        HashMap<String, Vec<String>>,
        HashMap<(String, String), (Vec<String>, Vec<String>)>,
    ) {
        let mut records: HashMap<String, Vec<String>> = HashMap::new();
        let mut bindings: HashMap<(String, String), (Vec<String>, Vec<String>)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for w in writes {
            if seen.insert((&w.model, &w.id)) {
                records
                    .entry(w.model.clone())
                    .or_default()
                    .push(w.id.clone());
            }
            if let Some(b) = &w.bind {
                let (ext, loc) = bindings
                    .entry((b.backend.clone(), w.model.clone()))
                    .or_default();
                ext.push(b.external_id.clone());
                loc.push(w.id.clone());
            }
        }
        (records, bindings)
    }
}

/// The rows a batch writes, and each write's outcome (its event's id is
/// filled in by [`Plan::finish`] once the outbox rows have theirs).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The last state of each binding written, in first-written order
    /// (`synced` of `None` keeps the stored one).
    pub bindings: Vec<Binding>,
    /// The last state of each record written, in first-written order.
    pub records: Vec<LocalRecord>,
    /// Outbox rows, in the order of the writes.
    pub events: Vec<Event>,
    /// Records whose natural keys are replaced: (model, id, keys), each
    /// record once, its last keys.
    pub keys: Vec<(String, String, Vec<crate::features::MatchKey>)>,
    /// Per write: its outcome, and the index of its event in `events`.
    outcomes: Vec<Result<Option<(LocalRecord, usize)>, StorageError>>,
}

/// Plan `writes` against `inputs` at `now` (Unix ms).
pub(crate) fn plan(writes: &[RecordWrite], inputs: Inputs, now: i64) -> Plan {
    let mut records = inputs.records;
    // (backend, model) → external id → local id, and local id → external id.
    let mut ext_to_local: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
    let mut local_to_ext: HashMap<(String, String), HashMap<String, String>> = HashMap::new();
    for (key, pairs) in inputs.bindings {
        for (ext, loc) in pairs {
            ext_to_local
                .entry(key.clone())
                .or_default()
                .insert(ext.clone(), loc.clone());
            local_to_ext
                .entry(key.clone())
                .or_default()
                .insert(loc, ext);
        }
    }
    let mut plan = Plan::default();
    let mut binding_at: HashMap<(String, String, String), usize> = HashMap::new();
    let mut record_at: HashMap<(String, String), usize> = HashMap::new();
    for write in writes {
        let outcome = (|| {
            let new = json_object(
                &write.data,
                &format!("data of {} {}", write.model, write.id),
            )?;
            let key = (write.model.clone(), write.id.clone());
            let old = records.get(&key);
            let found = old.map_or(0, |r| r.version);
            if let Some(expected) = write.expected_version
                && expected != found
            {
                return Err(StorageError::VersionConflict {
                    model: write.model.clone(),
                    id: write.id.clone(),
                    expected,
                    found,
                });
            }
            let before = old
                .map(|r| json_object(&r.data, "stored data"))
                .transpose()?;
            // The binding first: it is written even when the data did not
            // change (the sync date moves), and a binding taken by another
            // record refuses the whole write.
            if let Some(b) = &write.bind {
                let group = (b.backend.clone(), write.model.clone());
                let by_ext = ext_to_local.entry(group.clone()).or_default();
                let by_local = local_to_ext.entry(group.clone()).or_default();
                let taken = match by_ext.get(&b.external_id) {
                    Some(loc) if *loc != write.id => Some((b.external_id.clone(), loc.clone())),
                    _ => match by_local.get(&write.id) {
                        Some(ext) if *ext != b.external_id => Some((ext.clone(), write.id.clone())),
                        _ => None,
                    },
                };
                if let Some((ext, loc)) = taken {
                    return Err(StorageError::Rejected(format!(
                        "{} on {}: external id {ext} is already bound to local id {loc}; cannot bind {} ↔ {}",
                        write.model, b.backend, b.external_id, write.id
                    )));
                }
                by_ext.insert(b.external_id.clone(), write.id.clone());
                by_local.insert(write.id.clone(), b.external_id.clone());
                let row_key = (group.0, group.1, b.external_id.clone());
                match binding_at.get(&row_key) {
                    Some(&i) => {
                        let row = &mut plan.bindings[i];
                        row.sync_date = b.sync_date;
                        if b.synced.is_some() {
                            row.synced = b.synced.clone();
                        }
                    }
                    None => {
                        binding_at.insert(row_key, plan.bindings.len());
                        plan.bindings.push(Binding {
                            backend: b.backend.clone(),
                            model: write.model.clone(),
                            external_id: b.external_id.clone(),
                            local_id: write.id.clone(),
                            sync_date: b.sync_date,
                            synced: b.synced.clone(),
                        });
                    }
                }
            }
            if let Some(keys) = &write.keys {
                match plan
                    .keys
                    .iter_mut()
                    .find(|(m, id, _)| *m == write.model && *id == write.id)
                {
                    Some(row) => row.2 = keys.clone(),
                    None => plan
                        .keys
                        .push((write.model.clone(), write.id.clone(), keys.clone())),
                }
            }
            let (name, fields) = match &before {
                None => ("record-created", new.keys().cloned().collect::<Vec<_>>()),
                Some(before) => {
                    let fields = changed_fields(before, &new);
                    if fields.is_empty() {
                        return Ok(None);
                    }
                    ("record-written", fields)
                }
            };
            let record = LocalRecord {
                model: write.model.clone(),
                id: write.id.clone(),
                data: write.data.clone(),
                version: found + 1,
                updated_at: format_timestamp(now),
            };
            match record_at.get(&key) {
                Some(&i) => plan.records[i] = record.clone(),
                None => {
                    record_at.insert(key.clone(), plan.records.len());
                    plan.records.push(record.clone());
                }
            }
            records.insert(key, record.clone());
            plan.events.push(Event {
                name: name.to_string(),
                model: write.model.clone(),
                local_id: Some(write.id.clone()),
                changed_fields: fields,
                payload: write.data.clone(),
                origin_backend: write.origin_backend.clone(),
            });
            Ok(Some((record, plan.events.len() - 1)))
        })();
        plan.outcomes.push(outcome);
    }
    plan
}

impl Plan {
    /// Each write's outcome, given the outbox ids of `events` in order.
    pub fn finish(self, event_ids: &[i64], now: i64) -> Vec<PutOutcome> {
        let events = self.events;
        self.outcomes
            .into_iter()
            .map(|o| {
                o.map(|done| {
                    done.map(|(record, i)| {
                        let stored = StoredEvent {
                            id: event_ids[i],
                            event: events[i].clone(),
                            created_at: now,
                        };
                        (record, stored)
                    })
                })
            })
            .collect()
    }
}

/// Rows per multi-row statement: within SQLite's bound-parameter limit.
pub(crate) const ROWS: usize = 200;

/// The statements of a record write, for `n` ids or rows.
pub(crate) mod sql {
    use super::super::rows::Params;

    /// Bind: model, then `n` ids.
    pub fn records(param: &'static str, n: usize) -> String {
        let mut p = Params::new(param);
        let model_p = p.next();
        format!(
            "SELECT model, id, data, version, updated_at FROM records WHERE model = {model_p} AND id IN ({})",
            p.list(n)
        )
    }

    /// Bind: backend, model, `n` external ids, `n` local ids.
    pub fn bindings(param: &'static str, n: usize) -> String {
        let mut p = Params::new(param);
        let (backend_p, model_p) = (p.next(), p.next());
        format!(
            "SELECT external_id, local_id FROM bindings WHERE backend = {backend_p} AND model = {model_p}
               AND (external_id IN ({}) OR local_id IN ({}))",
            p.list(n),
            p.list(n)
        )
    }

    /// Bind per row: backend, model, external id, local id, sync date, synced.
    pub fn upsert_bindings(param: &'static str, n: usize) -> String {
        format!(
            "INSERT INTO bindings (backend, model, external_id, local_id, sync_date, synced) VALUES {}
             ON CONFLICT (backend, model, external_id) DO UPDATE SET sync_date = excluded.sync_date,
                 synced = COALESCE(excluded.synced, bindings.synced)",
            Params::new(param).rows(n, 6)
        )
    }

    /// Bind per row: model, id, data, version, created at, updated at.
    pub fn upsert_records(param: &'static str, n: usize) -> String {
        format!(
            "INSERT INTO records (model, id, data, version, created_at, updated_at) VALUES {}
             ON CONFLICT (model, id) DO UPDATE SET data = excluded.data, version = excluded.version,
                 updated_at = excluded.updated_at",
            Params::new(param).rows(n, 6)
        )
    }

    /// Bind: model, local id.
    pub fn delete_keys() -> &'static str {
        "DELETE FROM record_keys WHERE model = $1 AND local_id = $2"
    }

    /// Bind: model, then `n` local ids.
    pub fn delete_keys_of(param: &'static str, n: usize) -> String {
        let mut p = Params::new(param);
        let model_p = p.next();
        format!(
            "DELETE FROM record_keys WHERE model = {model_p} AND local_id IN ({})",
            p.list(n)
        )
    }

    /// Bind per row: model, name, value, local id.
    pub fn insert_keys(param: &'static str, n: usize) -> String {
        format!(
            "INSERT INTO record_keys (model, name, value, local_id) VALUES {} ON CONFLICT DO NOTHING",
            Params::new(param).rows(n, 4)
        )
    }

    /// Bind: model, name, then `n` stored values.
    pub fn records_by_keys(param: &'static str, n: usize) -> String {
        let mut p = Params::new(param);
        let (model_p, name_p) = (p.next(), p.next());
        format!(
            "SELECT value, local_id FROM record_keys WHERE model = {model_p} AND name = {name_p} AND value IN ({})",
            p.list(n)
        )
    }

    /// Bind per row: name, model, local id, changed fields, payload,
    /// origin backend, created at. Returns the ids; sorted, they are the
    /// rows' in order (ids are assigned in VALUES order).
    pub fn insert_events(param: &'static str, n: usize) -> String {
        format!(
            "INSERT INTO outbox (name, model, local_id, changed_fields, payload, origin_backend, created_at)
             VALUES {} RETURNING id",
            Params::new(param).rows(n, 7)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BindWrite;

    fn write(id: &str, data: &str, ext: Option<&str>) -> RecordWrite {
        RecordWrite {
            model: "customer".into(),
            id: id.into(),
            data: data.into(),
            expected_version: None,
            origin_backend: None,
            bind: ext.map(|e| BindWrite {
                backend: "shop".into(),
                external_id: e.into(),
                sync_date: 5,
                synced: None,
            }),
            keys: None,
        }
    }

    #[test]
    fn a_batch_sees_its_own_earlier_writes() {
        let writes = [
            write("c1", r#"{"a":1}"#, Some("7")),
            write("c1", r#"{"a":2}"#, Some("7")),
            write("c1", r#"{"a":2}"#, Some("7")),
        ];
        let plan = plan(&writes, Inputs::default(), 10);
        assert_eq!(plan.bindings.len(), 1);
        assert_eq!(plan.records.len(), 1);
        assert_eq!(plan.records[0].version, 2);
        assert_eq!(plan.events.len(), 2);
        assert_eq!(plan.events[1].name, "record-written");
        let out = plan.finish(&[100, 101], 10);
        assert_eq!(out[0].as_ref().unwrap().as_ref().unwrap().1.id, 100);
        assert_eq!(out[1].as_ref().unwrap().as_ref().unwrap().0.version, 2);
        assert!(out[2].as_ref().unwrap().is_none(), "unchanged");
    }

    #[test]
    fn a_refused_write_writes_nothing_and_the_others_stand() {
        let mut inputs = Inputs::default();
        inputs.bindings.insert(
            ("shop".into(), "customer".into()),
            vec![("7".into(), "other".into())],
        );
        let writes = [
            write("c1", r#"{"a":1}"#, Some("7")),
            write("c2", "[1]", None),
            write("c3", r#"{"a":3}"#, Some("8")),
        ];
        let plan = plan(&writes, inputs, 10);
        assert_eq!(plan.records.len(), 1);
        assert_eq!(plan.bindings.len(), 1);
        let out = plan.finish(&[1], 10);
        assert!(
            matches!(&out[0], Err(StorageError::Rejected(m)) if m.contains("already bound to local id other"))
        );
        assert!(matches!(&out[1], Err(StorageError::Rejected(m)) if m.contains("JSON object")));
        assert!(out[2].is_ok());
    }
}
