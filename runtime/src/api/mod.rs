//! The admin HTTP API (axum): everything the CLI and the dashboard do, as
//! JSON under `/api/v1`, plus `/health`, `/metrics` (Prometheus text) and
//! the dashboard's static files at `/`. [`app`] builds the router; tests
//! drive it with `tower::ServiceExt::oneshot`, `junction serve` binds it.
//!
//! - Every route but `/health` and the dashboard's static shell needs
//!   `Authorization: Bearer <admin token>`; the shell holds no data and
//!   asks for the token.
//! - Errors: [`error::ApiError`], one JSON shape.
//! - Lists answer `{"items": [...], "next": cursor-or-null}`; pass `next`
//!   back as `cursor` for the following page.
//! - The OpenAPI 3 document is at `/api/v1/openapi.json`; a test keeps it
//!   and the router in step.

mod connectors;
mod control;
mod cursors;
mod dashboard;
mod data;
pub mod error;
mod events;
mod extract;
mod jobs;
mod system;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Serialize;

use crate::node::Node;
use crate::queue::Queue;
use crate::sync::Synchronizer;
use error::ApiError;
pub use system::OPENAPI;

/// Reloads the service's configuration file (`POST /api/v1/reload`,
/// SIGHUP): channels, backends and their schedules, the admin token.
#[async_trait]
pub trait Reload: Send + Sync {
    async fn reload(&self) -> Result<Reloaded, String>;
    /// Where the backend `name` is declared (the file's name), if the
    /// configuration file declares it: removing such a backend through
    /// the API would last only until the next reload.
    fn declares_backend(&self, _name: &str) -> Option<String> {
        None
    }
}

/// What a reload changed.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// For the operator.
    pub summary: String,
    /// The admin token from now on (a rotation takes effect at once).
    pub admin_token: String,
}

/// What the handlers reach.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Arc<Queue>,
    sync: Arc<Synchronizer>,
    token: std::sync::RwLock<String>,
    node: String,
    reload: Option<Arc<dyn Reload>>,
    started: Instant,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("node", &self.inner.node)
            .finish()
    }
}

impl ApiState {
    /// The API of `node`, protected by `token`.
    pub fn new(node: &Node, token: &str, reload: Option<Arc<dyn Reload>>) -> ApiState {
        ApiState {
            inner: Arc::new(Inner {
                queue: node.queue.clone(),
                sync: node.sync.clone(),
                token: std::sync::RwLock::new(token.to_string()),
                node: node.name().to_string(),
                reload,
                started: Instant::now(),
            }),
        }
    }

    /// Reload the configuration and apply the admin token it holds.
    pub async fn reload(&self) -> Result<Option<String>, String> {
        let Some(reload) = &self.inner.reload else {
            return Ok(None);
        };
        let r = reload.reload().await?;
        *self.inner.token.write().unwrap_or_else(|p| p.into_inner()) = r.admin_token;
        Ok(Some(r.summary))
    }

    /// The configuration file declaring backend `name`, if one does.
    pub fn declaring_file(&self, name: &str) -> Option<String> {
        self.inner.reload.as_ref()?.declares_backend(name)
    }

    fn sync(&self) -> &Arc<Synchronizer> {
        &self.inner.sync
    }

    fn queue(&self) -> &Arc<Queue> {
        &self.inner.queue
    }

    fn storage(&self) -> &Arc<dyn crate::storage::Storage> {
        self.inner.queue.storage()
    }
}

/// A page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// Page sizes: 50 unless asked, at most 500.
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > 500 => Err(ApiError::bad_request(format!(
            "limit {n} is above the maximum of 500; page with cursor instead"
        ))),
        Some(n) => Ok(n),
    }
}

/// A job-id cursor (the `next` of a page of jobs, newest first).
pub(crate) fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("cursor {c:?} is not one this API gave"))
            })
        })
        .transpose()
}

/// The router.
pub fn app(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/v1/status", get(system::status))
        .route("/api/v1/reload", post(system::reload))
        .route("/api/v1/nodes", get(system::nodes))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/metrics", get(system::metrics))
        .route(
            "/api/v1/connectors",
            get(connectors::list).post(connectors::install).layer(
                // Components are a few MiB; the default 2 MiB is too small.
                axum::extract::DefaultBodyLimit::max(64 << 20),
            ),
        )
        .route("/api/v1/connectors/rollback", post(connectors::rollback))
        .route(
            "/api/v1/inspect",
            post(connectors::inspect).layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/api/v1/connectors/{digest}",
            get(connectors::show).delete(connectors::remove),
        )
        .route(
            "/api/v1/connectors/{digest}/activate",
            post(connectors::activate),
        )
        .route(
            "/api/v1/backends",
            get(connectors::backends).post(connectors::put_backend),
        )
        .route(
            "/api/v1/backends/{name}",
            get(connectors::backend).delete(connectors::remove_backend),
        )
        .route("/api/v1/backends/{name}/check", post(connectors::check))
        .route(
            "/api/v1/backends/{name}/pause",
            post(control::pause_backend),
        )
        .route(
            "/api/v1/backends/{name}/resume",
            post(control::resume_backend),
        )
        .route(
            "/api/v1/channels/{name}/pause",
            post(control::pause_channel),
        )
        .route(
            "/api/v1/channels/{name}/resume",
            post(control::resume_channel),
        )
        .route(
            "/api/v1/backends/{name}/breaker/close",
            post(control::close_breaker),
        )
        .route("/api/v1/backends/{name}/cursors", get(cursors::list))
        .route(
            "/api/v1/backends/{name}/cursors/{model}",
            put(cursors::set).delete(cursors::reset),
        )
        .route("/api/v1/sync/import", post(jobs::import))
        .route("/api/v1/sync/export", post(jobs::export))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::enqueue))
        .route("/api/v1/jobs/bulk", post(jobs::bulk))
        .route("/api/v1/jobs/{id}", get(jobs::show))
        .route("/api/v1/jobs/{id}/requeue", post(jobs::requeue))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/done", post(jobs::done))
        .route("/api/v1/events/dead", get(events::list))
        .route("/api/v1/events/dead/retry", post(events::retry))
        .route("/api/v1/events/dead/discard", post(events::discard))
        .route("/api/v1/records/{model}", get(data::records))
        .route("/api/v1/records/{model}/{id}", get(data::record))
        .route("/api/v1/records/{model}/{id}/timeline", get(data::timeline))
        .route("/api/v1/bindings", get(data::bindings))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(system::health))
        .merge(dashboard::routes())
        .merge(api)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .with_state(state)
}

/// Bearer-token check, in constant time so that the token cannot be
/// guessed byte by byte from response times.
async fn auth(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token)
            if same(
                token.as_bytes(),
                state
                    .inner
                    .token
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_bytes(),
            ) =>
        {
            next.run(request).await
        }
        Some(_) => challenge(
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not the admin token",
            )
            .into_response(),
            true,
        ),
        None => challenge(
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the admin token as `Authorization: Bearer <token>` (it is in the service's config, admin_token or admin_token_file)",
            )
            .into_response(),
            false,
        ),
    }
}

/// A 401 names the scheme it wants (RFC 9110 §11.6.1), and a wrong token
/// says so (RFC 6750 §3).
fn challenge(mut response: Response, wrong_token: bool) -> Response {
    let value = if wrong_token {
        r#"Bearer realm="junction", error="invalid_token""#
    } else {
        r#"Bearer realm="junction""#
    };
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static(value),
    );
    response
}

fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests keeps the time independent of where they differ
    // and of the lengths.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}
