//! Connectors (install, list, activate, roll back, remove) and backends
//! (configure, list, check).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use crate::backend::BackendConfig;
use crate::grants::Requests;
use crate::model::Manifest;
use crate::storage::InstalledConnector;

/// What a stored manifest requests (nothing if unreadable).
fn requests(c: &InstalledConnector) -> Requests {
    serde_json::from_str::<Manifest>(&c.manifest)
        .map(|m| Requests::of(&m))
        .unwrap_or_default()
}

/// A connector as the API shows it, with what it requests and, for an
/// inactive version, what it requests beyond the active one of its
/// connector (what activating it needs approved).
fn view_among(c: &InstalledConnector, all: &[InstalledConnector]) -> Value {
    let mut v = view(c);
    let mine = requests(c);
    let beyond = all
        .iter()
        .find(|o| o.active && o.name == c.name && o.digest != c.digest)
        .map(|active| mine.beyond(&requests(active)).lines())
        .unwrap_or_default();
    v["requests"] = json!(mine.lines());
    v["beyond_active"] = json!(beyond);
    v
}

/// A connector as the API shows it.
fn view(c: &InstalledConnector) -> Value {
    let manifest: Value = serde_json::from_str(&c.manifest).unwrap_or(Value::Null);
    json!({
        "digest": c.digest,
        "name": c.name,
        "version": c.version,
        "backend_kind": c.backend_kind,
        "backend_versions": c.backend_versions,
        "active": c.active,
        "installed_at": c.installed_at,
        "manifest": manifest,
    })
}

pub async fn list(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let all = state.storage().connectors().await?;
    let items: Vec<Value> = all.iter().map(|c| view_among(c, &all)).collect();
    Ok(Json(json!({"items": items, "next": null})))
}

pub async fn show(
    State(state): State<ApiState>,
    ApiPath(digest): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let c = state.sync().connector(&digest).await?;
    let all = state.storage().connectors().await?;
    Ok(Json(view_among(&c, &all)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallQuery {
    /// Make it the active version (default true).
    activate: Option<bool>,
    /// Refuse the upload unless its sha256 is this (hex, with or without
    /// `sha256:`).
    sha256: Option<String>,
    /// Approve what it requests beyond the active version (see
    /// `beyond_active`); without it such a version is installed inactive
    /// and the answer is 409 `needs_approval`.
    approve: Option<bool>,
}

/// `POST /api/v1/connectors` with the component's bytes as the body.
pub async fn install(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<InstallQuery>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty; send the component's .wasm bytes",
        ));
    }
    let digest = crate::host::digest(&body);
    if let Some(want) = &q.sha256 {
        let want = want
            .strip_prefix("sha256:")
            .unwrap_or(want)
            .to_ascii_lowercase();
        if digest != format!("sha256:{want}") {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "digest_mismatch",
                format!(
                    "the upload's digest is {digest}, not the pinned sha256:{want}; nothing was installed"
                ),
            ));
        }
    }
    let installed = state
        .sync()
        .install_as(
            &body,
            q.activate.unwrap_or(true),
            q.approve.unwrap_or(false),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&installed))))
}

/// `POST /api/v1/inspect`: what `junction connector inspect` reports, for
/// an upload; installs nothing.
pub async fn inspect(State(state): State<ApiState>, body: Bytes) -> ApiResult<Json<Value>> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty; send the component's .wasm bytes",
        ));
    }
    let report = crate::inspect::inspect_bytes(state.sync().host(), "upload", &body)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_a_connector",
                e.to_string(),
            )
        })?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateQuery {
    /// Approve what the version requests beyond the active one.
    approve: Option<bool>,
}

pub async fn activate(
    State(state): State<ApiState>,
    ApiPath(digest): ApiPath<String>,
    ApiQuery(q): ApiQuery<ActivateQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(
        &state
            .sync()
            .activate_connector(&digest, q.approve.unwrap_or(false))
            .await?,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    name: String,
}

pub async fn rollback(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<Rollback>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state.sync().rollback_connector(&r.name).await?)))
}

pub async fn remove(
    State(state): State<ApiState>,
    ApiPath(digest): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state.sync().remove_connector(&digest).await?)))
}

/// A backend as the API shows it: its configuration without secrets, the
/// units it resolves to (or why not), and how many records it has bound.
/// What operators and the queue hold against backends: open breakers and
/// pauses, read once for a whole list of backends.
struct Held {
    breakers: Vec<crate::storage::OpenBreaker>,
    paused: Vec<(String, String, i64)>,
}

impl Held {
    async fn load(state: &ApiState) -> ApiResult<Held> {
        Ok(Held {
            breakers: state.storage().breakers().await?,
            paused: state.storage().paused().await?,
        })
    }
}

async fn backend_view(state: &ApiState, config: &BackendConfig, held: &Held) -> ApiResult<Value> {
    let units = match state.sync().backend(&config.name).await {
        Ok(u) => json!({
            "adapter": u.adapter_labels(),
            "adapter_digest": u.adapters.first().map(|a| a.unit.digest()),
            "mapper": u.mapper_labels(),
            "models": u.routes.iter().map(|(model, r)| (model.clone(), json!({
                "adapter": r.adapter_label,
                "adapter_digest": r.adapter.digest(),
                "mapper": r.mapper_label,
            }))).collect::<serde_json::Map<String, Value>>(),
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    let bindings: serde_json::Map<String, Value> = state
        .storage()
        .binding_counts(&config.name)
        .await?
        .into_iter()
        .map(|(model, n)| (model, json!(n)))
        .collect();
    let breaker = held.breakers.iter().find(|b| b.backend == config.name);
    Ok(json!({
        "name": config.name,
        "config": config.redacted(),
        "units": units,
        "bindings": bindings,
        "breaker": breaker_view(breaker, crate::queue::now_ms()),
        "paused": held
            .paused
            .iter()
            .any(|(kind, name, _)| kind == "backend" && *name == config.name),
    }))
}

/// A backend's circuit breaker: `closed`; `open` until `retry_at`; then
/// `half-open` while its probe is due or running.
pub(crate) fn breaker_view(open: Option<&crate::storage::OpenBreaker>, now: i64) -> Value {
    match open {
        None => json!({"state": "closed"}),
        Some(b) => json!({
            "state": if b.retry_at <= now { "half-open" } else { "open" },
            "failures": b.failures,
            "reason": b.reason,
            "opened_at": b.opened_at,
            "retry_at": b.retry_at,
            "probes": b.probes,
        }),
    }
}

pub async fn backends(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let held = Held::load(&state).await?;
    let mut items = Vec::new();
    for config in state.sync().backend_configs().await? {
        items.push(backend_view(&state, &config, &held).await?);
    }
    Ok(Json(json!({"items": items, "next": null})))
}

pub async fn backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let config = find_backend(&state, &name).await?;
    let held = Held::load(&state).await?;
    Ok(Json(backend_view(&state, &config, &held).await?))
}

pub(super) async fn find_backend(state: &ApiState, name: &str) -> ApiResult<BackendConfig> {
    state
        .sync()
        .backend_configs()
        .await?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "backend {name:?} is not configured; `junction backend list` shows the configured ones"
            ))
        })
}

/// `POST /api/v1/backends`: create or replace a backend (a
/// `BackendConfig` as JSON). Refused when no installed connector serves
/// it.
pub async fn put_backend(
    State(state): State<ApiState>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let config: BackendConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_backend",
            format!("the backend configuration is invalid: {e}"),
        )
    })?;
    state.sync().configure(&config).await?;
    Ok((
        StatusCode::CREATED,
        Json(backend_view(&state, &config, &Held::load(&state).await?).await?),
    ))
}

/// Query of `DELETE /api/v1/backends/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBackendQuery {
    #[serde(default)]
    cancel_jobs: bool,
    #[serde(default)]
    purge: bool,
}

/// `DELETE /api/v1/backends/{name}`: remove a backend. Refused while it
/// has unfinished jobs (unless `cancel_jobs`) and for a backend the
/// configuration file declares (the next reload would add it again).
pub async fn remove_backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RemoveBackendQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(file) = state.declaring_file(&name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "backend_declared",
            format!(
                "backend {name:?} is declared in {file}; remove it from there and reload (`junction reload`), \
                 since removing it here would last only until the next reload"
            ),
        ));
    }
    let how = crate::storage::RemoveBackend {
        cancel_jobs: q.cancel_jobs,
        purge: q.purge,
    };
    let removed = state.sync().remove_backend(&name, how).await?;
    Ok(Json(json!({
        "removed": name,
        "cancelled_jobs": removed.cancelled_jobs,
        "purged": {"bindings": removed.bindings, "state_keys": removed.state_keys},
    })))
}

/// Call the adapter's `check` against the backend.
pub async fn check(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    find_backend(&state, &name).await?;
    match state.sync().check_backend(&name).await {
        Ok((line, adapter)) => Ok(Json(
            json!({"ok": true, "message": line, "adapter": adapter}),
        )),
        Err(crate::sync::SyncError::Connector {
            name: adapter,
            reason,
        }) => Ok(Json(
            json!({"ok": false, "message": reason, "adapter": adapter}),
        )),
        Err(e) => Err(e.into()),
    }
}
