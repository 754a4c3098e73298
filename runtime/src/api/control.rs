//! Pausing and resuming backends and channels (`POST
//! /api/v1/backends/{name}/pause|resume`, `POST
//! /api/v1/channels/{name}/pause|resume`): every node stops starting their
//! jobs, which stay pending; running ones finish. See `queue::pause`.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::ApiPath;
use super::types::{BreakerClosed, PauseAnswer, PauseTarget};
use crate::queue::channels::check_name;
use crate::queue::pause::PauseKind;

async fn set(
    state: &ApiState,
    kind: PauseKind,
    name: &str,
    paused: bool,
) -> ApiResult<Json<PauseAnswer>> {
    let changed = state.queue().set_paused(kind, name, paused).await?;
    Ok(Json(PauseAnswer {
        kind: match kind {
            PauseKind::Backend => PauseTarget::Backend,
            PauseKind::Channel => PauseTarget::Channel,
        },
        name: name.to_string(),
        paused,
        changed,
    }))
}

fn channel(name: &str) -> ApiResult<()> {
    check_name(name).map_err(|e| ApiError::bad_request(format!("channel {name:?}: {e}")))
}

/// Pause a backend on every node: its jobs stay pending, running ones
/// finish; survives restarts.
#[utoipa::path(post, path = "/api/v1/backends/{name}/pause", operation_id = "pause_backend", tag = "backends", params(("name" = String, Path, description = "the backend's name")),
    responses((status = OK, description = "paused", body = PauseAnswer)))]
pub async fn pause_backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PauseAnswer>> {
    // Pausing a name nobody configured is a typo: refused as not found.
    super::connectors::find_backend(&state, &name).await?;
    set(&state, PauseKind::Backend, &name, true).await
}

/// Resume a paused backend. Allowed for any name, so that a pause
/// outliving its backend's removal can still be lifted.
#[utoipa::path(post, path = "/api/v1/backends/{name}/resume", operation_id = "resume_backend", tag = "backends", params(("name" = String, Path, description = "the backend's name")),
    responses((status = OK, description = "resumed", body = PauseAnswer)))]
pub async fn resume_backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PauseAnswer>> {
    set(&state, PauseKind::Backend, &name, false).await
}

/// Pause a channel (and the channels under it) on every node.
#[utoipa::path(post, path = "/api/v1/channels/{name}/pause", operation_id = "pause_channel", tag = "jobs", params(("name" = String, Path, description = "the channel's name, such as `root.shop`")),
    responses((status = OK, description = "paused", body = PauseAnswer)))]
pub async fn pause_channel(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PauseAnswer>> {
    channel(&name)?;
    set(&state, PauseKind::Channel, &name, true).await
}

/// Resume a paused channel.
#[utoipa::path(post, path = "/api/v1/channels/{name}/resume", operation_id = "resume_channel", tag = "jobs", params(("name" = String, Path, description = "the channel's name, such as `root.shop`")),
    responses((status = OK, description = "resumed", body = PauseAnswer)))]
pub async fn resume_channel(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PauseAnswer>> {
    channel(&name)?;
    set(&state, PauseKind::Channel, &name, false).await
}

/// `POST /api/v1/backends/{name}/breaker/close`: the operator knows the
/// backend is back (or wants its jobs to try now): close its breaker
/// without waiting for the probe. Its jobs are claimed again at once; if
/// the backend is still out of reach, the breaker opens again after as
/// many failures as it takes to open it.
#[utoipa::path(post, path = "/api/v1/backends/{name}/breaker/close", operation_id = "close_breaker", tag = "backends", params(("name" = String, Path, description = "the backend's name")),
    responses((status = OK, description = "closed", body = BreakerClosed)))]
pub async fn close_breaker(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<BreakerClosed>> {
    super::connectors::find_backend(&state, &name).await?;
    let queue = state.queue();
    let closed = queue.close_breaker(&name).await?;
    Ok(Json(BreakerClosed {
        backend: name,
        closed,
    }))
}
