//! `demo-crm`: a reference CRM backend shaped like HubSpot's CRM v3 API —
//! the same paths, JSON shapes and error categories for the parts it
//! covers — for Junction's tests and demos of connectors written in Python
//! and JavaScript. It is shaped differently from `demo-shop` on purpose:
//! OAuth2 client credentials instead of an admin token, cursor pagination
//! instead of page numbers, objects with a `properties` map.
//!
//! Covered: `POST /oauth/v1/token` (grant `client_credentials`, client
//! id and secret in the form or as HTTP Basic); for `contacts`,
//! `companies` and `deals`: `GET /crm/v3/objects/{type}` (`limit`, `after`),
//! `GET|PATCH|DELETE /crm/v3/objects/{type}/{id}` (contacts also by
//! `?idProperty=email`), `POST /crm/v3/objects/{type}` and
//! `POST /crm/v3/objects/{type}/search` (`filterGroups`, `sorts`, `limit`,
//! `after`). Contact emails are unique (409 on a duplicate). Associations
//! are the properties `associatedcompanyid` and `associatedcontactid` (a
//! seeded deal is with its contact and that contact's company).
//! Tokens expire (`expires_in`); a rate limit answers 429 with
//! `Retry-After`; faults can be switched on as in `demo-shop`, including
//! creates whose answers are lost. A create sent with an
//! `Idempotency-Key` header is carried out once per key and object type:
//! the same key again answers the object it created (as Stripe's and
//! many payment and commerce APIs do).

pub mod data;
pub mod search;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use junction_backend_kit::{Body, Gate, Refusal, now_ms, reply, spawn_server};
use serde_json::{Map, Value, json};

pub use data::{Kind, Seed};
pub use junction_backend_kit::Faults;

use data::Data;
use search::Search;

/// How the CRM behaves.
#[derive(Debug, Clone)]
pub struct CrmConfig {
    pub seed: Seed,
    pub client_id: String,
    pub client_secret: String,
    /// How long an access token lives.
    pub token_lifetime: Duration,
    /// Requests per second before 429s; `None` for no limit.
    pub rate_limit: Option<u32>,
    /// Where to send a signed webhook for each change a CRM user makes,
    /// shaped as HubSpot's: a list of `{"objectId", "subscriptionType":
    /// "contact.creation" | "contact.propertyChange" | "contact.deletion",
    /// "occurredAt"}`.
    pub webhook: Option<junction_backend_kit::WebhookTarget>,
}

impl Default for CrmConfig {
    fn default() -> Self {
        CrmConfig {
            seed: Seed::default(),
            client_id: "junction".into(),
            client_secret: "crm-secret".into(),
            token_lifetime: Duration::from_secs(1800),
            rate_limit: None,
            webhook: None,
        }
    }
}

/// Marks (inside this crate) an answer that fault injection loses.
const LOSE: &str = "x-demo-crm-lose-answer";

struct State {
    config: CrmConfig,
    data: Mutex<Data>,
    /// Access token → when it expires (Unix ms).
    tokens: Mutex<HashMap<String, i64>>,
    issued: Mutex<u64>,
    gate: Gate,
    /// (object type, `Idempotency-Key`) → the id it created.
    created: Mutex<HashMap<(String, String), u64>>,
    /// Creates answered from `created` instead of carried out again.
    replayed: std::sync::atomic::AtomicU64,
    hooks: Option<junction_backend_kit::WebhookSender>,
}

/// A running CRM.
#[derive(Clone)]
pub struct Crm {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crm").field("addr", &self.addr).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Crm {
    /// Seed the data and serve on `addr` (use port 0 for any free port).
    pub async fn start(config: CrmConfig, addr: SocketAddr) -> std::io::Result<Crm> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            hooks: config
                .webhook
                .clone()
                .map(junction_backend_kit::WebhookSender::start),
            data: Mutex::new(Data::seeded(&config.seed)),
            gate: Gate::new(config.rate_limit),
            config,
            tokens: Mutex::new(HashMap::new()),
            issued: Mutex::new(0),
            created: Mutex::new(HashMap::new()),
            replayed: std::sync::atomic::AtomicU64::new(0),
        });
        let s = state.clone();
        spawn_server(listener, move |req| {
            let s = s.clone();
            async move { serve(&s, req).await }
        });
        Ok(Crm { addr, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.gate.set_faults(faults);
    }

    /// Access tokens issued so far (each token request counts).
    pub fn tokens_issued(&self) -> u64 {
        *lock(&self.state.issued)
    }

    /// Requests answered 429 (over the rate limit) so far.
    pub fn rate_limited(&self) -> u64 {
        self.state.gate.rate_limited()
    }

    /// Creates repeated with an `Idempotency-Key` already used, answered
    /// with the object the first one made.
    pub fn creates_replayed(&self) -> u64 {
        self.state
            .replayed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Expire every access token now, as time passing would.
    pub fn expire_tokens(&self) {
        lock(&self.state.tokens).values_mut().for_each(|t| *t = 0);
    }

    /// An object as the API shows it, or `None`.
    pub fn object(&self, kind: Kind, id: &str) -> Option<Value> {
        let id = id.parse().ok()?;
        lock(&self.state.data).get(kind, id).map(|o| o.to_json())
    }

    /// The contact with this email, as the API shows it.
    pub fn contact_by_email(&self, email: &str) -> Option<Value> {
        lock(&self.state.data)
            .contact_by_email(email)
            .map(|o| o.to_json())
    }

    /// Every object of a kind, as the API shows them.
    pub fn objects(&self, kind: Kind) -> Vec<Value> {
        lock(&self.state.data)
            .all(kind)
            .map(|o| o.to_json())
            .collect()
    }

    /// Change properties as a CRM user would (the update time moves).
    pub fn edit(&self, kind: Kind, id: &str, properties: Value) -> bool {
        let (Ok(id), Value::Object(p)) = (id.parse::<u64>(), properties) else {
            return false;
        };
        let changed = lock(&self.state.data).update(kind, id, p).is_some();
        if changed {
            self.notify(kind, id, "propertyChange");
        }
        changed
    }

    /// Create an object as a CRM user would; its id.
    pub fn add(&self, kind: Kind, properties: Value) -> Option<String> {
        let Value::Object(p) = properties else {
            return None;
        };
        let id = lock(&self.state.data).create(kind, p).id;
        self.notify(kind, id, "creation");
        Some(id.to_string())
    }

    /// Delete an object as a CRM user would; `false` if there was none.
    pub fn remove(&self, kind: Kind, id: &str) -> bool {
        let Ok(id) = id.parse::<u64>() else {
            return false;
        };
        let removed = lock(&self.state.data).remove(kind, id);
        if removed {
            self.notify(kind, id, "deletion");
        }
        removed
    }

    /// Send the webhook for a change, when the CRM sends webhooks.
    fn notify(&self, kind: Kind, id: u64, change: &str) {
        if let Some(hooks) = &self.state.hooks {
            hooks.send(json!([{
                "objectId": id,
                "subscriptionType": format!("{}.{change}", kind.singular()),
                "occurredAt": now_ms(),
            }]));
        }
    }

    /// What the webhook sender did so far (`None`: it sends none).
    pub fn webhooks_sent(&self) -> Option<junction_backend_kit::webhook::Sent> {
        self.state
            .hooks
            .as_ref()
            .map(junction_backend_kit::WebhookSender::sent)
    }
}

fn error(status: StatusCode, category: &str, message: &str) -> Response<Body> {
    reply(
        status,
        json!({
            "status": "error",
            "message": message,
            "correlationId": format!("{:016x}", now_ms().unsigned_abs().wrapping_mul(0x9E37_79B9)),
            "category": category,
        }),
    )
}

async fn serve(state: &State, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
    let refused = state
        .gate
        .admit(|why| match why {
            Refusal::Unavailable => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "The service is temporarily unavailable.",
            ),
            Refusal::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITS",
                    "You have reached your secondly limit.",
                );
                r.headers_mut().insert(
                    "x-hubspot-ratelimit-policy",
                    hyper::header::HeaderValue::from_static("SECONDLY"),
                );
                r
            }
        })
        .await?;
    match refused {
        Some(r) => Ok(r),
        None => {
            let answer = route(state, req).await;
            if answer.headers().contains_key(LOSE) {
                // Carried out, never answered.
                return Err(std::io::Error::other("fault injection: answer lost"));
            }
            Ok(answer)
        }
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

/// Percent-decoding, with `+` as a space (form and query encoding).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Client credentials from HTTP Basic auth, decoded.
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((decode(id), decode(secret)))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn token(state: &State, headers: &hyper::HeaderMap, body: &[u8]) -> Response<Body> {
    let oauth = |status: StatusCode, code: &str, text: &str| {
        reply(status, json!({ "error": code, "error_description": text }))
    };
    let fields = form(body);
    if fields.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let basic = basic_credentials(headers.get("authorization").and_then(|v| v.to_str().ok()));
    let (id, secret) = match (basic, fields.get("client_id"), fields.get("client_secret")) {
        (Some(pair), _, _) => pair,
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => {
            return oauth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id and client_secret are required (form fields or HTTP Basic)",
            );
        }
    };
    if id != state.config.client_id || secret != state.config.client_secret {
        return oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    }
    let mut issued = lock(&state.issued);
    *issued += 1;
    let access = format!(
        "crm-{:012x}-{:06}",
        now_ms().unsigned_abs().wrapping_mul(0x9E37_79B9) & 0xffff_ffff_ffff,
        *issued
    );
    let lifetime = state.config.token_lifetime;
    lock(&state.tokens).insert(access.clone(), now_ms() + lifetime.as_millis() as i64);
    reply(
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": lifetime.as_secs(),
        }),
    )
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (decode(k) == name).then(|| decode(v))
    })
}

fn properties_of(body: &[u8], kind: Kind) -> Result<Map<String, Value>, Box<Response<Body>>> {
    let invalid = |m: &str| Box::new(error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", m));
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("Invalid input JSON on line 1: {e}")))?;
    let Some(props) = parsed.get("properties").and_then(Value::as_object) else {
        return Err(invalid(
            "Property values were not valid: \"properties\" (an object) is required",
        ));
    };
    for (k, v) in props {
        if !kind.writable().contains(&k.as_str()) {
            return Err(invalid(&format!(
                "Property values were not valid: property {k:?} does not exist on {}",
                kind.singular()
            )));
        }
        if v.is_object() || v.is_array() {
            return Err(invalid(&format!(
                "Property values were not valid: {k:?} must be a string, number or boolean"
            )));
        }
    }
    Ok(props.clone())
}

async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "could not read the request body",
            );
        }
    };
    if method == Method::POST && path == "/oauth/v1/token" {
        return token(state, &headers, &body);
    }
    let Some(rest) = path.strip_prefix("/crm/v3/objects/") else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        );
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer.and_then(|t| lock(&state.tokens).get(t).copied()) {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            );
        }
        Some(expires) if expires <= now_ms() => {
            return error(
                StatusCode::UNAUTHORIZED,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired.",
            );
        }
        Some(_) => {}
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let Some(kind) = Kind::from_path(segments[0]) else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!(
                "unknown object type {:?}: use contacts, companies or deals",
                segments[0]
            ),
        );
    };
    let not_found = |id: &str| {
        error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("{} {id} was not found", kind.singular()),
        )
    };
    let mut data = lock(&state.data);
    match (&method, &segments[1..]) {
        (&Method::GET, []) => {
            let limit = match query_param(&query, "limit").map(|l| l.parse::<usize>()) {
                None => 10,
                Some(Ok(l @ 1..=100)) => l,
                Some(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "VALIDATION_ERROR",
                        "limit must be from 1 to 100",
                    );
                }
            };
            let after = match query_param(&query, "after").map(|a| a.parse::<u64>()) {
                None => 0,
                Some(Ok(a)) => a,
                Some(Err(_)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "VALIDATION_ERROR",
                        "after must be a cursor from paging.next.after",
                    );
                }
            };
            // Ids only grow, so "after the last id seen" is a cursor that
            // stays right while objects are created or changed.
            let page: Vec<&data::Object> = data
                .all(kind)
                .filter(|o| o.id > after)
                .take(limit + 1)
                .collect();
            let more = page.len() > limit;
            let results: Vec<Value> = page.iter().take(limit).map(|o| o.to_json()).collect();
            let mut out = json!({ "results": results });
            if more {
                out["paging"] = json!({ "next": { "after": page[limit - 1].id.to_string() } });
            }
            reply(StatusCode::OK, out)
        }
        (&Method::POST, []) => {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(|k| (kind.singular().to_string(), k.to_string()));
            if let Some(id) = key
                .as_ref()
                .and_then(|k| lock(&state.created).get(k).copied())
                && let Some(existing) = data.get(kind, id)
            {
                state
                    .replayed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return reply(StatusCode::CREATED, existing.to_json());
            }
            let props = match properties_of(&body, kind) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            if kind == Kind::Contacts {
                let Some(email) = props.get("email").and_then(Value::as_str) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "VALIDATION_ERROR",
                        "Property values were not valid: a contact needs an email",
                    );
                };
                if let Some(existing) = data.contact_by_email(email) {
                    return error(
                        StatusCode::CONFLICT,
                        "CONFLICT",
                        &format!("Contact already exists. Existing ID: {}", existing.id),
                    );
                }
            }
            let created = data.create(kind, props);
            if let Some(key) = key {
                lock(&state.created).insert(key, created.id);
            }
            let mut answer = reply(StatusCode::CREATED, created.to_json());
            if state.gate.lose_created() {
                answer
                    .headers_mut()
                    .insert(LOSE, hyper::header::HeaderValue::from_static("1"));
            }
            answer
        }
        (&Method::POST, ["search"]) => {
            let request: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "VALIDATION_ERROR",
                        &format!("Invalid input JSON: {e}"),
                    );
                }
            };
            match Search::parse(&request) {
                Ok(search) => reply(StatusCode::OK, search.apply(data.all(kind))),
                Err(e) => error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &e),
            }
        }
        (method, [id]) => {
            let id = decode(id);
            let found = if query_param(&query, "idProperty").as_deref() == Some("email")
                && kind == Kind::Contacts
            {
                data.contact_by_email(&id).map(|o| o.id)
            } else {
                id.parse::<u64>()
                    .ok()
                    .filter(|n| data.get(kind, *n).is_some())
            };
            let Some(n) = found else {
                return not_found(&id);
            };
            match *method {
                Method::GET => reply(
                    StatusCode::OK,
                    data.get(kind, n).map(|o| o.to_json()).unwrap_or_default(),
                ),
                Method::PATCH => {
                    let props = match properties_of(&body, kind) {
                        Ok(p) => p,
                        Err(r) => return *r,
                    };
                    if let Some(email) = props.get("email").and_then(Value::as_str)
                        && let Some(other) = data.contact_by_email(email).filter(|o| o.id != n)
                    {
                        return error(
                            StatusCode::CONFLICT,
                            "CONFLICT",
                            &format!("Contact already exists. Existing ID: {}", other.id),
                        );
                    }
                    match data.update(kind, n, props) {
                        Some(o) => reply(StatusCode::OK, o.to_json()),
                        None => not_found(&id),
                    }
                }
                Method::DELETE => {
                    data.remove(kind, n);
                    Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Body::default())
                        .expect("a valid response")
                }
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "VALIDATION_ERROR",
                    "method not allowed on an object",
                ),
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_basic_auth_decode() {
        let f = form(b"grant_type=client_credentials&client_id=a%2Bb&client_secret=x+y");
        assert_eq!(f["client_id"], "a+b");
        assert_eq!(f["client_secret"], "x y");
        // "junction:crm-secret"
        assert_eq!(
            basic_credentials(Some("Basic anVuY3Rpb246Y3JtLXNlY3JldA==")),
            Some(("junction".into(), "crm-secret".into()))
        );
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%e9%"), "\u{fffd}%");
        assert_eq!(decode("a%2"), "a%2");
    }
}
