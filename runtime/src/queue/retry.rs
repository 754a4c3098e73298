//! When a failed try runs again: per job function, a pattern
//! `{from_try: seconds}` (as OCA's `retry_pattern`), or by default an
//! exponential back-off with a cap; with jitter so that a burst of failures
//! does not come back as a burst. A guest's `retryable` / `rate-limited`
//! delay, when longer, wins.

use std::collections::BTreeMap;
use std::time::Duration;

/// A retry pattern: from the given try on, wait that many seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryPolicy {
    Pattern(BTreeMap<u32, u64>),
    Exponential { base: Duration, cap: Duration },
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::Exponential {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Parse `{"1": 10, "5": 60, "10": 600}` style patterns.
    pub fn pattern(entries: &[(u32, u64)]) -> Result<RetryPolicy, String> {
        if entries.is_empty() {
            return Err("a retry pattern needs at least one {from_try: seconds} entry".to_string());
        }
        if entries.iter().any(|(t, _)| *t == 0) {
            return Err("tries are counted from 1 in a retry pattern".to_string());
        }
        Ok(RetryPolicy::Pattern(entries.iter().copied().collect()))
    }

    /// The delay before the next try, after `tries` tries have failed.
    /// `unit` in [0, 1) draws the jitter (±20 %).
    pub fn delay(&self, tries: u32, unit: f64) -> Duration {
        let base = match self {
            RetryPolicy::Pattern(p) => {
                let secs = p
                    .range(..=tries.max(1))
                    .next_back()
                    .map(|(_, s)| *s)
                    .unwrap_or_else(|| *p.values().next().expect("non-empty"));
                Duration::from_secs(secs)
            }
            RetryPolicy::Exponential { base, cap } => {
                let factor = 2u32.saturating_pow(tries.saturating_sub(1).min(30));
                base.saturating_mul(factor).min(*cap)
            }
        };
        let jitter = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_to_its_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.5), Duration::from_secs(5));
        assert_eq!(p.delay(2, 0.5), Duration::from_secs(10));
        assert_eq!(p.delay(4, 0.5), Duration::from_secs(40));
        assert_eq!(p.delay(50, 0.5), Duration::from_secs(3600));
    }

    #[test]
    fn patterns_apply_from_their_try() {
        let p = RetryPolicy::pattern(&[(1, 10), (5, 60), (10, 600)]).unwrap();
        assert_eq!(p.delay(1, 0.5), Duration::from_secs(10));
        assert_eq!(p.delay(4, 0.5), Duration::from_secs(10));
        assert_eq!(p.delay(5, 0.5), Duration::from_secs(60));
        assert_eq!(p.delay(12, 0.5), Duration::from_secs(600));
        assert!(RetryPolicy::pattern(&[]).is_err());
        assert!(RetryPolicy::pattern(&[(0, 1)]).is_err());
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(6));
    }
}
