//! What Junction's reference backends (`demo-shop`, `demo-crm`) share:
//! serving HTTP/1.1 on a listener, switchable fault injection, a
//! token-bucket rate limit that answers 429 with `Retry-After`, and JSON
//! replies. Each backend keeps its own routes, data and error bodies.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[cfg(feature = "tls")]
pub mod tls;
pub mod webhook;
pub use webhook::{WebhookSender, WebhookTarget};

pub type Body = Full<Bytes>;

/// Faults to inject, switchable while running.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Added to every response.
    pub latency: Duration,
    /// Share of requests (0.0–1.0) answered 503.
    pub error_rate: f64,
    /// Share of requests (0.0–1.0) whose connection is dropped unanswered.
    pub drop_rate: f64,
    /// The next this many creates are carried out but their answers are
    /// lost (the connection closes unanswered), as when the network or
    /// the caller dies between the backend's commit and its reply.
    pub lose_created: u32,
}

/// A JSON response.
pub fn reply(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// What every request passes before its route: injected faults, then the
/// rate limit.
#[derive(Debug)]
pub struct Gate {
    rate_limit: Option<u32>,
    faults: Mutex<Faults>,
    /// Tokens left and when they were counted.
    bucket: Mutex<(f64, Instant)>,
    counter: Mutex<u64>,
    /// Requests answered 429 so far.
    rate_limited: std::sync::atomic::AtomicU64,
}

/// Why the gate turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Injected 503.
    Unavailable,
    /// Over the rate limit: 429.
    RateLimited,
}

impl Gate {
    /// `rate_limit`: requests per second (also the burst) before 429s.
    pub fn new(rate_limit: Option<u32>) -> Gate {
        Gate {
            rate_limit,
            faults: Mutex::new(Faults::default()),
            bucket: Mutex::new((f64::from(rate_limit.unwrap_or(0)), Instant::now())),
            counter: Mutex::new(0),
            rate_limited: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Requests answered 429 (over the rate limit) so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Whether the answer to a create just carried out is to be lost
    /// (`Faults::lose_created`); counts it.
    pub fn lose_created(&self) -> bool {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if faults.lose_created == 0 {
            return false;
        }
        faults.lose_created -= 1;
        true
    }

    /// Deterministic "random" in [0, 1) per request, so fault rates hold
    /// on average without a random source.
    fn roll(&self) -> f64 {
        let mut n = self.counter.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Let a request through (`Ok(None)`), answer it with `refuse`'s
    /// response (which gets `Retry-After: 1`), or drop its connection
    /// (`Err`: hyper closes the connection without an answer).
    pub async fn admit(
        &self,
        refuse: impl FnOnce(Refusal) -> Response<Body>,
    ) -> Result<Option<Response<Body>>, std::io::Error> {
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        if faults.drop_rate > 0.0 && self.roll() < faults.drop_rate {
            return Err(std::io::Error::other("fault injection: dropped"));
        }
        let refusal = if faults.error_rate > 0.0 && self.roll() < faults.error_rate {
            Some(Refusal::Unavailable)
        } else {
            self.rate_limit.and_then(|limit| {
                let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                let elapsed = bucket.1.elapsed().as_secs_f64();
                bucket.0 = (bucket.0 + elapsed * f64::from(limit)).min(f64::from(limit));
                bucket.1 = Instant::now();
                if bucket.0 < 1.0 {
                    Some(Refusal::RateLimited)
                } else {
                    bucket.0 -= 1.0;
                    None
                }
            })
        };
        if refusal == Some(Refusal::RateLimited) {
            self.rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(refusal.map(|r| {
            let mut response = refuse(r);
            response
                .headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            response
        }))
    }
}

/// Serve HTTP/1.1 connections from `listener` with `handle`, each on a
/// task of its own, until the runtime ends.
pub fn spawn_server<F, Fut>(listener: tokio::net::TcpListener, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, std::io::Error>> + Send + 'static,
{
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// One HTTP/1.1 exchange over a fresh connection, for the backends' own
/// tests: status, lower-cased header lines and body; `None` when the
/// connection was dropped unanswered.
pub async fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, Vec<String>, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines.map(|l| l.to_lowercase()).collect();
    Some((status, headers, body.to_string()))
}

/// [`exchange`] with a JSON body and answer, and a bearer token if given.
pub async fn exchange_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Vec<String>, Value)> {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, headers, text) = exchange(addr, method, path, &headers, &body).await?;
    Some((
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    ))
}

/// Year, month, day, hour, minute, second (UTC) of Unix seconds.
pub fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Unix seconds of a UTC civil time (the inverse of [`civil`]).
pub fn unix_secs(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A small deterministic generator, so a seed gives the same data set.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(784_111_777), (1994, 11, 6, 8, 49, 37));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(-1), (1969, 12, 31, 23, 59, 59));
        for t in [0, 784_111_777, 951_782_400, -1, 1_796_000_000] {
            let (y, m, d, hh, mm, ss) = civil(t);
            assert_eq!(unix_secs(y, m, d, hh, mm, ss), t);
        }
    }
}
