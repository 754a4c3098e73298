//! What a connector may reach of Junction's own data, as the intersection
//! of what its manifest *requests* and what the operator *grants* a
//! backend.
//!
//! A manifest is a permission request: the local models it works on (with
//! operations), the events its listener wants, the outbound hosts and the
//! secrets it needs ([`Requests`]). Installing the first version of a
//! connector approves its requests; a later version that requests more is
//! activated only when the operator approves the difference
//! ([`Requests::beyond`]). A backend's configuration may narrow the grant
//! further ([`GrantConfig`]). The host enforces the resulting [`Grants`] at
//! every import a guest calls (records, binder, jobs) and on the events a
//! listener receives; the requested hosts and secrets shape the backend's
//! egress policy (`BackendConfig::context`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Event, Manifest};

pub use crate::model::OPERATIONS;

/// What one or more manifests ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    /// Model → operations.
    pub models: BTreeMap<String, BTreeSet<String>>,
    /// Event patterns (`name:model`, `*` allowed in either part).
    pub events: BTreeSet<String>,
    /// Outbound hosts beyond the backend's own base URL.
    pub hosts: BTreeSet<String>,
    /// Names of secrets.
    pub secrets: BTreeSet<String>,
}

/// Whether event pattern `outer` matches everything `inner` matches.
fn pattern_covers(outer: &str, inner: &str) -> bool {
    let split = |p: &str| -> (String, String) {
        let (n, m) = p.split_once(':').unwrap_or((p, "*"));
        (n.to_string(), m.to_string())
    };
    let (on, om) = split(outer);
    let (inn, im) = split(inner);
    (on == "*" || on == inn) && (om == "*" || om == im)
}

impl Requests {
    /// A manifest's requests.
    pub fn of(manifest: &Manifest) -> Requests {
        let mut r = Requests::default();
        for m in &manifest.models {
            r.models
                .entry(m.name.clone())
                .or_default()
                .extend(m.operations.iter().cloned());
        }
        r.events = manifest
            .events
            .iter()
            .map(|e| e.trim().to_string())
            .collect();
        r.hosts = manifest
            .hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        r.secrets = manifest.secrets.iter().cloned().collect();
        r
    }

    /// Add what `other` asks for.
    pub fn extend(&mut self, other: &Requests) {
        for (model, ops) in &other.models {
            self.models
                .entry(model.clone())
                .or_default()
                .extend(ops.iter().cloned());
        }
        self.events.extend(other.events.iter().cloned());
        self.hosts.extend(other.hosts.iter().cloned());
        self.secrets.extend(other.secrets.iter().cloned());
    }

    /// What `self` asks for that `approved` does not: the difference an
    /// operator must approve before `self` replaces `approved`.
    pub fn beyond(&self, approved: &Requests) -> Requests {
        let mut more = Requests::default();
        for (model, ops) in &self.models {
            let had = approved.models.get(model);
            let new: BTreeSet<String> = ops
                .iter()
                .filter(|op| had.is_none_or(|h| !h.contains(*op)))
                .cloned()
                .collect();
            if !new.is_empty() {
                more.models.insert(model.clone(), new);
            }
        }
        more.events = self
            .events
            .iter()
            .filter(|e| !approved.events.iter().any(|a| pattern_covers(a, e)))
            .cloned()
            .collect();
        more.hosts = self.hosts.difference(&approved.hosts).cloned().collect();
        more.secrets = self
            .secrets
            .difference(&approved.secrets)
            .cloned()
            .collect();
        more
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
            && self.events.is_empty()
            && self.hosts.is_empty()
            && self.secrets.is_empty()
    }

    /// One line per item, for messages, the CLI and the dashboard.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (model, ops) in &self.models {
            let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
            out.push(format!("model {model}: {}", ops.join(", ")));
        }
        out.extend(self.events.iter().map(|e| format!("event {e}")));
        out.extend(self.hosts.iter().map(|h| format!("host {h}")));
        out.extend(self.secrets.iter().map(|s| format!("secret {s}")));
        out
    }
}

impl fmt::Display for Requests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.lines();
        if lines.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&lines.join("; "))
        }
    }
}

/// The operator's grant to a backend's connector, narrowing what its
/// manifest requests. Absent lists grant everything requested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// Local models, as `model` (every requested operation) or
    /// `model:op+op` (for example `customer:export`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Event patterns such as `record-written:product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
}

impl GrantConfig {
    /// Check the entries; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        for entry in self.models.iter().flatten() {
            let (model, ops) = entry.split_once(':').unwrap_or((entry, ""));
            if model.trim().is_empty() {
                return Err(format!("grants.models entry {entry:?} names no model"));
            }
            for op in ops.split('+').filter(|o| !o.is_empty()) {
                if !OPERATIONS.contains(&op) {
                    return Err(format!(
                        "grants.models entry {entry:?}: {op:?} is not an operation; use {}",
                        OPERATIONS.join(", ")
                    ));
                }
            }
        }
        for entry in self.events.iter().flatten() {
            if entry.trim().is_empty() {
                return Err("grants.events has an empty entry".to_string());
            }
        }
        Ok(())
    }

    /// The operator's model grant as model → operations (`None`: every
    /// requested operation).
    fn models(&self) -> Option<BTreeMap<String, Option<BTreeSet<String>>>> {
        self.models.as_ref().map(|entries| {
            let mut out: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
            for entry in entries {
                let (model, ops) = entry.split_once(':').unwrap_or((entry, ""));
                let ops: BTreeSet<String> = ops
                    .split('+')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string)
                    .collect();
                let slot = out
                    .entry(model.trim().to_string())
                    .or_insert(Some(BTreeSet::new()));
                match (slot.as_mut(), ops.is_empty()) {
                    (_, true) => *slot = None,
                    (Some(have), false) => have.extend(ops),
                    (None, false) => {}
                }
            }
            out
        })
    }
}

/// Where a backend's guest jobs may go and how urgent they may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPlacement {
    /// The channel subtree the connector's jobs run in (default
    /// `root.<backend>`); a job naming no channel goes to its top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The best (lowest) priority its jobs may take.
    #[serde(default = "default_min_priority")]
    pub min_priority: u32,
    /// The workers of one node its jobs may hold at once (default: the
    /// node's fair share while other backends have work, every worker
    /// when they have none; see `backend_share`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

fn default_min_priority() -> u32 {
    10
}

impl Default for JobPlacement {
    fn default() -> Self {
        JobPlacement {
            channel: None,
            min_priority: default_min_priority(),
            workers: None,
        }
    }
}

/// What one backend's connector may do, enforced by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// Model → granted operations.
    models: BTreeMap<String, BTreeSet<String>>,
    /// Requested event patterns, and the operator's narrowing (if any).
    events: BTreeSet<String>,
    operator_events: Option<Vec<String>>,
    /// The channel subtree of the backend's guest jobs.
    pub channel: String,
    pub min_priority: u32,
    /// Detached and test contexts only: no data restriction.
    unrestricted: bool,
}

/// A guest asked for something outside its grant; the message names it
/// and what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GrantError(pub String);

impl Grants {
    /// The intersection of `requests` and the operator's `config` for
    /// `backend`.
    pub fn new(
        backend: &str,
        requests: &Requests,
        config: &GrantConfig,
        placement: &JobPlacement,
    ) -> Grants {
        let models = match config.models() {
            None => requests.models.clone(),
            Some(granted) => requests
                .models
                .iter()
                .filter_map(|(model, ops)| {
                    let allowed = granted.get(model)?;
                    let ops: BTreeSet<String> = match allowed {
                        None => ops.clone(),
                        Some(allowed) => ops.intersection(allowed).cloned().collect(),
                    };
                    (!ops.is_empty()).then(|| (model.clone(), ops))
                })
                .collect(),
        };
        Grants {
            models,
            events: requests.events.clone(),
            operator_events: config.events.clone(),
            channel: placement
                .channel
                .clone()
                .unwrap_or_else(|| format!("root.{backend}")),
            min_priority: placement.min_priority,
            unrestricted: false,
        }
    }

    /// No restriction on local data (detached contexts over in-memory
    /// services, and tests); jobs still stay in `root.<backend>`.
    pub fn unrestricted(backend: &str) -> Grants {
        Grants {
            models: BTreeMap::new(),
            events: BTreeSet::new(),
            operator_events: None,
            channel: if backend.is_empty() {
                "root".to_string()
            } else {
                format!("root.{backend}")
            },
            min_priority: 0,
            unrestricted: true,
        }
    }

    /// `capability` may touch local `model`.
    pub fn model(&self, capability: &str, model: &str) -> Result<(), GrantError> {
        if self.unrestricted || self.models.contains_key(model) {
            return Ok(());
        }
        // The name is the guest's: quoted short.
        let model = crate::text::truncate(model, 128);
        Err(GrantError(format!(
            "{capability}: model {model:?} is not granted to this connector (granted: {}); \
             the connector's manifest must request it and the backend's grants.models allow it",
            self.granted_models()
        )))
    }

    /// `model` with at least one of `ops` granted.
    pub fn model_op(&self, capability: &str, model: &str, ops: &[&str]) -> Result<(), GrantError> {
        self.model(capability, model)?;
        if self.unrestricted
            || self
                .models
                .get(model)
                .is_some_and(|have| ops.iter().any(|op| have.contains(*op)))
        {
            return Ok(());
        }
        Err(GrantError(format!(
            "{capability}: model {model:?} is granted for {} only, not {}",
            self.models
                .get(model)
                .map(|o| o.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            ops.join(" or ")
        )))
    }

    fn granted_models(&self) -> String {
        if self.models.is_empty() {
            "none".to_string()
        } else {
            self.models.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }

    /// A listener of this backend may receive `event`: its manifest asks
    /// for it, the operator's events grant (if any) allows it, and its
    /// model is granted.
    pub fn event(&self, event: &Event) -> bool {
        if self.unrestricted {
            return true;
        }
        let name = format!("{}:{}", event.name, event.model);
        let requested = self.events.iter().any(|p| pattern_covers(p, &name));
        let operator = self
            .operator_events
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| pattern_covers(p, &name)));
        requested && operator && self.models.contains_key(&event.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSupport;

    fn manifest(models: &[(&str, &[&str])], events: &[&str], hosts: &[&str]) -> Manifest {
        Manifest {
            name: "c".into(),
            version: "1.0.0".into(),
            backend_kind: "k".into(),
            backend_versions: "*".into(),
            models: models
                .iter()
                .map(|(n, ops)| ModelSupport {
                    name: n.to_string(),
                    operations: ops.iter().map(|o| o.to_string()).collect(),
                })
                .collect(),
            events: events.iter().map(|e| e.to_string()).collect(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            settings_schema: "{}".into(),
            secrets: vec!["token".into()],
        }
    }

    fn event(name: &str, model: &str) -> Event {
        Event {
            name: name.into(),
            model: model.into(),
            local_id: None,
            changed_fields: vec![],
            payload: "{}".into(),
            origin_backend: None,
        }
    }

    #[test]
    fn the_difference_names_every_new_request() {
        let old = Requests::of(&manifest(
            &[("product", &["read", "import"])],
            &["record-written:*"],
            &[],
        ));
        let same = old.beyond(&old);
        assert!(same.is_empty(), "{same}");
        let mut m = manifest(
            &[
                ("product", &["read", "import", "export"]),
                ("customer", &["read"]),
            ],
            &["record-written:product", "record-deleted:product"],
            &["https://cdn.example.com"],
        );
        m.secrets.push("api_key".into());
        let more = Requests::of(&m).beyond(&old);
        assert_eq!(
            more.lines(),
            vec![
                "model customer: read",
                "model product: export",
                "event record-deleted:product",
                "host https://cdn.example.com",
                "secret api_key",
            ],
            "record-written:product is covered by record-written:*"
        );
        let less = old.beyond(&Requests::of(&m));
        assert_eq!(less.lines(), vec!["event record-written:*"]);
    }

    #[test]
    fn grants_are_the_intersection_of_request_and_config() {
        let requests = Requests::of(&manifest(
            &[
                ("customer", &["read", "import", "export"]),
                ("order", &["import"]),
            ],
            &["record-written:*"],
            &[],
        ));
        let all = Grants::new(
            "crm",
            &requests,
            &GrantConfig::default(),
            &JobPlacement::default(),
        );
        assert!(all.model("records", "customer").is_ok());
        assert!(all.model("records", "order").is_ok());
        let err = all.model("records", "invoice").unwrap_err().to_string();
        assert!(
            err.contains("invoice") && err.contains("customer, order"),
            "{err}"
        );
        assert!(all.event(&event("record-written", "customer")));
        assert!(
            !all.event(&event("record-written", "invoice")),
            "model not granted"
        );
        assert!(
            !all.event(&event("record-deleted", "customer")),
            "not requested"
        );
        assert_eq!(all.channel, "root.crm");

        let narrow = GrantConfig {
            models: Some(vec!["customer:export".into(), "invoice".into()]),
            events: Some(vec!["record-written:customer".into()]),
        };
        narrow.validate().unwrap();
        let g = Grants::new("crm", &requests, &narrow, &JobPlacement::default());
        assert!(
            g.model("records", "order").is_err(),
            "not in the operator's list"
        );
        assert!(g.model("records", "invoice").is_err(), "not requested");
        assert!(g.model_op("jobs", "customer", &["export"]).is_ok());
        let err = g
            .model_op("jobs", "customer", &["import"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("export only"), "{err}");
        assert!(g.event(&event("record-written", "customer")));
        assert!(!g.event(&event("record-written", "order")));
    }

    #[test]
    fn bad_grant_entries_are_named() {
        let bad = GrantConfig {
            models: Some(vec!["customer:steal".into()]),
            events: None,
        };
        let err = bad.validate().unwrap_err();
        assert!(err.contains("steal") && err.contains("import"), "{err}");
    }
}
