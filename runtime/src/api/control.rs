//! Pausing and resuming backends and channels (`POST
//! /api/v1/backends/{name}/pause|resume`, `POST
//! /api/v1/channels/{name}/pause|resume`): every node stops starting their
//! jobs, which stay pending; running ones finish. See `queue::pause`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use crate::queue::channels::check_name;
use crate::queue::pause::PauseKind;

async fn set(
    state: &ApiState,
    kind: PauseKind,
    name: &str,
    paused: bool,
) -> ApiResult<Json<Value>> {
    let changed = state.queue().set_paused(kind, name, paused).await?;
    Ok(Json(json!({
        "kind": kind.as_str(),
        "name": name,
        "paused": paused,
        "changed": changed,
    })))
}

fn channel(name: &str) -> ApiResult<()> {
    check_name(name).map_err(|e| ApiError::bad_request(format!("channel {name:?}: {e}")))
}

pub async fn pause_backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    // Pausing a name nobody configured is a typo: refused as not found.
    super::connectors::find_backend(&state, &name).await?;
    set(&state, PauseKind::Backend, &name, true).await
}

/// Resuming is allowed for any name, so that a pause outliving its
/// backend's removal can still be lifted.
pub async fn resume_backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    set(&state, PauseKind::Backend, &name, false).await
}

pub async fn pause_channel(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    channel(&name)?;
    set(&state, PauseKind::Channel, &name, true).await
}

pub async fn resume_channel(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    channel(&name)?;
    set(&state, PauseKind::Channel, &name, false).await
}

/// `POST /api/v1/backends/{name}/breaker/close`: the operator knows the
/// backend is back (or wants its jobs to try now): close its breaker
/// without waiting for the probe. Its jobs are claimed again at once; if
/// the backend is still out of reach, the breaker opens again after as
/// many failures as it takes to open it.
pub async fn close_breaker(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    super::connectors::find_backend(&state, &name).await?;
    let queue = state.queue();
    let closed = queue.close_breaker(&name).await?;
    Ok(Json(json!({"backend": name, "closed": closed})))
}
