//! Outbound HTTP through `wasi:http/outgoing-handler`.
//!
//! The host checks every request against the backend's allowlist and may
//! refuse it; the refusal reaches the guest as a `wasi:http` error code, which
//! this client keeps (see [`HttpError`]) so a connector can tell an operator
//! mistake (`config`) from a flaky network (`retryable`).

use std::fmt;

use crate::error::{DEFAULT_RETRY_SECONDS, Error};

use wasip2::http::types::ErrorCode;
#[cfg(target_arch = "wasm32")]
use wasip2::http::{
    outgoing_handler,
    types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme},
};
#[cfg(target_arch = "wasm32")]
use wasip2::io::streams::StreamError;

/// An HTTP request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Per-request timeouts in milliseconds; the host applies its own caps too.
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            connect_timeout_ms: None,
            first_byte_timeout_ms: None,
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// A response with its whole body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `Retry-After` in seconds from now (delta-seconds or an HTTP date).
    pub fn retry_after(&self) -> Option<u32> {
        let value = self.header("retry-after")?.trim();
        if let Ok(seconds) = value.parse::<u32>() {
            return Some(seconds);
        }
        let at = parse_http_date(value)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        Some(at.saturating_sub(now).clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// The response if it is a success (2xx), else the contract error its
    /// status means: 429 → rate-limited and 503 → retryable (after
    /// `Retry-After`), other 5xx → retryable, 404 → not-found, 401/403 →
    /// config (credentials), other 4xx → permanent. The message carries the
    /// backend's own (`{"message": ...}` bodies are read).
    pub fn error_for_status(self) -> Result<Response, Error> {
        let status = self.status;
        if (200..300).contains(&status) {
            return Ok(self);
        }
        let detail = self.message();
        let message = format!("HTTP {status}: {detail}");
        Err(match status {
            429 => Error::RateLimited {
                reset_seconds: self.retry_after().unwrap_or(60),
                message,
            },
            503 => Error::Retryable {
                after_seconds: self.retry_after().unwrap_or(DEFAULT_RETRY_SECONDS),
                message,
            },
            404 => Error::NotFound(message),
            401 | 403 => Error::Config(format!(
                "{message} (the backend refused the credentials the operator configured)"
            )),
            400..=499 => Error::Permanent(message),
            _ => Error::Retryable {
                after_seconds: DEFAULT_RETRY_SECONDS,
                message,
            },
        })
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The backend's error text: `message` of a JSON body (or `title`, as
    /// RFC 9457 problem details have it) with its `description` or
    /// `detail` when there is one — Tryton, for one, says which record and
    /// which rule in `description` and only the kind of error in
    /// `message` — else the body.
    fn message(&self) -> String {
        let from_json = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                let text = |k: &str| {
                    v.get(k)
                        .and_then(|m| m.as_str())
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                };
                let head = text("message").or_else(|| text("title"))?;
                Some(match text("description").or_else(|| text("detail")) {
                    Some(more) if more != head => format!("{head}: {more}"),
                    _ => head.to_string(),
                })
            });
        let mut text = from_json.unwrap_or_else(|| self.text());
        if text.len() > 300 {
            let mut cut = 300;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request failed before a complete response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed into scheme, host and path.
    InvalidUrl { url: String, reason: String },
    /// The host refused the request: the target is not on the backend's
    /// allowlist, or it resolved to an address the operator did not allow.
    Denied { host: String, code: String },
    /// A response or request body exceeded the host's size cap.
    TooLarge { host: String, code: String },
    /// Connecting, sending or reading failed or timed out; trying again may help.
    Transport { host: String, code: String },
}

impl HttpError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HttpError::Transport { .. })
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidUrl { url, reason } => write!(f, "invalid url {url:?}: {reason}"),
            HttpError::Denied { host, code } if internal(code) => write!(
                f,
                "request to {host} denied by the host ({code}): it is an internal address; \
                 ask the operator to list {host} in the backend's allow_internal"
            ),
            HttpError::Denied { host, code } => write!(
                f,
                "request to {host} denied by the host ({code}); ask the operator to allow it in the backend's allowlist"
            ),
            HttpError::TooLarge { host, code } => {
                write!(f, "request to {host} exceeded a size cap ({code})")
            }
            HttpError::Transport { host, code } => write!(f, "request to {host} failed ({code})"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Whether a denial is for an internal address (the operator's fix is
/// `allow_internal`, not `allow`).
fn internal(code: &str) -> bool {
    let code = code.to_ascii_lowercase().replace(['-', '_'], "");
    code.contains("destinationipprohibited") || code.contains("destinationipunroutable")
}

/// The parts of an absolute `http`/`https` URL that `wasi:http` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub https: bool,
    pub authority: String,
    pub path_with_query: String,
}

/// Split an absolute URL; no normalisation, the host does the checking.
pub fn split_url(url: &str) -> Result<UrlParts, HttpError> {
    let invalid = |reason: &str| HttpError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("expected scheme://host/path"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(invalid("only http and https are supported")),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(invalid("missing host"));
    }
    let path_with_query = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(UrlParts {
        https,
        authority: authority.to_string(),
        path_with_query,
    })
}

// Natively only the tests call it: the scripted transport answers there.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn classify(host: &str, code: &ErrorCode) -> HttpError {
    let host = host.to_string();
    let text = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable => HttpError::Denied { host, code: text },
        ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpResponseBodySize(_)
        | ErrorCode::HttpResponseHeaderSectionSize(_) => HttpError::TooLarge { host, code: text },
        _ => HttpError::Transport { host, code: text },
    }
}

#[cfg(target_arch = "wasm32")]
fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    }
}

/// Send a request and read the whole response. Redirects are returned as
/// they are: neither the host nor this client follows them. Natively (in
/// `cargo test`) the [`crate::testing::FakeHost`]'s scripted transport
/// answers.
pub fn send(request: &Request) -> Result<Response, HttpError> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::send(request);
    #[cfg(target_arch = "wasm32")]
    send_wasi(request)
}

#[cfg(target_arch = "wasm32")]
fn send_wasi(request: &Request) -> Result<Response, HttpError> {
    let parts = split_url(&request.url)?;
    let host = parts.authority.clone();
    let transport = |what: &str| HttpError::Transport {
        host: host.clone(),
        code: what.to_string(),
    };

    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| HttpError::InvalidUrl {
                url: request.url.clone(),
                reason: format!("header {name}: {e:?}"),
            })?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let set = outgoing
        .set_method(&method(&request.method))
        .and(outgoing.set_scheme(Some(if parts.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        })))
        .and(outgoing.set_authority(Some(&parts.authority)))
        .and(outgoing.set_path_with_query(Some(&parts.path_with_query)));
    if set.is_err() {
        return Err(HttpError::InvalidUrl {
            url: request.url.clone(),
            reason: "rejected by wasi:http".to_string(),
        });
    }
    let body = outgoing
        .body()
        .map_err(|_| transport("request body unavailable"))?;

    let options = RequestOptions::new();
    let ms_to_ns = |ms: u64| ms.saturating_mul(1_000_000);
    if let Some(ms) = request.connect_timeout_ms {
        let _ = options.set_connect_timeout(Some(ms_to_ns(ms)));
    }
    if let Some(ms) = request.first_byte_timeout_ms {
        let _ = options.set_first_byte_timeout(Some(ms_to_ns(ms)));
    }

    let pending =
        outgoing_handler::handle(outgoing, Some(options)).map_err(|e| classify(&host, &e))?;

    // A failed body write usually means the host refused the request (a
    // body over its cap); the response future then carries the reason, so
    // it is consulted before the bare write error.
    let mut write_error = None;
    if let Some(bytes) = &request.body {
        let stream = body
            .write()
            .map_err(|_| transport("request body stream unavailable"))?;
        for chunk in bytes.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                write_error = Some(stream_error(&host, e));
                break;
            }
        }
        drop(stream);
    }
    if write_error.is_none() {
        OutgoingBody::finish(body, None).map_err(|e| classify(&host, &e))?;
    } else {
        drop(body);
    }

    pending.subscribe().block();
    let incoming = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(classify(&host, &code)),
        Some(Err(())) | None => return Err(transport("response future lost")),
    };
    if let Some(e) = write_error {
        return Err(e);
    }

    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = incoming
        .consume()
        .map_err(|_| transport("response body unavailable"))?;
    let bytes = read_body(&host, &body)?;
    let trailers = IncomingBody::finish(body);
    trailers.subscribe().block();
    if let Some(Ok(Err(code))) = trailers.get() {
        return Err(classify(&host, &code));
    }
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

#[cfg(target_arch = "wasm32")]
fn read_body(host: &str, body: &IncomingBody) -> Result<Vec<u8>, HttpError> {
    let stream = body.stream().map_err(|_| HttpError::Transport {
        host: host.to_string(),
        code: "response body stream unavailable".to_string(),
    })?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(out),
            Err(e) => return Err(stream_error(host, e)),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn stream_error(host: &str, error: StreamError) -> HttpError {
    match error {
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
            Some(code) => classify(host, &code),
            // wasmtime-wasi-http 48 hands body errors to the guest as plain
            // I/O errors (no error-code), so a host cap that cut the body is
            // recognised by its text; otherwise it would look retryable.
            None => {
                let text = e.to_debug_string();
                if text.contains("body size") {
                    HttpError::TooLarge {
                        host: host.to_string(),
                        code: text,
                    }
                } else {
                    HttpError::Transport {
                        host: host.to_string(),
                        code: text,
                    }
                }
            }
        },
        StreamError::Closed => HttpError::Transport {
            host: host.to_string(),
            code: "stream closed".to_string(),
        },
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send(&Request::get(url))
}

/// Send a request with a JSON body (or none) and read a successful JSON
/// response; every failure is already the contract's error.
pub fn json<T: serde::de::DeserializeOwned>(
    mut request: Request,
    body: Option<&impl serde::Serialize>,
) -> Result<T, Error> {
    request = request.header("accept", "application/json");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?);
    }
    send(&request)?.error_for_status()?.json()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_become_contract_errors() {
        assert!(response(200, &[], "{}").error_for_status().is_ok());
        assert_eq!(
            response(429, &[("Retry-After", "17")], "")
                .error_for_status()
                .unwrap_err(),
            Error::RateLimited {
                reset_seconds: 17,
                message: "HTTP 429: ".into()
            }
        );
        assert!(matches!(
            response(503, &[], "busy").error_for_status(),
            Err(Error::Retryable {
                after_seconds: 30,
                ..
            })
        ));
        assert!(matches!(
            response(502, &[], "").error_for_status(),
            Err(Error::Retryable { .. })
        ));
        let missing = response(
            404,
            &[],
            r#"{"message":"The product that was requested doesn't exist."}"#,
        );
        assert_eq!(
            missing.error_for_status().unwrap_err(),
            Error::NotFound("HTTP 404: The product that was requested doesn't exist.".into())
        );
        assert!(
            matches!(response(401, &[], "").error_for_status(), Err(Error::Config(m)) if m.contains("credentials"))
        );
        assert!(
            matches!(response(422, &[], "bad sku").error_for_status(), Err(Error::Permanent(m)) if m.contains("bad sku"))
        );
        // Tryton's UserError: the kind in `message`, the particulars in
        // `description`; both reach the job's error.
        let tryton = r#"{"status": 400, "message": "A value is required for field \"Unit\".", "description": "in sale line 3"}"#;
        assert!(
            matches!(response(400, &[], tryton).error_for_status(), Err(Error::Permanent(m))
                if m.contains("field \"Unit\"") && m.ends_with(": in sale line 3"))
        );
        let problem = r#"{"title": "Out of stock", "detail": "sku MB-1 has 0 left"}"#;
        assert!(
            matches!(response(409, &[], problem).error_for_status(), Err(Error::Permanent(m))
                if m == "HTTP 409: Out of stock: sku MB-1 has 0 left")
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(
            response(429, &[("retry-after", " 5 ")], "").retry_after(),
            Some(5)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
        // A date in the past means: now.
        assert_eq!(
            response(429, &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")], "").retry_after(),
            Some(0)
        );
    }

    #[test]
    fn http_failures_map_to_the_contract() {
        let denied: Error = HttpError::Denied {
            host: "evil.example".into(),
            code: "HttpRequestDenied".into(),
        }
        .into();
        assert!(matches!(denied, Error::Config(m) if m.contains("evil.example")));
        let flaky: Error = HttpError::Transport {
            host: "h".into(),
            code: "ConnectionRefused".into(),
        }
        .into();
        assert!(matches!(
            flaky,
            Error::Retryable {
                after_seconds: 5,
                ..
            }
        ));
        let big: Error = HttpError::TooLarge {
            host: "h".into(),
            code: "HttpResponseBodySize".into(),
        }
        .into();
        assert!(matches!(big, Error::Permanent(_)));
    }

    #[test]
    fn splits_urls_for_wasi_http() {
        let p = split_url("https://Shop.example.com:8443/rest/V1/products?x=1").unwrap();
        assert!(p.https);
        assert_eq!(p.authority, "Shop.example.com:8443");
        assert_eq!(p.path_with_query, "/rest/V1/products?x=1");
        assert_eq!(
            split_url("http://h?q").unwrap().path_with_query,
            "/?q".to_string()
        );
        assert_eq!(split_url("http://h").unwrap().path_with_query, "/");
        assert!(matches!(
            split_url("ftp://h/x"),
            Err(HttpError::InvalidUrl { .. })
        ));
        assert!(matches!(
            split_url("http:///x"),
            Err(HttpError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn denied_and_transport_errors_are_told_apart() {
        assert!(!classify("h", &ErrorCode::HttpRequestDenied).is_retryable());
        assert!(classify("h", &ErrorCode::ConnectionRefused).is_retryable());
        let text = classify("evil.example", &ErrorCode::HttpRequestDenied).to_string();
        assert!(
            text.contains("evil.example") && text.contains("allowlist"),
            "{text}"
        );
        // An internal address is the operator's allow_internal to fix.
        let text = classify("10.0.0.5:80", &ErrorCode::DestinationIpProhibited).to_string();
        assert!(
            text.contains("internal address") && text.contains("allow_internal"),
            "{text}"
        );
    }
}
