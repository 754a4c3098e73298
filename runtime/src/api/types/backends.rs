//! Backends: their configuration and health, pauses, breakers, cursors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::backend::BackendConfig;

/// A configured backend: its configuration without secrets, the units it
/// resolves to (or why not), its bound records, breaker and pause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackendView {
    pub name: String,
    /// Inline secrets answered as `***`.
    pub config: BackendConfig,
    pub units: Units,
    /// Bound records by model.
    pub bindings: BTreeMap<String, i64>,
    pub breaker: BreakerView,
    /// Operators paused its jobs.
    pub paused: bool,
}

/// The connector units a backend resolves to, or why it does not.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Units {
    Resolved(ResolvedUnits),
    Unresolved(UnresolvedUnits),
}

/// The adapters and mappers serving a backend.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResolvedUnits {
    /// `name version` of its adapters.
    pub adapter: String,
    pub adapter_digest: Option<String>,
    /// `name version` of its mappers.
    pub mapper: String,
    /// Which adapter and mapper serve each model.
    pub models: BTreeMap<String, ModelUnits>,
}

/// The units serving one model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelUnits {
    pub adapter: String,
    pub adapter_digest: String,
    pub mapper: String,
}

/// Why no connector serves a backend: its events and jobs wait.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnresolvedUnits {
    pub error: String,
}

/// A backend's circuit breaker: `closed`; `open` until `retry_at`; then
/// `half-open` while its probe is due or running. The other fields are
/// there unless it is closed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreakerView {
    pub state: BreakerState,
    /// Consecutive outage failures that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<i64>,
    /// The last failure (the outbound request that failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<i64>,
    /// When the next probe may run, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
    /// Probes that failed since it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<i64>,
}

/// The states of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// Query of `DELETE /api/v1/backends/{name}`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveBackendQuery {
    /// Cancel its unfinished jobs instead of refusing while it has any.
    #[serde(default)]
    pub cancel_jobs: bool,
    /// Delete its bindings and connector state too (kept by default, so a
    /// backend added again under the same name carries on).
    #[serde(default)]
    pub purge: bool,
}

/// What removing a backend did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackendRemoved {
    /// The backend's name.
    pub removed: String,
    pub cancelled_jobs: u64,
    pub purged: Purged,
}

/// What a purge deleted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Purged {
    pub bindings: u64,
    pub state_keys: u64,
}

/// The answer of the adapter's `check`: whether the backend is reachable
/// with the configured credentials.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckAnswer {
    pub ok: bool,
    pub message: String,
    /// The adapter that answered.
    pub adapter: String,
}

/// What pauses apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseTarget {
    Backend,
    Channel,
}

/// What a pause or resume did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseAnswer {
    pub kind: PauseTarget,
    pub name: String,
    /// Paused now.
    pub paused: bool,
    /// False when it was already so.
    pub changed: bool,
}

/// What closing a breaker did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreakerClosed {
    pub backend: String,
    /// False when it was closed already.
    pub closed: bool,
}

/// A backend's import cursors.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Cursors {
    pub backend: String,
    pub items: Vec<CursorView>,
}

/// Where a model's next batch import starts searching, and where an
/// interrupted scan of it will resume.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CursorView {
    pub model: String,
    /// RFC 3339; null until an import of the model has finished.
    pub cursor: Option<String>,
    /// When the cursor was written, RFC 3339.
    pub updated_at: Option<String>,
    /// The search page (the connector's own cursor) at which the import
    /// of this model that was interrupted midway resumes on its next try;
    /// null when no scan is halfway.
    pub resumes_at: Option<String>,
}

/// Body of `PUT /api/v1/backends/{name}/cursors/{model}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCursor {
    /// RFC 3339: the next import searches for records changed since then.
    pub cursor: String,
}

/// A cursor after it was moved (`cursor` set) or reset (`cursor` null,
/// `existed` saying whether there was one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CursorChanged {
    pub backend: String,
    pub model: String,
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existed: Option<bool>,
}
