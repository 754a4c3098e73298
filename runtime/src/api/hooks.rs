//! Webhook intake: `POST /hooks/{backend}/{name}`, the one route a backend
//! (not an operator) calls, so it needs no admin token and is off unless
//! `[webhooks] enabled = true`. A call is taken only when it is signed
//! with the backend's webhook secret — `x-junction-signature: sha256=<hex
//! HMAC-SHA256 of "<timestamp>.<body>">` and `x-junction-timestamp: <Unix
//! seconds>` — within the replay window, not seen before on this node, and
//! no larger than the body cap. Every check runs before the connector
//! sees anything; a refused call enqueues nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::ApiState;
use super::error::ApiError;
use super::types::{ErrorBody, WebhookPayload, WebhookTaken};
use crate::features::Webhook;
use crate::sync::webhook::IntakeError;

pub const SIGNATURE: &str = "x-junction-signature";
pub const TIMESTAMP: &str = "x-junction-timestamp";

/// Signatures remembered for the replay check, at most.
const MAX_SEEN: usize = 100_000;

/// `[webhooks]` of the service's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Off by default: the route answers 404 `webhooks_off`.
    pub enabled: bool,
    /// Larger bodies are refused (413) before they are read whole.
    pub max_body_bytes: usize,
    /// A call signed longer ago (or further ahead) than this is refused,
    /// and a signature is remembered this long to refuse its replay.
    pub replay_window_seconds: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            enabled: false,
            max_body_bytes: 1 << 20,
            replay_window_seconds: 300,
        }
    }
}

impl WebhookSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.max_body_bytes == 0 || self.max_body_bytes > 64 << 20 {
            return Err("webhooks.max_body_bytes must be between 1 and 67108864".into());
        }
        if !(1..=86_400).contains(&self.replay_window_seconds) {
            return Err("webhooks.replay_window_seconds must be between 1 and 86400".into());
        }
        Ok(())
    }
}

/// Signatures taken recently (backend and signature → when they lapse,
/// Unix seconds), so that a captured call cannot be sent again.
#[derive(Debug, Default)]
pub(super) struct Seen(Mutex<HashMap<String, i64>>);

impl Seen {
    /// Remember `key` until `until`; false when it is already known.
    fn first(&self, key: String, now: i64, until: i64) -> Result<bool, ApiError> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_SEEN {
            seen.retain(|_, lapse| *lapse > now);
        }
        if seen.get(&key).is_some_and(|lapse| *lapse > now) {
            return Ok(false);
        }
        if seen.len() >= MAX_SEEN {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many webhook calls within the replay window; send again later",
            ));
        }
        seen.insert(key, until);
        Ok(true)
    }

    /// Forget `key`: the call it signed was not taken (refused by the
    /// connector, or to be sent again), so sending it again is no replay.
    fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The signature a body sent at `timestamp` carries with `secret`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn unsigned(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", message)
}

/// Check the signature headers of a call to `backend` (in constant time);
/// the timestamp, in Unix seconds, when they hold.
fn verify(
    headers: &HeaderMap,
    secret: &str,
    body: &[u8],
    now: i64,
    window: u64,
) -> Result<(i64, String), ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(timestamp), Some(signature)) = (header(TIMESTAMP), header(SIGNATURE)) else {
        return Err(unsigned(format!(
            "sign the call: {SIGNATURE}: sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\" with the backend's webhook secret> and {TIMESTAMP}: <Unix seconds>"
        )));
    };
    let at: i64 = timestamp
        .parse()
        .map_err(|_| unsigned(format!("{TIMESTAMP} must be Unix seconds")))?;
    if at.abs_diff(now) > window {
        return Err(unsigned(format!(
            "the call was signed {}s from now, outside the replay window of {window}s; sign each call when it is sent (and check the sender's clock)",
            at - now
        )));
    }
    let given = signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| unsigned(format!("{SIGNATURE} must be sha256=<hex>")))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| {
        unsigned("the signature does not match the body and timestamp with this backend's webhook secret")
    })?;
    Ok((at, signature.to_ascii_lowercase()))
}

/// Headers the connector sees: names lowercased, credentials and cookies
/// and the signature removed, values that are not text dropped.
fn visible(headers: &HeaderMap) -> Vec<(String, String)> {
    const HIDDEN: &[&str] = &["authorization", "cookie", "proxy-authorization", SIGNATURE];
    headers
        .iter()
        .filter(|(name, _)| !HIDDEN.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_string(), v.to_string()))
        })
        .take(64)
        .collect()
}

/// Take a webhook call from a backend.
#[utoipa::path(post, path = "/hooks/{backend}/{name}", operation_id = "take_webhook", tag = "hooks",
    params(("backend" = String, Path, description = "the backend's name"),
           ("name" = String, Path, description = "a webhook its connector declares")),
    request_body(content = WebhookPayload, description = "the backend's payload, signed"),
    responses(
        (status = ACCEPTED, description = "verified and handed to the connector", body = WebhookTaken),
        (status = UNAUTHORIZED, description = "unsigned, badly signed, or outside the replay window", body = ErrorBody),
        (status = CONFLICT, description = "this signed call was taken already (a replay)", body = ErrorBody),
        (status = SERVICE_UNAVAILABLE, description = "the connector asks to send again later (`Retry-After`)", body = ErrorBody)))]
pub async fn take(
    State(state): State<ApiState>,
    Path((backend, name)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    match take_inner(&state, &backend, &name, request).await {
        Ok(taken) => (StatusCode::ACCEPTED, Json(taken)).into_response(),
        Err((e, retry_after)) => {
            let mut response = e.into_response();
            if let Some(s) = retry_after
                && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
            {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            response
        }
    }
}

async fn take_inner(
    state: &ApiState,
    backend: &str,
    name: &str,
    request: Request<Body>,
) -> Result<WebhookTaken, (ApiError, Option<u32>)> {
    let plain = |e: ApiError| (e, None);
    let settings = state.webhooks();
    if !settings.enabled {
        return Err(plain(ApiError::new(
            StatusCode::NOT_FOUND,
            "webhooks_off",
            "webhook intake is off on this node; set [webhooks] enabled = true in its configuration",
        )));
    }
    if !crate::features::is_slug(name) {
        return Err(plain(ApiError::not_found(
            "a webhook name is lowercase letters, digits and '-' (1 to 64 bytes)",
        )));
    }
    let sync = state.sync();
    let secret = match sync.webhook_secret(backend).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(plain(ApiError::not_found(format!(
                "backend {backend} takes no webhooks: give it a webhook secret (webhooks.secret in its configuration)"
            ))));
        }
        Err(e) => return Err(intake(e)),
    };
    let (parts, body) = request.into_parts();
    let limit = settings.max_body_bytes;
    let too_large = || {
        plain(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is over the webhook limit of {limit} bytes ([webhooks] max_body_bytes)"
            ),
        ))
    };
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let now = crate::queue::now_ms() / 1000;
    let window = settings.replay_window_seconds;
    let (at, signature) = verify(&parts.headers, &secret, &body, now, window).map_err(plain)?;
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| plain(ApiError::bad_request("the webhook body is not UTF-8 text")))?;
    // Remembered until the signature's own timestamp leaves the window;
    // taken before the connector runs, so that two copies sent at once
    // are one call, and given back if the call is not taken.
    let key = format!("{backend}\0{signature}");
    if !state
        .inner
        .seen
        .first(key.clone(), now, at + window as i64 + 1)
        .map_err(plain)?
    {
        return Err(plain(ApiError::new(
            StatusCode::CONFLICT,
            "replayed",
            "this signed call was taken already; sign every call anew (a new timestamp)",
        )));
    }
    let hook = Webhook {
        name: name.to_string(),
        headers: visible(&parts.headers),
        body,
    };
    let jobs = sync.take_webhook(backend, &hook).await.map_err(|e| {
        state.inner.seen.forget(&key);
        intake(e)
    })?;
    Ok(WebhookTaken {
        backend: backend.to_string(),
        webhook: name.to_string(),
        jobs,
    })
}

fn intake(e: IntakeError) -> (ApiError, Option<u32>) {
    match e {
        IntakeError::NotFound(m) => (ApiError::not_found(m), None),
        IntakeError::Later {
            after_seconds,
            message,
        } => (
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "try_later",
                crate::text::clean(&message),
            ),
            Some(after_seconds.max(1)),
        ),
        IntakeError::Refused(m) => (
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused",
                crate::text::clean(&m),
            ),
            None,
        ),
        IntakeError::Failed(m) => (
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed",
                crate::text::clean(&m),
            ),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP, ts.parse().unwrap());
        h.insert(SIGNATURE, sig.parse().unwrap());
        h
    }

    #[test]
    fn only_a_fresh_call_signed_with_the_secret_verifies() {
        let body = br#"{"id":"7"}"#;
        let good = sign(b"s3cret", "1000", body);
        assert!(verify(&headers("1000", &good), "s3cret", body, 1010, 300).is_ok());
        // Another secret, another body, another timestamp.
        assert!(verify(&headers("1000", &good), "other", body, 1010, 300).is_err());
        assert!(verify(&headers("1000", &good), "s3cret", b"{}", 1010, 300).is_err());
        assert!(verify(&headers("1001", &good), "s3cret", body, 1010, 300).is_err());
        // Outside the window, either way.
        let e = verify(&headers("1000", &good), "s3cret", body, 1400, 300).unwrap_err();
        assert!(e.message.contains("replay window"), "{}", e.message);
        assert!(verify(&headers("1000", &good), "s3cret", body, 600, 300).is_err());
        assert!(verify(&HeaderMap::new(), "s3cret", body, 1000, 300).is_err());
        assert!(verify(&headers("1000", "md5=00"), "s3cret", body, 1000, 300).is_err());
    }

    #[test]
    fn a_signature_is_taken_once_within_its_window() {
        let seen = Seen::default();
        assert!(seen.first("b\0sig".into(), 10, 20).unwrap());
        assert!(!seen.first("b\0sig".into(), 15, 25).unwrap());
        assert!(seen.first("b\0sig".into(), 21, 30).unwrap(), "lapsed");
        seen.forget("b\0sig");
        assert!(seen.first("b\0sig".into(), 22, 30).unwrap(), "given back");
    }

    #[test]
    fn the_connector_never_sees_credentials_or_the_signature() {
        let mut h = headers("1", "sha256=00");
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("cookie", "a=b".parse().unwrap());
        h.insert("x-shop-event", "product.updated".parse().unwrap());
        let names: Vec<String> = visible(&h).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"x-shop-event".to_string()));
        assert!(names.contains(&TIMESTAMP.to_string()));
        for hidden in ["authorization", "cookie", SIGNATURE] {
            assert!(!names.contains(&hidden.to_string()), "{hidden}");
        }
    }
}
