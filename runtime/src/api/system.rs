//! Service-wide routes: health, status, reload, the OpenAPI document and
//! the Prometheus metrics.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::types::{ErrorBody, Health, NodeStatus, NodeView, Page, Paused, ReloadAnswer, Status};
use crate::metrics::{escape, global, header as metric_header};
use crate::queue::now_ms;

/// The process answers (no token needed).
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "system",
    responses((status = OK, description = "the node is up", body = Health)))]
pub async fn health(State(state): State<ApiState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        node: state.inner.node.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is described at /api/v1/openapi.json")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; the API is described at /api/v1/openapi.json",
    )
}

/// This document, generated from the handlers' types.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "system",
    responses((status = OK, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json(),
    )
}

/// Jobs by state, pauses, dead events, the node, uptime.
#[utoipa::path(get, path = "/api/v1/status", operation_id = "status", tag = "system",
    responses((status = OK, description = "the queue's state", body = Status)))]
pub async fn status(State(state): State<ApiState>) -> ApiResult<Json<Status>> {
    let counts = state.storage().counts().await?;
    let mut by_state: BTreeMap<String, i64> = BTreeMap::new();
    for c in &counts {
        *by_state.entry(c.state.to_string()).or_default() += c.count;
    }
    let paused = state.storage().paused().await?;
    let names = |kind: &str| -> Vec<String> {
        paused
            .iter()
            .filter(|(k, _, _)| k == kind)
            .map(|(_, n, _)| n.clone())
            .collect()
    };
    let dead_events = state
        .storage()
        .count_jobs(&crate::sync::deliver::dead(None))
        .await?;
    Ok(Json(Status {
        paused: Paused {
            backends: names("backend"),
            channels: names("channel"),
        },
        dead_events,
        node: state.inner.node.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.inner.started.elapsed().as_secs(),
        jobs: by_state,
        now: now_ms(),
    }))
}

/// Reload the configuration file: channels, backends and their
/// schedules, the admin token.
#[utoipa::path(post, path = "/api/v1/reload", operation_id = "reload", tag = "system",
    responses(
        (status = OK, description = "reloaded", body = ReloadAnswer),
        (status = CONFLICT, description = "`no_config`: the node was not started from a file", body = ErrorBody),
        (status = UNPROCESSABLE_ENTITY, description = "`bad_config`: the file is invalid; nothing changed", body = ErrorBody),
    ))]
pub async fn reload(State(state): State<ApiState>) -> ApiResult<Json<ReloadAnswer>> {
    match state.reload().await {
        Ok(Some(summary)) => Ok(Json(ReloadAnswer {
            reloaded: true,
            summary,
        })),
        Ok(None) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_config",
            "this node was not started from a config file, so there is nothing to reload",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_config",
            format!("{e}; the running configuration is unchanged"),
        )),
    }
}

/// Prometheus text: the process's counters plus gauges read from storage
/// now (every node on the database reports the same queue).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "system",
    responses((status = OK, description = "Prometheus text exposition 0.0.4", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let storage = state.storage();
    let mut out = String::new();
    metric_header(
        &mut out,
        "junction_jobs",
        "gauge",
        "Jobs in the queue by state and channel.",
    );
    // Series are labelled by configured channel: a job in a channel
    // nobody configured counts under its nearest configured parent (as it
    // does for capacity), so whoever enqueues cannot mint new series.
    let channels = state.queue().config().channels.clone();
    let mut jobs: BTreeMap<(&str, String), i64> = BTreeMap::new();
    for c in storage.counts().await? {
        *jobs
            .entry((channels.resolve(&c.channel), c.state.to_string()))
            .or_default() += c.count;
    }
    for ((channel, state), count) in jobs {
        let _ = writeln!(
            out,
            "junction_jobs{{state=\"{state}\",channel=\"{}\"}} {count}",
            escape(channel),
        );
    }
    let now = now_ms();
    metric_header(
        &mut out,
        "junction_queue_lag_seconds",
        "gauge",
        "How long the oldest due job of each channel has waited to start.",
    );
    let mut lag: BTreeMap<&str, i64> = BTreeMap::new();
    for (channel, eta) in storage.oldest_due(now).await? {
        let oldest = lag.entry(channels.resolve(&channel)).or_insert(eta);
        *oldest = (*oldest).min(eta);
    }
    for (channel, eta) in lag {
        let _ = writeln!(
            out,
            "junction_queue_lag_seconds{{channel=\"{}\"}} {}",
            escape(channel),
            (now - eta).max(0) as f64 / 1000.0
        );
    }
    metric_header(
        &mut out,
        "junction_backend_breaker_open",
        "gauge",
        "1 while a backend's circuit breaker is open (its jobs wait), else 0.",
    );
    let open: std::collections::HashSet<String> = storage
        .breakers()
        .await?
        .into_iter()
        .map(|b| b.backend)
        .collect();
    for config in state.sync().backend_configs().await? {
        let _ = writeln!(
            out,
            "junction_backend_breaker_open{{backend=\"{}\"}} {}",
            escape(&config.name),
            u8::from(open.contains(&config.name))
        );
    }
    metric_header(
        &mut out,
        "junction_dead_events",
        "gauge",
        "Events whose delivery to a listener failed for good (GET /api/v1/events/dead).",
    );
    let dead = storage
        .count_jobs(&crate::sync::deliver::dead(None))
        .await?;
    let _ = writeln!(out, "junction_dead_events {dead}");
    let installed: HashMap<String, (String, String)> = storage
        .connectors()
        .await?
        .into_iter()
        .map(|c| (c.digest, (c.name, c.version)))
        .collect();
    global().render(&mut out, &|digest| {
        installed
            .get(digest)
            .cloned()
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()))
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

/// A node whose last heartbeat is older than this is taken for dead
/// (three default heartbeats).
const ALIVE_WITHIN_MS: i64 = 15_000;

/// The node registry: every node that ran on this database, whether it is
/// alive, and the jobs it holds.
#[utoipa::path(get, path = "/api/v1/nodes", operation_id = "list_nodes", tag = "system",
    responses((status = OK, description = "every node, one page", body = Page<NodeView>)))]
pub async fn nodes(State(state): State<ApiState>) -> ApiResult<Json<Page<NodeView>>> {
    let now = now_ms();
    let items: Vec<NodeView> = state
        .storage()
        .nodes()
        .await?
        .into_iter()
        .map(|n| {
            let status = if n.stopped_at.is_some() {
                NodeStatus::Stopped
            } else if now - n.heartbeat_at <= ALIVE_WITHIN_MS {
                NodeStatus::Alive
            } else {
                NodeStatus::Lost
            };
            NodeView { node: n, status }
        })
        .collect();
    Ok(Json(Page { items, next: None }))
}
