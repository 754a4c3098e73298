//! When a failed try runs again: a pattern `{from_try: seconds}` (as
//! OCA's `retry_pattern`) or an exponential back-off with a cap, with
//! jitter so that a burst of failures does not come back as a burst. The
//! policy is chosen per backend, else per job function, else the default
//! (`junction.toml`'s `[retry]`, a backend's `retry`). A guest's
//! rate-limit reset is honoured as a minimum; a guest's own delay on an
//! ordinary retryable failure is bounded by the policy (a connector
//! cannot park its jobs for longer than the operator chose).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// The longest wait a configured policy may name (30 days).
const MAX_CONFIGURED_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// A retry policy as written in configuration: either `pattern`, a
/// `{from_try: seconds}` table (`{ "1" = 10, "5" = 60 }`), or an
/// exponential back-off from `base` to `cap` (milliseconds; defaults
/// 5,000 and 3,600,000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u64>,
}

impl RetryConfig {
    /// The policy it describes, or what is wrong with it.
    pub fn policy(&self) -> Result<RetryPolicy, String> {
        let too_long = |ms: u128| ms > MAX_CONFIGURED_WAIT.as_millis();
        match (&self.pattern, self.base, self.cap) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(
                "give either pattern or base/cap, not both: a pattern is a table of waits, base/cap an exponential back-off".to_string(),
            ),
            (Some(pattern), None, None) => {
                let mut entries = Vec::new();
                for (from, secs) in pattern {
                    let from: u32 = from.parse().map_err(|_| {
                        format!("pattern key {from:?} is not a try number; write {{ \"1\" = 10, \"5\" = 60 }} (from try: seconds)")
                    })?;
                    if too_long(u128::from(*secs) * 1000) {
                        return Err(format!(
                            "pattern wait of {secs} s from try {from} is longer than 30 days"
                        ));
                    }
                    entries.push((from, *secs));
                }
                RetryPolicy::pattern(&entries)
            }
            (None, base, cap) => {
                let RetryPolicy::Exponential {
                    base: default_base,
                    cap: default_cap,
                } = RetryPolicy::default()
                else {
                    unreachable!("the default policy is exponential")
                };
                let base = base.map_or(default_base, Duration::from_millis);
                let cap = cap.map_or(default_cap.max(base), Duration::from_millis);
                if base.is_zero() {
                    return Err("base must be at least 1 ms".to_string());
                }
                if cap < base {
                    return Err(format!(
                        "cap ({} ms) is shorter than base ({} ms)",
                        cap.as_millis(),
                        base.as_millis()
                    ));
                }
                if too_long(cap.as_millis()) {
                    return Err("cap is longer than 30 days".to_string());
                }
                Ok(RetryPolicy::Exponential { base, cap })
            }
        }
    }
}

/// How long a failed try waits before the next one. `after` is the delay
/// the failure named: a guest's rate-limit reset (`rate-limited`) is a
/// minimum over the policy's delay; a guest's own delay on a `retryable`
/// failure is bounded by it; any other named delay (contention the host
/// reports: a lock held elsewhere, a version conflict) is taken as is. A
/// failure that names none waits the policy's delay, or 200 ms when it
/// does not count as a try.
pub fn next_wait(
    policy: &RetryPolicy,
    tries: u32,
    unit: f64,
    kind: &str,
    after: Option<Duration>,
    count_try: bool,
) -> Duration {
    let policy_wait = || policy.delay(tries, unit);
    match after {
        Some(after) if kind == "rate-limited" => after.max(policy_wait()),
        Some(after) if kind == "retryable" => after.min(policy_wait()),
        Some(after) => after,
        None if count_try => policy_wait(),
        None => Duration::from_millis(200),
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

    #[test]
    fn configured_policies_parse_or_name_the_mistake() {
        let c: RetryConfig = toml::from_str("pattern = { \"1\" = 10, \"5\" = 60 }").unwrap();
        assert_eq!(
            c.policy().unwrap(),
            RetryPolicy::pattern(&[(1, 10), (5, 60)]).unwrap()
        );
        let c: RetryConfig = toml::from_str("base = 100\ncap = 2000").unwrap();
        assert_eq!(
            c.policy().unwrap(),
            RetryPolicy::Exponential {
                base: Duration::from_millis(100),
                cap: Duration::from_millis(2000)
            }
        );
        let c: RetryConfig = toml::from_str("base = 7200000").unwrap();
        assert!(
            matches!(c.policy().unwrap(), RetryPolicy::Exponential { base, cap } if cap == base),
            "a base above the default cap raises the cap to it"
        );
        for (text, names) in [
            ("pattern = { \"x\" = 1 }", "not a try number"),
            ("pattern = { \"0\" = 1 }", "counted from 1"),
            ("pattern = {}", "at least one"),
            ("pattern = { \"1\" = 1 }\nbase = 5", "not both"),
            ("base = 0", "at least 1 ms"),
            ("base = 500\ncap = 100", "shorter than base"),
            ("cap = 99999999999", "30 days"),
            ("pattern = { \"1\" = 99999999999 }", "30 days"),
        ] {
            let c: RetryConfig = toml::from_str(text).unwrap();
            let e = c.policy().unwrap_err();
            assert!(e.contains(names), "{text}: {e}");
        }
        assert!(toml::from_str::<RetryConfig>("bse = 5").is_err());
    }

    #[test]
    fn a_rate_limit_is_a_minimum_and_a_guest_delay_a_maximum() {
        let p = RetryPolicy::pattern(&[(1, 10)]).unwrap();
        let wait = |kind: &str, after: u64| {
            next_wait(&p, 1, 0.5, kind, Some(Duration::from_secs(after)), true)
        };
        assert_eq!(wait("rate-limited", 60), Duration::from_secs(60));
        assert_eq!(wait("rate-limited", 2), Duration::from_secs(10));
        assert_eq!(wait("retryable", 30), Duration::from_secs(10));
        assert_eq!(wait("retryable", 3), Duration::from_secs(3));
        assert_eq!(wait("locked", 1), Duration::from_secs(1));
        assert_eq!(
            next_wait(&p, 1, 0.5, "trap", None, true),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_wait(&p, 1, 0.5, "locked", None, false),
            Duration::from_millis(200)
        );
    }
}
