//! How long finished jobs are kept: a default, and per channel subtree
//! (`junction.toml`'s `[retention_hours]`). Done and cancelled jobs older
//! than their channel's retention are purged in bounded batches by every
//! node's housekeeping; failed jobs are kept until an operator requeues or
//! discards them, and a job a live job still depends on is kept.
//!
//! The deepest configured channel containing a job's channel decides, so
//! `root.shop = 24` keeps `root.shop.orders`'s jobs a day unless that
//! channel has a setting of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use crate::storage::types::PurgeScope;

/// The retention when nothing is configured: a week.
pub const DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One setting as written: hours, or `"forever"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Keep {
    Hours(u64),
    Word(String),
}

impl Keep {
    /// `None`: kept forever.
    fn duration(&self) -> Result<Option<Duration>, String> {
        match self {
            Keep::Hours(0) => Err(
                "0 hours would purge jobs as they finish; give at least 1, or \"forever\"".into(),
            ),
            Keep::Hours(h) if *h > 24 * 365 * 100 => {
                Err(format!("{h} hours is over a century; use \"forever\""))
            }
            Keep::Hours(h) => Ok(Some(Duration::from_secs(h * 3600))),
            Keep::Word(w) if w == "forever" => Ok(None),
            Keep::Word(w) => Err(format!(
                "{w:?} is neither a number of hours nor \"forever\""
            )),
        }
    }
}

/// Retention per channel subtree, and the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `None`: finished jobs are kept forever.
    pub default: Option<Duration>,
    pub channels: BTreeMap<String, Option<Duration>>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention::all(DEFAULT)
    }
}

/// Whether `channel` is `root` or inside it.
fn within(channel: &str, root: &str) -> bool {
    channel == root
        || channel
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('.'))
}

impl Retention {
    /// The same retention for every channel.
    pub fn all(keep: Duration) -> Retention {
        Retention {
            default: Some(keep),
            channels: BTreeMap::new(),
        }
    }

    /// From the configuration's `[retention_hours]` table: `default` and
    /// channel names (each checked as a channel name).
    pub fn parse(table: &BTreeMap<String, Keep>) -> Result<Retention, String> {
        let mut out = Retention::default();
        for (name, keep) in table {
            let keep = keep
                .duration()
                .map_err(|e| format!("retention_hours.{name}: {e}"))?;
            if name == "default" {
                out.default = keep;
            } else {
                super::channels::check_name(name)
                    .map_err(|e| format!("retention_hours.{name:?}: {e}"))?;
                out.channels.insert(name.clone(), keep);
            }
        }
        Ok(out)
    }

    /// Each purge pass to run, with the age beyond which it deletes: one
    /// per configured channel (minus its configured sub-channels), then
    /// the default (minus every configured channel). Forever-kept scopes
    /// are left out.
    pub fn scopes(&self) -> Vec<(PurgeScope, Duration)> {
        let mut out = Vec::new();
        for (name, keep) in &self.channels {
            let Some(keep) = keep else { continue };
            let except = self
                .channels
                .keys()
                .filter(|other| *other != name && within(other, name))
                .cloned()
                .collect();
            out.push((
                PurgeScope {
                    subtree: Some(name.clone()),
                    except,
                },
                *keep,
            ));
        }
        if let Some(keep) = self.default {
            out.push((
                PurgeScope {
                    subtree: None,
                    except: self.channels.keys().cloned().collect(),
                },
                keep,
            ));
        }
        out
    }

    /// The retention of jobs in `channel` (the deepest configured
    /// channel containing it decides).
    pub fn of(&self, channel: &str) -> Option<Duration> {
        self.channels
            .iter()
            .filter(|(name, _)| within(channel, name))
            .max_by_key(|(name, _)| name.len())
            .map_or(self.default, |(_, keep)| *keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, Keep)]) -> BTreeMap<String, Keep> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn the_deepest_configured_channel_decides() {
        let r = Retention::parse(&table(&[
            ("default", Keep::Hours(48)),
            ("root.shop", Keep::Hours(1)),
            ("root.shop.orders", Keep::Word("forever".into())),
        ]))
        .unwrap();
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        assert_eq!(r.of("root"), h(48));
        assert_eq!(r.of("root.shopping"), h(48), "a prefix is not a parent");
        assert_eq!(r.of("root.shop"), h(1));
        assert_eq!(r.of("root.shop.customers"), h(1));
        assert_eq!(r.of("root.shop.orders.eu"), None);
        let scopes = r.scopes();
        assert_eq!(scopes.len(), 2, "forever is never purged: {scopes:?}");
        assert_eq!(
            scopes[0].0,
            PurgeScope {
                subtree: Some("root.shop".into()),
                except: vec!["root.shop.orders".into()]
            }
        );
        assert_eq!(scopes[1].0.subtree, None);
        assert_eq!(scopes[1].0.except.len(), 2);
    }

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        for (entries, needle) in [
            (
                vec![("default", Keep::Hours(0))],
                "retention_hours.default: 0 hours",
            ),
            (
                vec![("root.x", Keep::Word("week".into()))],
                "retention_hours.root.x",
            ),
            (
                vec![("root..x", Keep::Hours(1))],
                "retention_hours.\"root..x\"",
            ),
        ] {
            let e = Retention::parse(&table(&entries)).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
