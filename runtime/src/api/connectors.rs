//! Connectors (install, list, activate, roll back, remove) and backends
//! (configure, list, check).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use super::types::{
    ActivateQuery, BackendRemoved, BackendView, BreakerState, BreakerView, CheckAnswer, Component,
    ConnectorView, ErrorBody, Inspected, InstallQuery, ModelUnits, Page, Purged,
    RemoveBackendQuery, ResolvedUnits, Rollback, Units, UnresolvedUnits,
};
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
fn view(c: &InstalledConnector, all: &[InstalledConnector]) -> ConnectorView {
    let mine = requests(c);
    let beyond_active = all
        .iter()
        .find(|o| o.active && o.name == c.name && o.digest != c.digest)
        .map(|active| mine.beyond(&requests(active)).lines())
        .unwrap_or_default();
    ConnectorView {
        digest: c.digest.clone(),
        name: c.name.clone(),
        version: c.version.clone(),
        backend_kind: c.backend_kind.clone(),
        backend_versions: c.backend_versions.clone(),
        active: c.active,
        installed_at: c.installed_at,
        manifest: serde_json::from_str(&c.manifest).unwrap_or(Value::Null),
        requests: mine.lines(),
        beyond_active,
    }
}

/// A connector as the API shows it, among the installed ones now.
async fn view_now(state: &ApiState, c: &InstalledConnector) -> ApiResult<ConnectorView> {
    Ok(view(c, &state.storage().connectors().await?))
}

/// Installed connector versions.
#[utoipa::path(get, path = "/api/v1/connectors", operation_id = "list_connectors", tag = "connectors",
    responses((status = OK, description = "every installed version, one page", body = Page<ConnectorView>)))]
pub async fn list(State(state): State<ApiState>) -> ApiResult<Json<Page<ConnectorView>>> {
    let all = state.storage().connectors().await?;
    let items = all.iter().map(|c| view(c, &all)).collect();
    Ok(Json(Page { items, next: None }))
}

/// One installed version.
#[utoipa::path(get, path = "/api/v1/connectors/{digest}", operation_id = "get_connector", tag = "connectors", params(("digest" = String, Path, description = "`sha256:` and the component's hex digest")),
    responses((status = OK, description = "the version", body = ConnectorView)))]
pub async fn show(
    State(state): State<ApiState>,
    ApiPath(digest): ApiPath<String>,
) -> ApiResult<Json<ConnectorView>> {
    let c = state.sync().connector(&digest).await?;
    Ok(Json(view_now(&state, &c).await?))
}

/// Install a component (the body is its bytes, up to 64 MiB).
#[utoipa::path(post, path = "/api/v1/connectors", operation_id = "install_connector", tag = "connectors", params(InstallQuery),
    request_body(content = Component, content_type = "application/wasm"),
    responses(
        (status = CREATED, description = "installed", body = ConnectorView),
        (status = CONFLICT, description = "`needs_approval`: it requests more than the active version; installed inactive", body = ErrorBody),
        (status = UNPROCESSABLE_ENTITY, description = "`digest_mismatch` or `not_a_connector`; nothing was installed", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "`payload_too_large`", body = ErrorBody),
    ))]
pub async fn install(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<InstallQuery>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<(StatusCode, Json<ConnectorView>)> {
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
    Ok((
        StatusCode::CREATED,
        Json(view_now(&state, &installed).await?),
    ))
}

/// What `junction connector inspect` reports, for an upload; installs
/// nothing.
#[utoipa::path(post, path = "/api/v1/inspect", operation_id = "inspect_component", tag = "connectors",
    request_body(content = Component, content_type = "application/wasm"),
    responses(
        (status = OK, description = "what the component is", body = Inspected),
        (status = UNPROCESSABLE_ENTITY, description = "`not_a_connector`", body = ErrorBody),
    ))]
pub async fn inspect(State(state): State<ApiState>, body: Bytes) -> ApiResult<Json<Inspected>> {
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
    Ok(Json(Inspected {
        file: report.file,
        digest: report.digest,
        size_bytes: report.size_bytes as u64,
        world: report.world.to_string(),
        compile_ms: report.compile_ms as u64,
        compile_cached: report.compile_cached,
        manifest: serde_json::to_value(&report.manifest).unwrap_or(Value::Null),
    }))
}

/// Make a version the active one of its connector.
#[utoipa::path(post, path = "/api/v1/connectors/{digest}/activate", operation_id = "activate_connector", tag = "connectors", params(("digest" = String, Path, description = "`sha256:` and the component's hex digest"), ActivateQuery),
    responses(
        (status = OK, description = "active now", body = ConnectorView),
        (status = CONFLICT, description = "`needs_approval`: pass approve=true", body = ErrorBody),
    ))]
pub async fn activate(
    State(state): State<ApiState>,
    ApiPath(digest): ApiPath<String>,
    ApiQuery(q): ApiQuery<ActivateQuery>,
) -> ApiResult<Json<ConnectorView>> {
    let c = state
        .sync()
        .activate_connector(&digest, q.approve.unwrap_or(false))
        .await?;
    Ok(Json(view_now(&state, &c).await?))
}

/// Make the previous version of a connector active again.
#[utoipa::path(post, path = "/api/v1/connectors/rollback", operation_id = "rollback_connector", tag = "connectors", request_body = Rollback,
    responses((status = OK, description = "the version active now", body = ConnectorView)))]
pub async fn rollback(
    State(state): State<ApiState>,
    ApiJson(r): ApiJson<Rollback>,
) -> ApiResult<Json<ConnectorView>> {
    let c = state.sync().rollback_connector(&r.name).await?;
    Ok(Json(view_now(&state, &c).await?))
}

/// Remove an inactive version.
#[utoipa::path(delete, path = "/api/v1/connectors/{digest}", operation_id = "remove_connector", tag = "connectors", params(("digest" = String, Path, description = "`sha256:` and the component's hex digest")),
    responses(
        (status = OK, description = "the version removed", body = ConnectorView),
        (status = CONFLICT, description = "`refused`: it is active or a backend uses it", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<ApiState>,
    ApiPath(digest): ApiPath<String>,
) -> ApiResult<Json<ConnectorView>> {
    let c = state.sync().remove_connector(&digest).await?;
    Ok(Json(view_now(&state, &c).await?))
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

async fn backend_view(
    state: &ApiState,
    config: &BackendConfig,
    held: &Held,
) -> ApiResult<BackendView> {
    let units = match state.sync().backend(&config.name).await {
        Ok(u) => Units::Resolved(ResolvedUnits {
            adapter: u.adapter_labels(),
            adapter_digest: u.adapters.first().map(|a| a.unit.digest().to_string()),
            mapper: u.mapper_labels(),
            models: u
                .routes
                .iter()
                .map(|(model, r)| {
                    (
                        model.clone(),
                        ModelUnits {
                            adapter: r.adapter_label.clone(),
                            adapter_digest: r.adapter.digest().to_string(),
                            mapper: r.mapper_label.clone(),
                        },
                    )
                })
                .collect(),
        }),
        Err(e) => Units::Unresolved(UnresolvedUnits {
            error: e.to_string(),
        }),
    };
    let bindings = state
        .storage()
        .binding_counts(&config.name)
        .await?
        .into_iter()
        .collect();
    let breaker = held.breakers.iter().find(|b| b.backend == config.name);
    Ok(BackendView {
        name: config.name.clone(),
        config: config.redacted(),
        units,
        bindings,
        breaker: breaker_view(breaker, crate::queue::now_ms()),
        paused: held
            .paused
            .iter()
            .any(|(kind, name, _)| kind == "backend" && *name == config.name),
    })
}

/// A backend's circuit breaker: `closed`; `open` until `retry_at`; then
/// `half-open` while its probe is due or running.
pub(crate) fn breaker_view(open: Option<&crate::storage::OpenBreaker>, now: i64) -> BreakerView {
    match open {
        None => BreakerView {
            state: BreakerState::Closed,
            failures: None,
            reason: None,
            opened_at: None,
            retry_at: None,
            probes: None,
        },
        Some(b) => BreakerView {
            state: if b.retry_at <= now {
                BreakerState::HalfOpen
            } else {
                BreakerState::Open
            },
            failures: Some(b.failures),
            reason: Some(b.reason.clone()),
            opened_at: Some(b.opened_at),
            retry_at: Some(b.retry_at),
            probes: Some(b.probes),
        },
    }
}

/// Configured backends with their units, bindings, breaker and pause.
#[utoipa::path(get, path = "/api/v1/backends", operation_id = "list_backends", tag = "backends",
    responses((status = OK, description = "every backend, one page", body = Page<BackendView>)))]
pub async fn backends(State(state): State<ApiState>) -> ApiResult<Json<Page<BackendView>>> {
    let held = Held::load(&state).await?;
    let mut items = Vec::new();
    for config in state.sync().backend_configs().await? {
        items.push(backend_view(&state, &config, &held).await?);
    }
    Ok(Json(Page { items, next: None }))
}

/// One backend.
#[utoipa::path(get, path = "/api/v1/backends/{name}", operation_id = "get_backend", tag = "backends", params(("name" = String, Path, description = "the backend's name")),
    responses((status = OK, description = "the backend", body = BackendView)))]
pub async fn backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<BackendView>> {
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

/// Create or replace a backend. Refused when no installed connector
/// serves it.
#[utoipa::path(post, path = "/api/v1/backends", operation_id = "put_backend", tag = "backends", request_body = BackendConfig,
    responses(
        (status = CREATED, description = "configured", body = BackendView),
        (status = UNPROCESSABLE_ENTITY, description = "`bad_backend`: the configuration is invalid (the message names the field), or `unresolved`", body = ErrorBody),
    ))]
pub async fn put_backend(
    State(state): State<ApiState>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<(StatusCode, Json<BackendView>)> {
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

/// Remove a backend. Refused while it has unfinished jobs (unless
/// `cancel_jobs`) and for a backend the configuration file declares (the
/// next reload would add it again).
#[utoipa::path(delete, path = "/api/v1/backends/{name}", operation_id = "remove_backend", tag = "backends", params(("name" = String, Path, description = "the backend's name"), RemoveBackendQuery),
    responses(
        (status = OK, description = "removed", body = BackendRemoved),
        (status = CONFLICT, description = "`backend_busy` (it has unfinished jobs) or `backend_declared` (the config file declares it)", body = ErrorBody),
    ))]
pub async fn remove_backend(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RemoveBackendQuery>,
) -> ApiResult<Json<BackendRemoved>> {
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
    Ok(Json(BackendRemoved {
        removed: name,
        cancelled_jobs: removed.cancelled_jobs,
        purged: Purged {
            bindings: removed.bindings,
            state_keys: removed.state_keys,
        },
    }))
}

/// Call the adapter's `check` against the backend: reachable, with the
/// configured credentials? A failing check answers 200 with `ok` false.
#[utoipa::path(post, path = "/api/v1/backends/{name}/check", operation_id = "check_backend", tag = "backends", params(("name" = String, Path, description = "the backend's name")),
    responses((status = OK, description = "the check's answer", body = CheckAnswer)))]
pub async fn check(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<CheckAnswer>> {
    find_backend(&state, &name).await?;
    match state.sync().check_backend(&name).await {
        Ok((message, adapter)) => Ok(Json(CheckAnswer {
            ok: true,
            message,
            adapter,
        })),
        Err(crate::sync::SyncError::Connector {
            name: adapter,
            reason,
        }) => Ok(Json(CheckAnswer {
            ok: false,
            message: reason,
            adapter,
        })),
        Err(e) => Err(e.into()),
    }
}
