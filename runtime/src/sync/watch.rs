//! Following changes made elsewhere: another node (or the admin API on
//! another node) installs, activates or rolls back a connector, or changes
//! a backend. Storage bumps a generation number with each such change; a
//! node that sees it move resolves its backends again, so new calls use
//! the newly active versions and listeners follow. Calls already running
//! keep the units they started with.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Synchronizer;

impl Synchronizer {
    /// Resolve the backends again if the registry changed since `seen`;
    /// returns the generation now seen.
    pub async fn follow_registry(&self, seen: Option<i64>) -> Option<i64> {
        match self.storage.registry_generation().await {
            Ok(now) if Some(now) != seen => {
                if seen.is_some()
                    && let Err(e) = self.reload_listening().await
                {
                    tracing::warn!(error = %e, "backends could not be resolved again");
                    return seen;
                }
                Some(now)
            }
            Ok(_) => seen,
            Err(e) => {
                tracing::warn!(error = %e, "the registry generation could not be read");
                seen
            }
        }
    }

    /// Check for registry changes every `every` until aborted.
    pub fn start_following(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            let mut seen = sync.follow_registry(None).await;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                seen = sync.follow_registry(seen).await;
            }
        })
    }
}
