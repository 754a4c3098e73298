//! Service-wide routes: health, status, reload, the OpenAPI document and
//! the Prometheus metrics.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ApiResult};
use crate::metrics::{escape, global, header as metric_header};
use crate::queue::now_ms;

/// The OpenAPI 3 document, written by hand next to the routes it
/// describes (a test compares the two).
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn health(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "node": state.inner.node,
        "version": env!("CARGO_PKG_VERSION"),
    }))
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

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Jobs by state, the node, uptime.
pub async fn status(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let counts = state.storage().counts().await?;
    let mut by_state: HashMap<String, i64> = HashMap::new();
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
    Ok(Json(json!({
        "paused": {"backends": names("backend"), "channels": names("channel")},
        "dead_events": dead_events,
        "node": state.inner.node,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.inner.started.elapsed().as_secs(),
        "jobs": by_state,
        "now": now_ms(),
    })))
}

pub async fn reload(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    match state.reload().await {
        Ok(Some(summary)) => Ok(Json(json!({"reloaded": true, "summary": summary}))),
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
pub async fn nodes(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let items: Vec<Value> = state
        .storage()
        .nodes()
        .await?
        .into_iter()
        .map(|n| {
            let status = if n.stopped_at.is_some() {
                "stopped"
            } else if now - n.heartbeat_at <= ALIVE_WITHIN_MS {
                "alive"
            } else {
                "lost"
            };
            let mut v = serde_json::to_value(&n).unwrap_or_default();
            v["status"] = json!(status);
            v
        })
        .collect();
    Ok(Json(json!({"items": items, "next": null})))
}
