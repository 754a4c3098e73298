//! Fair share of a node's workers between backends.
//!
//! One backend's backlog must not starve another's: a hostile connector
//! that enqueues thousands of jobs that each run to their deadline would
//! otherwise hold every worker, and its rows would fill every claim. Two
//! rules, both local to the node:
//!
//! - **Running**: while jobs of other backends (or of none) wait in this
//!   node's buffer, a backend runs at most its share of the workers
//!   (`PoolConfig::backend_share`, default half), and never more than its
//!   own `jobs.workers` cap. Alone, it may use every worker. So another
//!   backend's job waits at most until one of the busy backend's jobs ends
//!   (about one deadline), never for the whole backlog.
//! - **Claiming**: a backend holding `claim_limit` jobs on this node (buffered
//!   or running) is left out of the next claim, so that the jobs of other
//!   backends, which sort after its backlog, are claimed at all.
//!
//! Jobs without a backend (operators', built-ins) are never limited: they
//! are not a connector's doing; they do count as "other work waiting".

use std::collections::HashMap;

/// Per-backend counts of this node's claimed jobs.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    running: HashMap<String, usize>,
    /// Buffered or running, until the outcome is recorded.
    held: HashMap<String, usize>,
    buffered: HashMap<String, usize>,
    /// Every buffered job, with a backend or not.
    buffered_total: usize,
}

fn add(map: &mut HashMap<String, usize>, key: &str) {
    *map.entry(key.to_string()).or_default() += 1;
}

/// Entries at zero are removed, so the maps hold only backends with jobs.
fn sub(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Shares {
    /// A job was claimed into the buffer.
    pub fn claimed(&mut self, backend: Option<&str>) {
        self.buffered_total += 1;
        if let Some(b) = backend {
            add(&mut self.held, b);
            add(&mut self.buffered, b);
        }
    }

    /// A buffered job started running.
    pub fn started(&mut self, backend: Option<&str>) {
        self.buffered_total = self.buffered_total.saturating_sub(1);
        if let Some(b) = backend {
            sub(&mut self.buffered, b);
            add(&mut self.running, b);
        }
    }

    /// A running job finished (its slot is free).
    pub fn finished(&mut self, backend: Option<&str>) {
        if let Some(b) = backend {
            sub(&mut self.running, b);
        }
    }

    /// A finished job's outcome is recorded (it no longer counts as held).
    pub fn recorded(&mut self, backend: Option<&str>) {
        if let Some(b) = backend {
            sub(&mut self.held, b);
        }
    }

    /// Whether a buffered job of `backend` may take a free worker now.
    /// `cap` is the backend's own `jobs.workers`, `share` its share while
    /// others wait, `all` the node's workers.
    pub fn may_start(
        &self,
        backend: Option<&str>,
        cap: Option<usize>,
        share: usize,
        all: usize,
    ) -> bool {
        let Some(b) = backend else {
            return true;
        };
        let running = self.running.get(b).copied().unwrap_or(0);
        let own_buffered = self.buffered.get(b).copied().unwrap_or(0);
        let others_wait = self.buffered_total > own_buffered;
        let limit = if others_wait { share } else { all };
        running < limit.min(cap.unwrap_or(usize::MAX))
    }

    /// Backends holding at least `limit` jobs: left out of the next claim.
    pub fn over_claimed(&self, limit: usize) -> Vec<String> {
        let mut over: Vec<String> = self
            .held
            .iter()
            .filter(|(_, n)| **n >= limit)
            .map(|(b, _)| b.clone())
            .collect();
        over.sort_unstable();
        over
    }

    /// How many buffered jobs belong to `backends`.
    pub fn buffered_of(&self, backends: &[String]) -> usize {
        backends
            .iter()
            .map(|b| self.buffered.get(b).copied().unwrap_or(0))
            .sum()
    }
}

/// A backend's share of `workers` while others wait: at least one.
pub(crate) fn share_of(workers: usize, fraction: f64) -> usize {
    ((workers as f64 * fraction).floor() as usize).clamp(1, workers.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_alone_uses_every_worker_but_only_its_share_while_others_wait() {
        let mut s = Shares::default();
        for _ in 0..10 {
            s.claimed(Some("hostile"));
        }
        for _ in 0..8 {
            assert!(s.may_start(Some("hostile"), None, 4, 8));
            s.started(Some("hostile"));
        }
        // Another backend's job arrives: the busy one is over its share.
        s.claimed(Some("shop"));
        assert!(!s.may_start(Some("hostile"), None, 4, 8));
        assert!(s.may_start(Some("shop"), None, 4, 8));
        // Operators' jobs are never held back, and count as others.
        s.claimed(None);
        assert!(s.may_start(None, None, 4, 8));
        // Its own cap applies even alone.
        let mut alone = Shares::default();
        alone.claimed(Some("a"));
        alone.started(Some("a"));
        alone.claimed(Some("a"));
        assert!(!alone.may_start(Some("a"), Some(1), 4, 8));
        assert!(alone.may_start(Some("a"), None, 4, 8));
    }

    #[test]
    fn a_backend_holding_its_claim_limit_is_left_out_and_counts_clear() {
        let mut s = Shares::default();
        for _ in 0..3 {
            s.claimed(Some("b"));
        }
        s.claimed(Some("a"));
        assert_eq!(s.over_claimed(3), vec!["b".to_string()]);
        assert_eq!(s.buffered_of(&["b".to_string()]), 3);
        s.started(Some("b"));
        s.finished(Some("b"));
        s.recorded(Some("b"));
        assert!(s.over_claimed(3).is_empty());
        assert_eq!(s.buffered_of(&["b".to_string()]), 2);
        assert_eq!(share_of(8, 0.5), 4);
        assert_eq!(share_of(1, 0.5), 1);
        assert_eq!(share_of(3, 0.1), 1);
    }
}
