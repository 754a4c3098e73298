//! Local records, bindings and a record's timeline.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A local record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordView {
    pub model: String,
    pub id: String,
    /// Raised by every write.
    pub version: u64,
    /// RFC 3339.
    pub updated_at: String,
    /// Its fields (a JSON object).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<&crate::model::LocalRecord> for RecordView {
    fn from(r: &crate::model::LocalRecord) -> Self {
        RecordView {
            model: r.model.clone(),
            id: r.id.clone(),
            version: r.version,
            updated_at: r.updated_at.clone(),
            data: serde_json::from_str(&r.data).unwrap_or_else(|_| Value::String(r.data.clone())),
        }
    }
}

/// Query of a plain page.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Query of `GET /api/v1/bindings`: both `backend` and `model` are needed.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BindingsQuery {
    pub backend: Option<String>,
    pub model: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Which backend record a local record is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BindingView {
    pub backend: String,
    pub model: String,
    pub external_id: String,
    pub local_id: String,
    /// Last synced, Unix milliseconds.
    pub sync_date: i64,
}

/// A record's story: the record (null once deleted), its bindings in
/// every configured backend and, newest first, the events about it and
/// the jobs that named it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Timeline {
    pub model: String,
    pub id: String,
    pub record: Option<RecordView>,
    pub bindings: Vec<RecordBinding>,
    pub timeline: Vec<TimelineEntry>,
}

/// A record's binding in one backend.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordBinding {
    pub backend: String,
    pub external_id: String,
    pub sync_date: i64,
}

/// An event or a job in a record's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    /// Unix milliseconds.
    pub at: i64,
    pub kind: EntryKind,
    pub what: String,
    /// A job's state; empty for an event.
    pub state: String,
    pub detail: String,
    /// The event's id (events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
    /// The job's id (jobs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<i64>,
    pub backend: Option<String>,
    pub finished_at: Option<i64>,
}

/// What a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Event,
    Job,
}
