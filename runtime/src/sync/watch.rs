//! Following changes made elsewhere: another node (or the admin API on
//! another node) installs, activates or rolls back a connector, or changes
//! a backend. Storage bumps a generation number with each such change; a
//! node that sees it move resolves its backends again, so new calls use
//! the newly active versions and listeners follow. Calls already running
//! keep the units they started with.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{NOT_YET, Synchronizer};

impl Synchronizer {
    /// Resolve the backends again if the registry changed since this node
    /// last resolved them (its own changes resolve at once and record the
    /// generation, so they are not resolved a second time here).
    pub async fn follow_registry(&self) {
        let now = match self.storage.registry_generation().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "the registry generation could not be read");
                return;
            }
        };
        let seen = self.resolved_generation.load(Ordering::Acquire);
        if seen == NOT_YET {
            self.resolved_generation.store(now, Ordering::Release);
        } else if seen != now
            && let Err(e) = self.reload_listening().await
        {
            tracing::warn!(error = %e, "backends could not be resolved again");
        }
    }

    /// Check for registry changes every `every` until aborted.
    pub fn start_following(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                sync.follow_registry().await;
            }
        })
    }
}
