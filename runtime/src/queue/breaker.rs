//! Circuit breakers per backend: when a backend's jobs keep failing at
//! the transport (refused or dropped connections, timeouts) or with 5xx
//! answers, its breaker opens and its jobs wait instead of spending their
//! tries — a backend down for an hour fails nothing.
//!
//! Lifecycle: *closed* — each node counts the backend's consecutive
//! outage failures (any other outcome, a success or an answer that is not
//! an outage, resets the count); at `failures` the breaker *opens* in the
//! database, so every node stops claiming the backend's jobs; the try that
//! opened it and any try failing while it is open do not count. After
//! `cool_down` the queue's maintenance enqueues one probe job
//! (`junction.probe-backend`, which runs the backend's `check`): success
//! closes the breaker and the jobs run again; failure keeps it open for
//! twice as long, up to `max_cool_down`. Only jobs that fail for reasons
//! other than the outage spend tries, so a record the backend keeps
//! refusing with a 500 still fails in the end (each probe that succeeds
//! lets its next tries count).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::OpenBreaker;
use crate::storage::types::AuditEntry;

/// The job function that probes an open breaker (its handler comes with
/// the synchronizer, which can call a backend's `check`).
pub const PROBE: &str = "junction.probe-backend";

/// A backend's breaker settings (`breaker = { failures = 5, cool_down =
/// 30000, max_cool_down = 600000 }`; milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive outage failures that open the breaker; 0 turns it off.
    pub failures: u32,
    /// Wait before the first probe.
    #[serde(with = "crate::limits::millis")]
    #[schema(value_type = u64)]
    pub cool_down: Duration,
    /// The longest wait between probes.
    #[serde(with = "crate::limits::millis")]
    #[schema(value_type = u64)]
    pub max_cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(600),
        }
    }
}

impl BreakerConfig {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.failures > 1000 {
            return Err("failures must be at most 1000 (0 turns the breaker off)".into());
        }
        if self.cool_down < Duration::from_millis(10) {
            return Err("cool_down must be at least 10 (ms)".into());
        }
        if self.max_cool_down < self.cool_down {
            return Err(format!(
                "max_cool_down ({} ms) is shorter than cool_down ({} ms)",
                self.max_cool_down.as_millis(),
                self.cool_down.as_millis()
            ));
        }
        if self.max_cool_down > Duration::from_secs(24 * 3600) {
            return Err("max_cool_down must be at most 86400000 (a day)".into());
        }
        Ok(())
    }
}

/// The longest breaker reason stored: it quotes a guest-chosen request
/// path or a guest's error text.
pub const MAX_REASON: usize = 512;

/// `reason` made safe to store and show: hazards escaped, at most
/// [`MAX_REASON`] bytes.
pub fn reason(text: &str) -> String {
    crate::text::truncate(&crate::text::clean(text), MAX_REASON)
}

/// Whether a failed try shows the backend out of reach, from the outbound
/// requests it made: the last one failed at the transport or was answered
/// 5xx. A description of it for the breaker's reason, or `None`.
/// Requests the host refused (`denied`) say nothing about the backend.
pub fn outage(audit: &[AuditEntry]) -> Option<String> {
    let last = audit.iter().rev().find(|e| e.denied.is_none())?;
    let what = format!(
        "{} {}://{}:{}{}",
        last.method, last.scheme, last.host, last.port, last.path
    );
    match (last.status, &last.error) {
        (Some(status), _) if (500..=599).contains(&status) => {
            Some(format!("{what} answered {status}"))
        }
        (None, Some(error)) => Some(format!("{what} failed: {error}")),
        _ => None,
    }
}

/// What a finished try means for its backend's breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do (no backend, breakers off, or not an outage).
    Healthy,
    /// An outage failure below the threshold: counts as usual.
    Counting,
    /// The try opened the breaker (store it) or failed while it is open:
    /// it must not count.
    Open { opened: bool },
}

/// This node's view of every backend's breaker.
#[derive(Debug, Default)]
pub struct Breakers {
    /// Consecutive outage failures per backend seen by this node.
    streaks: Mutex<HashMap<String, u32>>,
    /// Settings per backend (from its configuration).
    configs: RwLock<HashMap<String, BreakerConfig>>,
    /// Backends whose breaker is open, as last read from the database or
    /// opened by this node.
    open: RwLock<HashSet<String>>,
}

impl Breakers {
    pub fn set_config(&self, backend: &str, config: BreakerConfig) {
        self.configs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(backend.to_string(), config);
    }

    pub fn config(&self, backend: &str) -> BreakerConfig {
        self.configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(backend)
            .copied()
            .unwrap_or_default()
    }

    /// Backends whose jobs must not be claimed now.
    pub fn held(&self) -> Vec<String> {
        let mut held: Vec<String> = self
            .open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        held.sort();
        held
    }

    /// Whether any backend's breaker is open (the pool's fast path).
    pub fn any_open(&self) -> bool {
        !self
            .open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    pub fn is_open(&self, backend: &str) -> bool {
        self.open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(backend)
    }

    /// The open breakers as the database has them now.
    pub fn refresh(&self, stored: &[OpenBreaker]) {
        let open: HashSet<String> = stored.iter().map(|b| b.backend.clone()).collect();
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        // A breaker that closed starts counting afresh.
        for backend in self.open.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if !open.contains(backend) {
                streaks.remove(backend);
            }
        }
        *self.open.write().unwrap_or_else(|p| p.into_inner()) = open;
    }

    /// Record a finished try of one of `backend`'s jobs: `outage` when it
    /// failed as an outage, `succeeded` when it did not fail.
    pub fn record(&self, backend: &str, outage: bool) -> Verdict {
        let config = self.config(backend);
        if config.failures == 0 {
            return Verdict::Healthy;
        }
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        if !outage {
            streaks.remove(backend);
            return Verdict::Healthy;
        }
        if self.is_open(backend) {
            return Verdict::Open { opened: false };
        }
        let streak = streaks.entry(backend.to_string()).or_default();
        *streak += 1;
        if *streak >= config.failures {
            *streak = 0;
            self.open
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(backend.to_string());
            Verdict::Open { opened: true }
        } else {
            Verdict::Counting
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: Option<u16>, error: Option<&str>, denied: Option<&str>) -> AuditEntry {
        AuditEntry {
            method: "GET".into(),
            scheme: "https".into(),
            host: "shop.example.com".into(),
            port: 443,
            path: "/rest/V1/products".into(),
            status,
            denied: denied.map(str::to_string),
            error: error.map(str::to_string),
            request_bytes: 0,
            response_bytes: 0,
            duration_ms: 1,
        }
    }

    #[test]
    fn only_transport_failures_and_5xx_are_outages() {
        assert!(
            outage(&[entry(Some(503), None, None)])
                .unwrap()
                .contains("answered 503")
        );
        assert!(
            outage(&[entry(None, Some("connection refused"), None)])
                .unwrap()
                .contains("connection refused")
        );
        assert_eq!(outage(&[entry(Some(404), None, None)]), None);
        assert_eq!(outage(&[entry(Some(429), None, None)]), None);
        assert_eq!(outage(&[]), None, "no request, no outage");
        assert_eq!(
            outage(&[entry(Some(503), None, None), entry(Some(200), None, None)]),
            None,
            "the backend answered last"
        );
        assert_eq!(
            outage(&[entry(None, None, Some("host not allowed"))]),
            None,
            "the host's refusal says nothing about the backend"
        );
    }

    #[test]
    fn the_breaker_opens_at_its_threshold_and_any_answer_resets_the_count() {
        let b = Breakers::default();
        b.set_config(
            "shop",
            BreakerConfig {
                failures: 3,
                ..BreakerConfig::default()
            },
        );
        assert_eq!(b.record("shop", true), Verdict::Counting);
        assert_eq!(b.record("shop", true), Verdict::Counting);
        assert_eq!(
            b.record("shop", false),
            Verdict::Healthy,
            "an answer resets"
        );
        assert_eq!(b.record("shop", true), Verdict::Counting);
        assert_eq!(b.record("shop", true), Verdict::Counting);
        assert_eq!(b.record("shop", true), Verdict::Open { opened: true });
        assert_eq!(b.held(), ["shop"]);
        assert_eq!(b.record("shop", true), Verdict::Open { opened: false });
        assert_eq!(b.record("crm", true), Verdict::Counting, "per backend");
        b.refresh(&[]);
        assert!(b.held().is_empty(), "closed in the database: closed here");
        assert_eq!(b.record("shop", true), Verdict::Counting);
    }

    #[test]
    fn a_breaker_turned_off_never_opens() {
        let b = Breakers::default();
        b.set_config(
            "shop",
            BreakerConfig {
                failures: 0,
                ..BreakerConfig::default()
            },
        );
        for _ in 0..100 {
            assert_eq!(b.record("shop", true), Verdict::Healthy);
        }
    }

    #[test]
    fn a_reason_is_cleaned_and_bounded() {
        let hostile = format!("\u{1b}[2J{}", "x".repeat(10_000));
        let r = reason(&hostile);
        assert!(r.len() <= MAX_REASON + 64, "{}", r.len());
        assert!(!r.contains('\u{1b}'));
    }

    #[test]
    fn settings_are_checked() {
        assert!(BreakerConfig::default().check().is_ok());
        let bad = BreakerConfig {
            cool_down: Duration::from_secs(60),
            max_cool_down: Duration::from_secs(30),
            ..BreakerConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("shorter than cool_down"));
    }
}
