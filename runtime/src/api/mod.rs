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
//! - The OpenAPI 3.1 document is at `/api/v1/openapi.json` (and printed by
//!   `junction openapi`): generated from the handlers' `#[utoipa::path]`
//!   attributes and the wire types in [`types`], and the router is built
//!   from the same attributes, so no route goes undocumented.

mod connectors;
mod control;
mod cursors;
mod dashboard;
mod data;
mod doc;
pub mod error;
mod events;
mod extract;
pub mod hooks;
mod jobs;
mod system;
pub mod types;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::node::Node;
use crate::queue::Queue;
use crate::sync::Synchronizer;
use error::ApiError;

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
    /// `[webhooks]` from now on.
    pub webhooks: hooks::WebhookSettings,
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
    /// `[webhooks]`: off until the service's configuration turns it on.
    webhooks: std::sync::RwLock<hooks::WebhookSettings>,
    /// Webhook signatures taken within their replay window.
    seen: hooks::Seen,
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
                webhooks: Default::default(),
                seen: Default::default(),
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
        self.set_webhooks(r.webhooks);
        Ok(Some(r.summary))
    }

    /// The configuration file declaring backend `name`, if one does.
    pub fn declaring_file(&self, name: &str) -> Option<String> {
        self.inner.reload.as_ref()?.declares_backend(name)
    }

    /// Turn webhook intake on or off, with its bounds.
    pub fn set_webhooks(&self, settings: hooks::WebhookSettings) {
        *self
            .inner
            .webhooks
            .write()
            .unwrap_or_else(|p| p.into_inner()) = settings;
    }

    fn webhooks(&self) -> hooks::WebhookSettings {
        *self
            .inner
            .webhooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
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

/// Components are a few MiB; the default 2 MiB body limit is too small.
const COMPONENT_LIMIT: usize = 64 << 20;

/// The API's routes with their documentation: those anyone may call
/// (`doc::OPEN`) and those that need the admin token.
fn routes() -> (OpenApiRouter<ApiState>, OpenApiRouter<ApiState>) {
    let open = OpenApiRouter::with_openapi(doc::Base::openapi())
        .routes(routes!(system::health))
        // Backends call it: it checks their signature, not the admin token.
        .routes(routes!(hooks::take).layer(DefaultBodyLimit::disable()));
    let guarded = OpenApiRouter::new()
        .routes(routes!(system::status))
        .routes(routes!(system::reload))
        .routes(routes!(system::nodes))
        .routes(routes!(system::openapi))
        .routes(routes!(system::metrics))
        .routes(
            routes!(connectors::list, connectors::install)
                .layer(DefaultBodyLimit::max(COMPONENT_LIMIT)),
        )
        .routes(routes!(connectors::rollback))
        .routes(routes!(connectors::inspect).layer(DefaultBodyLimit::max(COMPONENT_LIMIT)))
        .routes(routes!(connectors::show, connectors::remove))
        .routes(routes!(connectors::activate))
        .routes(routes!(connectors::backends, connectors::put_backend))
        .routes(routes!(connectors::backend, connectors::remove_backend))
        .routes(routes!(connectors::check))
        .routes(routes!(control::pause_backend))
        .routes(routes!(control::resume_backend))
        .routes(routes!(control::pause_channel))
        .routes(routes!(control::resume_channel))
        .routes(routes!(control::close_breaker))
        .routes(routes!(cursors::list))
        .routes(routes!(cursors::set, cursors::reset))
        .routes(routes!(jobs::import))
        .routes(routes!(jobs::export))
        .routes(routes!(jobs::reconcile))
        .routes(routes!(jobs::task))
        .routes(routes!(jobs::list, jobs::enqueue))
        .routes(routes!(jobs::bulk))
        .routes(routes!(jobs::show))
        .routes(routes!(jobs::requeue))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::done))
        .routes(routes!(events::list))
        .routes(routes!(events::retry))
        .routes(routes!(events::discard))
        .routes(routes!(data::records))
        .routes(routes!(data::record))
        .routes(routes!(data::timeline))
        .routes(routes!(data::bindings));
    (open, guarded)
}

/// The OpenAPI document of every route [`app`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (open, guarded) = routes();
    let mut doc = open.merge(guarded).into_openapi();
    doc::Common.modify(&mut doc);
    doc
}

/// [`openapi`] as pretty JSON, generated once.
pub fn openapi_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| openapi().to_pretty_json().unwrap_or_default())
}

/// The router.
pub fn app(state: ApiState) -> Router {
    let (open, guarded) = routes();
    let (open, _) = open.split_for_parts();
    let (guarded, _) = guarded.split_for_parts();
    Router::new()
        .merge(open)
        .merge(dashboard::routes())
        .merge(guarded.route_layer(middleware::from_fn_with_state(state.clone(), auth)))
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
