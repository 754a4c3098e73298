//! Adoption by natural key. A connector declares match fields (a
//! customer's `email`, a product's `sku`); the host reads their values
//! from local-form data (`features::keys_of`) and keeps them per record in
//! `record_keys`, written with the record. A backend record with no
//! binding yet is then the local record with an equal key — when exactly
//! one such record is not bound on that backend already — and is bound to
//! it instead of becoming a duplicate: on import, where the local record
//! may have come from another backend, and on export, where the backend
//! is searched by key (`lookup.find`) before a create. Two or more
//! candidates are never guessed between: the job fails naming them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::features::MatchKey;
use crate::host::Unit;
use crate::queue::worker::JobFailure;
use crate::storage::{Storage, StorageError};

use super::BackendUnits;
use super::trail::{Trail, declined};

/// What a key lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    None,
    One(String),
    /// Every candidate with the key that matched it.
    Many(Vec<(String, MatchKey)>),
}

impl Found {
    fn of(mut candidates: Vec<(String, MatchKey)>) -> Found {
        match candidates.len() {
            0 => Found::None,
            1 => Found::One(candidates.remove(0).0),
            _ => Found::Many(candidates),
        }
    }
}

/// The local records holding any of many records' keys, read at once:
/// (key → local ids).
pub(crate) async fn holders(
    storage: &dyn Storage,
    model: &str,
    keys: &[MatchKey],
) -> Result<HashMap<MatchKey, Vec<String>>, StorageError> {
    let mut out: HashMap<MatchKey, Vec<String>> = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    for (key, id) in storage.records_by_keys(model, keys).await? {
        out.entry(key).or_default().push(id);
    }
    Ok(out)
}

/// The local record of `model` that `keys` name (their holders read by
/// [`holders`]), among those not bound on `backend` already (such a
/// record is another of the backend's records) and not in `taken`
/// (adopted earlier in the same batch).
pub(crate) async fn local_match(
    storage: &dyn Storage,
    backend: &str,
    model: &str,
    keys: &[MatchKey],
    held: &HashMap<MatchKey, Vec<String>>,
    taken: &HashSet<String>,
) -> Result<Found, StorageError> {
    let mut candidates: BTreeMap<String, MatchKey> = BTreeMap::new();
    for key in keys {
        for id in held.get(key).into_iter().flatten() {
            candidates.entry(id.clone()).or_insert_with(|| key.clone());
        }
    }
    let mut free = Vec::new();
    for (id, key) in candidates {
        if taken.contains(&id)
            || storage
                .binding_to_external(backend, model, &id)
                .await?
                .is_some()
        {
            continue;
        }
        free.push((id, key));
    }
    Ok(Found::of(free))
}

/// A local record looking for its counterpart in a backend: its keys, and
/// its data in local form (where the keys' values are read).
#[derive(Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub model: &'a str,
    pub local_id: &'a str,
    pub keys: &'a [MatchKey],
    pub data: &'a serde_json::Map<String, serde_json::Value>,
}

/// The backend's record of `model` that `keys` name (`lookup.find`, one
/// call per key, with the value as `data` holds it), among those not bound
/// to another local record already. The guest saying there was nothing to
/// do for a key finds nothing.
pub(crate) async fn remote_match(
    storage: &dyn Storage,
    b: &BackendUnits,
    adapter: &Unit,
    wanted: Wanted<'_>,
    trail: &mut Trail,
) -> Result<Found, JobFailure> {
    let (backend, ctx) = (b.name(), &b.ctx);
    let Wanted {
        model,
        local_id,
        keys,
        data,
    } = wanted;
    let mut candidates: BTreeMap<String, MatchKey> = BTreeMap::new();
    for key in keys {
        let Some(value) = crate::features::raw_value(data, &key.name) else {
            continue;
        };
        let step = format!("looking for {model} {} in {backend}", key.label());
        let ids = match trail.call(&step, adapter.find(ctx, model, &key.name, &value).await) {
            Ok(ids) => ids,
            Err(f) if declined(&f) => Vec::new(),
            Err(f) => return Err(f),
        };
        for id in ids {
            candidates.entry(id).or_insert_with(|| key.clone());
        }
    }
    let mut free = Vec::new();
    for (id, key) in candidates {
        let bound = storage
            .binding_to_local(backend, model, &id)
            .await
            .map_err(super::storage_failure)?;
        if bound.is_some_and(|other| other != local_id) {
            continue;
        }
        free.push((id, key));
    }
    Ok(Found::of(free))
}

/// The failure for a record that matches several records by key.
pub(crate) fn ambiguous(what: &str, among: &str, candidates: &[(String, MatchKey)]) -> JobFailure {
    let named: Vec<String> = candidates
        .iter()
        .take(5)
        .map(|(id, key)| {
            format!(
                "{} ({})",
                crate::text::truncate(&crate::text::clean(id), 128),
                key.label()
            )
        })
        .collect();
    let more = candidates.len().saturating_sub(named.len());
    JobFailure::fail(
        "ambiguous-match",
        format!(
            "{what} matches {} {among} records by natural key: {}{}; nothing was adopted or created — merge the duplicates (or change the key of all but one), then retry the job",
            candidates.len(),
            named.join(" and "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ambiguous_match_names_both_candidates_and_what_to_do() {
        let key = MatchKey {
            name: "email".into(),
            value: "ada@example.com".into(),
        };
        let f = ambiguous(
            "customer 7 from shop",
            "local customer",
            &[("c-1".into(), key.clone()), ("c-2".into(), key)],
        );
        let text = format!("{f:?}");
        assert!(
            text.contains("c-1 (email=ada@example.com) and c-2"),
            "{text}"
        );
        assert!(text.contains("merge the duplicates"), "{text}");
        assert_eq!(Found::of(vec![]), Found::None);
    }
}
