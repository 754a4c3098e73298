//! The audit trail of a call's outbound HTTP: one entry per request, with
//! what was asked, what happened and how long it took. Query values, headers
//! and bodies are never recorded, so secrets cannot leak into it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::allowlist::Target;

pub use crate::storage::types::AuditEntry;

/// How many entries one call keeps; a guest looping on requests cannot grow
/// the host's memory without bound.
const MAX_ENTRIES: usize = 1000;
/// And how many bytes of text they hold together.
const MAX_BYTES: usize = 1024 * 1024;
/// Longest path (or unparsed host) kept in an entry.
const MAX_FIELD: usize = 1024;
/// Longest denial or failure reason kept in an entry.
const MAX_REASON: usize = 512;

/// A call's audit entries, shared with the request futures it spawned.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    inner: Arc<Mutex<AuditInner>>,
}

#[derive(Debug, Default)]
struct AuditInner {
    entries: Vec<AuditEntry>,
    bytes: usize,
    dropped: u64,
}

fn size(e: &AuditEntry) -> usize {
    64 + e.method.len()
        + e.host.len()
        + e.path.len()
        + e.denied.as_ref().map_or(0, String::len)
        + e.error.as_ref().map_or(0, String::len)
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
            method: crate::text::truncate(method, 32),
            scheme: target.map(|t| t.scheme.to_string()).unwrap_or_default(),
            host: target
                .map(|t| t.host.to_string())
                .unwrap_or_else(|| crate::text::truncate(host, MAX_FIELD)),
            port: target.map(|t| t.port).unwrap_or(0),
            path: crate::text::truncate(&redact(uri), MAX_FIELD),
            status: None,
            denied: None,
            error: None,
            request_bytes: 0,
            response_bytes: 0,
            duration_ms: 0,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Room for the entry as it may grow: one reason (denied or failed)
        // may be added later.
        // (a cut text keeps a short note of what was cut: 64 bytes spare).
        let cost = size(&entry) + MAX_REASON + 64;
        let index = if inner.entries.len() < MAX_ENTRIES && inner.bytes + cost <= MAX_BYTES {
            inner.bytes += cost;
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

    /// The entries so far, and how many were dropped over the cap. When
    /// any were, a last entry says so (method `-`), so that wherever the
    /// audit is stored and shown, the gap shows too.
    pub fn snapshot(&self) -> (Vec<AuditEntry>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = inner.entries.clone();
        if inner.dropped > 0 {
            entries.push(AuditEntry {
                method: "-".into(),
                scheme: String::new(),
                host: String::new(),
                port: 0,
                path: String::new(),
                status: None,
                denied: Some(format!(
                    "{} more requests were not recorded: one call's audit keeps at most {MAX_ENTRIES} entries and {} KiB",
                    inner.dropped,
                    MAX_BYTES / 1024
                )),
                error: None,
                request_bytes: 0,
                response_bytes: 0,
                duration_ms: 0,
            });
        }
        (entries, inner.dropped)
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
        self.update(|e| e.denied = Some(crate::text::truncate(&reason, MAX_REASON)));
    }

    pub fn failed(&self, reason: String) {
        self.update(|e| {
            // One reason per entry: a denied request has no other failure.
            if e.error.is_none() && e.denied.is_none() {
                e.error = Some(crate::text::truncate(&reason, MAX_REASON))
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
        assert_eq!(entries.len(), MAX_ENTRIES + 1, "the entries and the gap");
        assert_eq!(dropped, 5);
        let gap = entries.last().unwrap().denied.clone().unwrap();
        assert!(
            gap.starts_with("5 more requests were not recorded"),
            "{gap}"
        );
    }

    #[test]
    fn entries_are_capped_by_bytes_too() {
        let log = AuditLog::default();
        let long = format!("http://h/{}", "p".repeat(60_000));
        let uri: http::Uri = long.parse().unwrap();
        for _ in 0..MAX_ENTRIES {
            log.start("GET", None, "h", &uri)
                .denied("x".repeat(100_000));
        }
        let (entries, dropped) = log.snapshot();
        let recorded = &entries[..entries.len() - 1];
        let total: usize = recorded.iter().map(size).sum();
        assert!(total <= MAX_BYTES, "{total} bytes kept");
        assert!(dropped > 0);
        assert!(entries[0].path.len() < MAX_FIELD + 64);
        assert!(entries[0].denied.as_ref().unwrap().len() < MAX_REASON + 64);
    }
}
