//! The audit trail of a call's outbound HTTP: one entry per request, with
//! what was asked, what happened and how long it took. Query values, headers
//! and bodies are never recorded, so secrets cannot leak into it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::allowlist::Target;

/// One outbound request as the sandbox saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// The path, with query parameter names but not their values.
    pub path: String,
    pub status: Option<u16>,
    /// Why the host refused the request, if it did.
    pub denied: Option<String>,
    /// Why the exchange failed after it was allowed, if it did.
    pub error: Option<String>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub duration_ms: u64,
}

/// How many entries one call keeps; a guest looping on requests cannot grow
/// the host's memory without bound.
const MAX_ENTRIES: usize = 1000;

/// A call's audit entries, shared with the request futures it spawned.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    inner: Arc<Mutex<AuditInner>>,
}

#[derive(Debug, Default)]
struct AuditInner {
    entries: Vec<AuditEntry>,
    dropped: u64,
}

/// A handle to one entry in progress.
#[derive(Debug, Clone)]
pub struct AuditHandle {
    log: AuditLog,
    index: Option<usize>,
    started: Instant,
}

impl AuditLog {
    /// Open an entry for a request to `target` (or, when the target could
    /// not be parsed, to the raw text in `host`).
    pub fn start(
        &self,
        method: &str,
        target: Option<&Target>,
        host: &str,
        uri: &http::Uri,
    ) -> AuditHandle {
        let entry = AuditEntry {
            method: method.to_string(),
            scheme: target.map(|t| t.scheme.to_string()).unwrap_or_default(),
            host: target
                .map(|t| t.host.to_string())
                .unwrap_or_else(|| host.to_string()),
            port: target.map(|t| t.port).unwrap_or(0),
            path: redact(uri),
            status: None,
            denied: None,
            error: None,
            request_bytes: 0,
            response_bytes: 0,
            duration_ms: 0,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let index = if inner.entries.len() < MAX_ENTRIES {
            inner.entries.push(entry);
            Some(inner.entries.len() - 1)
        } else {
            inner.dropped += 1;
            None
        };
        AuditHandle {
            log: self.clone(),
            index,
            started: Instant::now(),
        }
    }

    /// The entries so far, and how many were dropped over the cap.
    pub fn snapshot(&self) -> (Vec<AuditEntry>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.entries.clone(), inner.dropped)
    }
}

impl AuditHandle {
    fn update(&self, f: impl FnOnce(&mut AuditEntry)) {
        if let Some(i) = self.index {
            let mut inner = self.log.inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = inner.entries.get_mut(i) {
                f(entry);
                entry.duration_ms = self.started.elapsed().as_millis() as u64;
            }
        }
    }

    pub fn denied(&self, reason: String) {
        self.update(|e| e.denied = Some(reason));
    }

    pub fn failed(&self, reason: String) {
        self.update(|e| {
            if e.error.is_none() {
                e.error = Some(reason)
            }
        });
    }

    pub fn status(&self, status: u16) {
        self.update(|e| e.status = Some(status));
    }

    pub fn request_bytes(&self, n: u64) {
        self.update(|e| e.request_bytes = n);
    }

    pub fn response_bytes(&self, n: u64) {
        self.update(|e| e.response_bytes = n);
    }
}

/// `path?name&other` — query values can carry tokens, so only names stay.
fn redact(uri: &http::Uri) -> String {
    let path = uri.path();
    match uri.query() {
        None => path.to_string(),
        Some(q) => {
            let names: Vec<&str> = q
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
                .collect();
            format!("{path}?{}", names.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_dropped() {
        let uri: http::Uri = "http://h/p?token=abc&page=2&flag".parse().unwrap();
        assert_eq!(redact(&uri), "/p?token&page&flag");
    }

    #[test]
    fn entries_are_capped() {
        let log = AuditLog::default();
        let uri: http::Uri = "http://h/".parse().unwrap();
        for _ in 0..MAX_ENTRIES + 5 {
            log.start("GET", None, "h", &uri).status(200);
        }
        let (entries, dropped) = log.snapshot();
        assert_eq!(entries.len(), MAX_ENTRIES);
        assert_eq!(dropped, 5);
    }
}
