//! Dead events: deliveries of an event to a listener that failed for good.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query of `GET /api/v1/events/dead`: newest first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadQuery {
    /// Only this backend's.
    pub backend: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// A dead event: the delivery job and the event it carries (name, model
/// and record are null once the event is purged).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadEvent {
    /// The delivery job: retry or discard it by this id.
    pub job: i64,
    pub backend: Option<String>,
    pub event: Option<i64>,
    pub name: Option<String>,
    pub model: Option<String>,
    pub local_id: Option<String>,
    pub tries: u32,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub failed_at: Option<i64>,
}

/// Body of `POST /api/v1/events/dead/retry|discard`: the named delivery
/// jobs (at most 500), or every dead event (of `backend`, when given).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<i64>>,
    /// Only count.
    #[serde(default)]
    pub dry_run: bool,
}
