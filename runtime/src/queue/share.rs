//! Fair share of a node's workers between backends.
//!
//! One backend's backlog must not starve another's: a hostile connector
//! that enqueues thousands of jobs that each run to their deadline would
//! otherwise hold every worker, and its rows would fill every claim. Two
//! rules, both local to the node:
//!
//! - **Running**: free workers go first to jobs whose backend runs less
//!   than its share of the workers (`PoolConfig::backend_share`, default
//!   half); only workers that no such job can take (none waits, or its
//!   channel is full) go to a backend over its share. A backend never
//!   runs more than its own `jobs.workers`. Alone, it may use every
//!   worker, and a job that cannot start anyway (its channel is full)
//!   holds no worker back. So another backend's job waits at most until one
//!   of the busy backend's jobs ends (about one deadline), never for the
//!   whole backlog.
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
        if let Some(b) = backend {
            add(&mut self.held, b);
            add(&mut self.buffered, b);
        }
    }

    /// A buffered job started running.
    pub fn started(&mut self, backend: Option<&str>) {
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

    /// Whether a buffered job of `backend` may take a free worker while
    /// its backend runs fewer than `limit` jobs (the share in the first
    /// pass over the buffer, every worker in the second) and fewer than
    /// `cap`, its own `jobs.workers`.
    pub fn may_start(&self, backend: Option<&str>, cap: Option<usize>, limit: usize) -> bool {
        let Some(b) = backend else {
            return true;
        };
        let running = self.running.get(b).copied().unwrap_or(0);
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
    fn a_backend_over_its_share_waits_in_the_first_pass_only() {
        let mut s = Shares::default();
        for _ in 0..10 {
            s.claimed(Some("hostile"));
        }
        for _ in 0..4 {
            assert!(s.may_start(Some("hostile"), None, 4));
            s.started(Some("hostile"));
        }
        // Over its share: only the second pass (every worker) lets it on.
        assert!(!s.may_start(Some("hostile"), None, 4));
        assert!(s.may_start(Some("hostile"), None, 8));
        s.claimed(Some("shop"));
        assert!(s.may_start(Some("shop"), None, 4));
        // Operators' jobs are never held back.
        assert!(s.may_start(None, None, 0));
        // Its own cap applies in both passes.
        assert!(!s.may_start(Some("hostile"), Some(2), 8));
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
