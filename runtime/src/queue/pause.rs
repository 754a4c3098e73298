//! Pausing a backend or a channel: an operator's stop that every node
//! honours (the pauses live in the database, read with the breakers on the
//! maintenance's health tick and at once on the node that took them). A
//! paused backend's jobs, or a paused channel's and its subtree's, stay
//! pending: no claim takes them and no buffered one starts; running ones
//! finish. Resuming makes them due as they were.

use std::collections::HashSet;
use std::sync::RwLock;

/// What is paused, as this node last read it.
#[derive(Debug, Default)]
pub struct Pauses {
    backends: RwLock<HashSet<String>>,
    channels: RwLock<HashSet<String>>,
}

/// What can be paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    Backend,
    Channel,
}

impl PauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseKind::Backend => "backend",
            PauseKind::Channel => "channel",
        }
    }
}

impl Pauses {
    /// Replace the view with `stored` (kind, name, since).
    pub fn refresh(&self, stored: &[(String, String, i64)]) -> bool {
        let pick = |kind: &str| -> HashSet<String> {
            stored
                .iter()
                .filter(|(k, _, _)| k == kind)
                .map(|(_, n, _)| n.clone())
                .collect()
        };
        let (backends, channels) = (pick("backend"), pick("channel"));
        let mut b = self.backends.write().unwrap_or_else(|p| p.into_inner());
        let mut c = self.channels.write().unwrap_or_else(|p| p.into_inner());
        let changed = *b != backends || *c != channels;
        *b = backends;
        *c = channels;
        changed
    }

    /// Whether anything is paused (the pool's fast path).
    pub fn any(&self) -> bool {
        !self
            .backends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            || !self
                .channels
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
    }

    /// Paused backends, sorted.
    pub fn backends(&self) -> Vec<String> {
        sorted(&self.backends)
    }

    /// Paused channels, sorted.
    pub fn channels(&self) -> Vec<String> {
        sorted(&self.channels)
    }

    /// Whether a job of `backend` in `channel` must wait: its backend, its
    /// channel or one of the channel's ancestors is paused.
    pub fn holds(&self, backend: Option<&str>, channel: &str) -> bool {
        if backend.is_some_and(|b| {
            self.backends
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(b)
        }) {
            return true;
        }
        let channels = self.channels.read().unwrap_or_else(|p| p.into_inner());
        if channels.is_empty() {
            return false;
        }
        let mut name = channel;
        loop {
            if channels.contains(name) {
                return true;
            }
            match name.rfind('.') {
                Some(i) => name = &name[..i],
                None => return false,
            }
        }
    }
}

fn sorted(set: &RwLock<HashSet<String>>) -> Vec<String> {
    let mut v: Vec<String> = set
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_channel_holds_its_subtree_and_a_paused_backend_its_jobs() {
        let p = Pauses::default();
        assert!(p.refresh(&[
            ("channel".into(), "root.shop".into(), 1),
            ("backend".into(), "crm".into(), 1),
        ]));
        assert!(p.holds(None, "root.shop"));
        assert!(p.holds(None, "root.shop.orders"));
        assert!(!p.holds(None, "root.shopping"), "a label, not a prefix");
        assert!(!p.holds(None, "root"));
        assert!(p.holds(Some("crm"), "root"));
        assert!(!p.holds(Some("shop"), "root"));
        assert!(!p.refresh(&[
            ("backend".into(), "crm".into(), 2),
            ("channel".into(), "root.shop".into(), 2),
        ]));
        assert!(p.refresh(&[]));
        assert!(!p.holds(Some("crm"), "root.shop"));
    }
}
