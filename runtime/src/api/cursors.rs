//! Import cursors (`/api/v1/backends/{name}/cursors`): where each model's
//! next batch import of a backend starts searching. Listing shows how far
//! each import got; resetting one makes the next import search from the
//! beginning (or from a given time), to repair what earlier imports
//! missed. A batch import running while its cursor is reset writes its
//! own cursor when it ends: reset after it finishes.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use crate::model::{format_timestamp, parse_timestamp};
use crate::sync::batch::{CURSOR_PREFIX, cursor_key, cursor_model};

/// `GET /api/v1/backends/{name}/cursors`: every model's cursor.
pub async fn list(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    super::connectors::find_backend(&state, &name).await?;
    let items: Vec<Value> = state
        .storage()
        .state_list(&name, CURSOR_PREFIX)
        .await?
        .into_iter()
        .filter_map(|(key, value, at)| {
            cursor_model(&key).map(|model| {
                json!({"model": model, "cursor": value, "updated_at": format_timestamp(at)})
            })
        })
        .collect();
    Ok(Json(json!({"backend": name, "items": items})))
}

/// Body of `PUT /api/v1/backends/{name}/cursors/{model}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCursor {
    /// RFC 3339: the next import searches for records changed since then.
    cursor: String,
}

/// `PUT …/cursors/{model}`: move a model's cursor to a given time.
pub async fn set(
    State(state): State<ApiState>,
    ApiPath((name, model)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SetCursor>,
) -> ApiResult<Json<Value>> {
    super::connectors::find_backend(&state, &name).await?;
    let at = parse_timestamp(&body.cursor).map_err(|e| {
        ApiError::bad_request(format!(
            "cursor {:?} is not an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}",
            body.cursor
        ))
    })?;
    let cursor = format_timestamp(at);
    state
        .storage()
        .state_set(
            &name,
            &cursor_key(&model),
            &cursor,
            crate::queue::now_ms(),
            None,
        )
        .await?;
    Ok(Json(
        json!({"backend": name, "model": model, "cursor": cursor}),
    ))
}

/// `DELETE …/cursors/{model}`: forget a model's cursor, so that its next
/// import searches from the beginning.
pub async fn reset(
    State(state): State<ApiState>,
    ApiPath((name, model)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    super::connectors::find_backend(&state, &name).await?;
    let existed = state
        .storage()
        .state_delete(&name, &cursor_key(&model))
        .await?;
    Ok(Json(
        json!({"backend": name, "model": model, "cursor": null, "existed": existed}),
    ))
}
