//! Outgoing webhooks, as SaaS backends send them: each change is POSTed to
//! the configured URL as JSON, signed the way Junction's intake checks
//! (`x-junction-timestamp`: Unix seconds, `x-junction-signature`:
//! `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`), in the
//! background, in order, and retried a few times when the receiver does
//! not answer 2xx — a backend never waits on its receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

/// Where a backend sends its webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// `http://HOST:PORT/PATH` (plain HTTP: the reference backends run on
    /// loopback).
    pub url: String,
    pub secret: String,
}

/// What a sender did, for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Calls answered 2xx.
    pub delivered: u64,
    /// Calls given up after their tries.
    pub failed: u64,
    /// The last status a call got (0: no answer).
    pub last_status: u16,
}

/// Sends one backend's webhooks, in order, from a background task.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    queue: mpsc::UnboundedSender<Value>,
    sent: Arc<Mutex<Sent>>,
}

/// The signature of `body` sent at `timestamp` with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn split(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let authority = authority.replace("localhost", "127.0.0.1");
    Some((authority.parse().ok()?, path))
}

impl WebhookSender {
    /// Start sending to `target` on the current tokio runtime.
    pub fn start(target: WebhookTarget) -> WebhookSender {
        let (queue, mut bodies) = mpsc::unbounded_channel::<Value>();
        let sent = Arc::new(Mutex::new(Sent::default()));
        let record = sent.clone();
        tokio::spawn(async move {
            let Some((addr, path)) = split(&target.url) else {
                return;
            };
            while let Some(body) = bodies.recv().await {
                let text = body.to_string();
                let mut status = 0;
                for attempt in 0..5u64 {
                    // Signed per try: a retry is a new call, not a replay.
                    let ts = super::now_secs();
                    let signature = sign(&target.secret, ts, &text);
                    let ts = ts.to_string();
                    let headers = [
                        ("Content-Type", "application/json"),
                        ("x-junction-timestamp", ts.as_str()),
                        ("x-junction-signature", signature.as_str()),
                    ];
                    status = super::exchange(addr, "POST", &path, &headers, &text)
                        .await
                        .map_or(0, |(s, _, _)| s);
                    if (200..300).contains(&status) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1))).await;
                }
                let mut s = record.lock().unwrap_or_else(|p| p.into_inner());
                s.last_status = status;
                if (200..300).contains(&status) {
                    s.delivered += 1;
                } else {
                    s.failed += 1;
                }
            }
        });
        WebhookSender { queue, sent }
    }

    /// Send `body` (after those already waiting).
    pub fn send(&self, body: Value) {
        let _ = self.queue.send(body);
    }

    pub fn sent(&self) -> Sent {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        let (addr, path) = split("http://127.0.0.1:8080/hooks/shop/changes").unwrap();
        assert_eq!(addr.port(), 8080);
        assert_eq!(path, "/hooks/shop/changes");
        assert!(split("https://x/y").is_none());
        assert!(sign("k", 1, "{}").starts_with("sha256="));
    }
}
