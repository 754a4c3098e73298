//! Channels: named, hierarchical capacities for running jobs.
//!
//! Syntax, one entry per comma: `name:capacity[:option]...`, for example
//! `root:4, root.shop:2, root.shop.orders:1:sequential, root.crm:2:throttle=500ms`.
//! A job in channel `root.shop.orders` counts against `root.shop.orders`,
//! `root.shop` and `root`; `root:4` caps everything at 4. A job in a
//! channel nobody configured counts against its nearest configured parent.
//! Options: `sequential` (capacity 1, and a failed job stops the channel
//! until an operator requeues, cancels or marks it done), `throttle=DUR`
//! (at least DUR between two starts; `ms`, `s` or `m`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// One configured channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub capacity: u32,
    pub sequential: bool,
    pub throttle: Option<Duration>,
}

/// A bad channel configuration, naming the entry and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel config entry {entry:?} is invalid: {reason}")]
pub struct ChannelConfigError {
    pub entry: String,
    pub reason: String,
}

/// The whole channel tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    channels: BTreeMap<String, ChannelSpec>,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig::parse("root:4").expect("the default is valid")
    }
}

/// Longest channel name accepted.
const MAX_NAME: usize = 200;

/// Check a channel name: dot-separated labels starting with `root`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!("channel names are at most {MAX_NAME} bytes"));
    }
    if name != "root" && !name.starts_with("root.") {
        return Err("channel names start with `root`, e.g. root.shop".to_string());
    }
    if name.split('.').any(|label| {
        label.is_empty()
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(
            "each part of a channel name is letters, digits, '_' or '-', separated by dots"
                .to_string(),
        );
    }
    Ok(())
}

impl ChannelConfig {
    pub fn parse(text: &str) -> Result<ChannelConfig, ChannelConfigError> {
        let mut channels = BTreeMap::new();
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let bad = |reason: String| ChannelConfigError {
                entry: entry.to_string(),
                reason,
            };
            let mut parts = entry.split(':').map(str::trim);
            let name = parts.next().unwrap_or_default();
            check_name(name).map_err(bad)?;
            let capacity_text = parts
                .next()
                .ok_or_else(|| bad("expected name:capacity, e.g. root.shop:2".to_string()))?;
            let capacity: u32 = capacity_text
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    bad(format!(
                        "capacity {capacity_text:?} is not a whole number above 0"
                    ))
                })?;
            let mut spec = ChannelSpec {
                capacity,
                sequential: false,
                throttle: None,
            };
            for option in parts {
                match option.split_once('=') {
                    None if option == "sequential" => spec.sequential = true,
                    Some(("throttle", value)) => {
                        spec.throttle = Some(parse_duration(value).map_err(bad)?);
                    }
                    _ => {
                        return Err(bad(format!(
                            "unknown option {option:?}; options are `sequential` and `throttle=DURATION`"
                        )));
                    }
                }
            }
            if spec.sequential && spec.capacity != 1 {
                return Err(bad("a sequential channel has capacity 1".to_string()));
            }
            if channels.insert(name.to_string(), spec).is_some() {
                return Err(bad(format!("channel {name} is configured twice")));
            }
        }
        if !channels.contains_key("root") {
            return Err(ChannelConfigError {
                entry: text.to_string(),
                reason: "the `root` channel must be configured, e.g. root:4".to_string(),
            });
        }
        Ok(ChannelConfig { channels })
    }

    pub fn get(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ChannelSpec)> {
        self.channels.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The configured channel a job's channel counts against: itself, or its
    /// nearest configured parent.
    pub fn resolve<'a>(&'a self, channel: &str) -> &'a str {
        let mut name = channel;
        loop {
            if let Some((key, _)) = self.channels.get_key_value(name) {
                return key;
            }
            match name.rfind('.') {
                Some(i) => name = &name[..i],
                None => return "root",
            }
        }
    }

    /// `resolve(channel)` and every configured ancestor, innermost first.
    pub fn chain<'a>(&'a self, channel: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut name = self.resolve(channel);
        loop {
            out.push(name);
            match name.rfind('.') {
                Some(i) => name = self.resolve(&name[..i]),
                None => return out,
            }
        }
    }

    /// Sequential channels, by configured name.
    pub fn sequential(&self) -> impl Iterator<Item = &str> {
        self.channels
            .iter()
            .filter(|(_, s)| s.sequential)
            .map(|(k, _)| k.as_str())
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "ms"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("throttle {text:?} is not a duration such as 500ms, 2s or 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!(
            "throttle {text:?} has unknown unit {unit:?}; use ms, s or m"
        )),
    }
}

/// What the pool has running, by configured channel (descendants included),
/// and when each channel last started a job.
#[derive(Debug, Default, Clone)]
pub struct Occupancy {
    running: HashMap<String, u32>,
    last_start: HashMap<String, Instant>,
}

impl Occupancy {
    /// Count a started job against its chain.
    pub fn start(&mut self, config: &ChannelConfig, channel: &str, now: Instant) {
        // On the hot path of every job: allocate a key only the first time.
        for name in config.chain(channel) {
            match self.running.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    self.running.insert(name.to_string(), 1);
                }
            }
        }
        let resolved = config.resolve(channel);
        match self.last_start.get_mut(resolved) {
            Some(t) => *t = now,
            None => {
                self.last_start.insert(resolved.to_string(), now);
            }
        }
    }

    /// Release a finished job's slots.
    pub fn finish(&mut self, config: &ChannelConfig, channel: &str) {
        for name in config.chain(channel) {
            if let Some(n) = self.running.get_mut(name) {
                *n = n.saturating_sub(1);
            }
        }
    }

    pub fn running(&self, name: &str) -> u32 {
        self.running.get(name).copied().unwrap_or(0)
    }

    /// A budget for claiming ahead: capacities times `factor`, except
    /// sequential and throttled channels, which are never claimed ahead.
    pub fn budget_scaled<'a>(
        &self,
        config: &'a ChannelConfig,
        now: Instant,
        factor: u32,
    ) -> Budget<'a> {
        let mut budget = self.budget(config, now);
        for (name, spec) in config.iter() {
            if !spec.sequential && spec.throttle.is_none() {
                let free = spec
                    .capacity
                    .saturating_mul(factor.max(1))
                    .saturating_sub(self.running(name));
                budget.free.insert(name.to_string(), free);
            }
        }
        budget
    }

    /// A budget for one claim: how many more jobs may start, by channel.
    pub fn budget<'a>(&self, config: &'a ChannelConfig, now: Instant) -> Budget<'a> {
        let free = config
            .iter()
            .map(|(name, spec)| {
                let throttled = spec.throttle.is_some_and(|t| {
                    self.last_start
                        .get(name)
                        .is_some_and(|last| now.duration_since(*last) < t)
                });
                let free = if throttled {
                    0
                } else if spec.throttle.is_some() {
                    // One start per throttle interval.
                    spec.capacity.saturating_sub(self.running(name)).min(1)
                } else {
                    spec.capacity.saturating_sub(self.running(name))
                };
                (name.to_string(), free)
            })
            .collect();
        Budget { config, free }
    }
}

/// Free slots for one claim; taking a slot takes it along the whole chain.
#[derive(Debug, Clone)]
pub struct Budget<'a> {
    config: &'a ChannelConfig,
    free: HashMap<String, u32>,
}

impl<'a> Budget<'a> {
    /// The free slots by channel, to carry this budget to another task.
    pub fn into_free(self) -> HashMap<String, u32> {
        self.free
    }

    /// A budget carried with [`Budget::into_free`], on the same channels.
    pub fn from_free(config: &'a ChannelConfig, free: HashMap<String, u32>) -> Budget<'a> {
        Budget { config, free }
    }

    pub fn try_take(&mut self, channel: &str) -> bool {
        let chain = self.config.chain(channel);
        if chain
            .iter()
            .any(|n| self.free.get(*n).copied().unwrap_or(0) == 0)
        {
            return false;
        }
        for name in chain {
            if let Some(n) = self.free.get_mut(name) {
                *n -= 1;
            }
        }
        true
    }

    /// Total jobs that could still start (bounded by root).
    pub fn total(&self) -> u32 {
        self.free.get("root").copied().unwrap_or(0)
    }

    /// Configured channels with no free slot (a job in them, or under them,
    /// cannot start now).
    pub fn full(&self) -> Vec<String> {
        self.free
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let c = ChannelConfig::parse(
            "root:4, root.shop:2, root.shop.orders:1:sequential, root.crm:2:throttle=500ms",
        )
        .unwrap();
        assert_eq!(c.get("root").unwrap().capacity, 4);
        assert!(c.get("root.shop.orders").unwrap().sequential);
        assert_eq!(
            c.get("root.crm").unwrap().throttle,
            Some(Duration::from_millis(500))
        );
        assert_eq!(c.sequential().collect::<Vec<_>>(), ["root.shop.orders"]);
    }

    #[test]
    fn unknown_channels_fall_back_to_their_nearest_parent() {
        let c = ChannelConfig::parse("root:4, root.shop:2").unwrap();
        assert_eq!(c.resolve("root.shop.orders.eu"), "root.shop");
        assert_eq!(c.resolve("root.crm"), "root");
        assert_eq!(c.chain("root.shop.x"), ["root.shop", "root"]);
    }

    #[test]
    fn bad_config_names_the_entry() {
        for (text, needle) in [
            ("root:0", "above 0"),
            ("root:x", "not a whole number"),
            ("root", "name:capacity"),
            ("shop:2, root:1", "start with `root`"),
            ("root:1, root..a:1", "separated by dots"),
            ("root:1, root.a:2:sequential", "capacity 1"),
            ("root:1, root.a:1:fast", "unknown option"),
            ("root:1, root.a:1:throttle=3h", "unknown unit"),
            ("root:1, root:2", "twice"),
            ("root.a:1", "`root` channel must be configured"),
        ] {
            let err = ChannelConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn capacities_are_hierarchical() {
        let c = ChannelConfig::parse("root:3, root.shop:2, root.shop.orders:1").unwrap();
        let now = Instant::now();
        let mut occ = Occupancy::default();
        occ.start(&c, "root.shop.orders", now);
        let mut b = occ.budget(&c, now);
        assert!(!b.try_take("root.shop.orders"), "orders is full");
        assert!(b.try_take("root.shop.products"), "shop has one slot left");
        assert!(!b.try_take("root.shop.products"), "shop is now full");
        assert!(b.try_take("root.crm"), "root has a third slot");
        assert!(!b.try_take("root.crm"), "root is now full");
        occ.finish(&c, "root.shop.orders");
        let mut b = occ.budget(&c, now);
        assert!(b.try_take("root.crm"));
        assert!(b.try_take("root.crm"));
        assert!(b.try_take("root.crm"));
        assert!(!b.try_take("root.crm"));
    }

    #[test]
    fn throttled_channels_start_one_job_per_interval() {
        let c = ChannelConfig::parse("root:4, root.crm:4:throttle=1s").unwrap();
        let t0 = Instant::now();
        let mut occ = Occupancy::default();
        let mut b = occ.budget(&c, t0);
        assert!(b.try_take("root.crm"));
        assert!(!b.try_take("root.crm"));
        occ.start(&c, "root.crm", t0);
        occ.finish(&c, "root.crm");
        assert!(
            !occ.budget(&c, t0 + Duration::from_millis(500))
                .try_take("root.crm")
        );
        assert!(
            occ.budget(&c, t0 + Duration::from_millis(1000))
                .try_take("root.crm")
        );
    }
}
