//! Import cursors (`/api/v1/backends/{name}/cursors`): where each model's
//! next batch import of a backend starts searching. Listing shows how far
//! each import got; resetting one makes the next import search from the
//! beginning (or from a given time), to repair what earlier imports
//! missed. A scan interrupted midway shows the page it resumes at;
//! resetting the cursor discards that position too. A batch import
//! running while its cursor is reset writes its own cursor when it ends:
//! reset after it finishes.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use super::types::{CursorChanged, CursorView, Cursors, SetCursor};
use crate::model::{format_timestamp, parse_timestamp};
use crate::sync::batch::{
    CURSOR_PREFIX, cursor_key, cursor_model, resume_key, resume_model, resume_page,
};

/// Where each model's next batch import of a backend starts searching.
#[utoipa::path(get, path = "/api/v1/backends/{name}/cursors", operation_id = "list_cursors", tag = "backends", params(("name" = String, Path, description = "the backend's name")),
    responses((status = OK, description = "every model's cursor", body = Cursors)))]
pub async fn list(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Cursors>> {
    super::connectors::find_backend(&state, &name).await?;
    let mut items: Vec<CursorView> = Vec::new();
    // A model's cursor and its resume point are two keys, in either order.
    for (key, value, at) in state.storage().state_list(&name, CURSOR_PREFIX).await? {
        let (model, is_cursor) = match (cursor_model(&key), resume_model(&key)) {
            (Some(model), _) => (model, true),
            (None, Some(model)) => (model, false),
            (None, None) => continue,
        };
        let i = match items.iter().position(|c| c.model == model) {
            Some(i) => i,
            None => {
                items.push(CursorView {
                    model: model.to_string(),
                    cursor: None,
                    updated_at: None,
                    resumes_at: None,
                });
                items.len() - 1
            }
        };
        if is_cursor {
            items[i].cursor = Some(value);
            items[i].updated_at = Some(format_timestamp(at));
        } else {
            items[i].resumes_at = resume_page(&value);
        }
    }
    Ok(Json(Cursors {
        backend: name,
        items,
    }))
}

/// Move a model's cursor to a given time.
#[utoipa::path(put, path = "/api/v1/backends/{name}/cursors/{model}", operation_id = "set_cursor", tag = "backends", params(("name" = String, Path, description = "the backend's name"), ("model" = String, Path, description = "a model the backend imports")),
    request_body = SetCursor,
    responses((status = OK, description = "the cursor now", body = CursorChanged)))]
pub async fn set(
    State(state): State<ApiState>,
    ApiPath((name, model)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SetCursor>,
) -> ApiResult<Json<CursorChanged>> {
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
    Ok(Json(CursorChanged {
        backend: name,
        model,
        cursor: Some(cursor),
        existed: None,
    }))
}

/// Forget a model's cursor, so that its next import searches from the
/// beginning.
#[utoipa::path(delete, path = "/api/v1/backends/{name}/cursors/{model}", operation_id = "reset_cursor", tag = "backends", params(("name" = String, Path, description = "the backend's name"), ("model" = String, Path, description = "a model the backend imports")),
    responses((status = OK, description = "the cursor is gone", body = CursorChanged)))]
pub async fn reset(
    State(state): State<ApiState>,
    ApiPath((name, model)): ApiPath<(String, String)>,
) -> ApiResult<Json<CursorChanged>> {
    super::connectors::find_backend(&state, &name).await?;
    let existed = state
        .storage()
        .state_delete(&name, &cursor_key(&model))
        .await?;
    // "From the beginning" includes a scan an interrupted run left halfway.
    state
        .storage()
        .state_delete(&name, &resume_key(&model))
        .await?;
    Ok(Json(CursorChanged {
        backend: name,
        model,
        cursor: None,
        existed: Some(existed),
    }))
}
