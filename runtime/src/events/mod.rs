//! Events: local record changes and custom events, through an outbox.
//!
//! A record change and its event commit in one transaction (the outbox
//! row); the dispatcher then asks every listener which jobs the event
//! causes and enqueues them in the same transaction that marks the event
//! dispatched. A crash between the two leaves the event in the outbox, to
//! be dispatched on restart: no lost event, no orphan job, no job twice.
//! Events from an import carry the backend they came from, and listeners of
//! that backend skip them, so an import never echoes back as an export.
//! Connectors' listeners are never called here: each hearing becomes a
//! delivery job (`delivery`, run by `sync::deliver`), so one backend's failing or looping
//! listener cannot hold up the dispatcher or another backend's events.
//! In-process subscribers (the dashboard, tests) get a live stream of
//! dispatched events.

pub mod delivery;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::capabilities::CallContext;
use crate::host::Unit;
use crate::model::{Event, LocalRecord};
use crate::queue::{JobSpec, Queue, QueueError, now_ms};
use crate::storage::{RecordWrite, StorageError, StoredEvent};

/// Why a listener could not decide; the event stays in the outbox and is
/// offered again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("listener {listener} failed on event {event}: {message}")]
pub struct ListenerError {
    pub listener: String,
    pub event: i64,
    pub message: String,
}

/// Decides which jobs an event causes; an empty list skips it.
#[async_trait]
pub trait Listener: Send + Sync {
    fn name(&self) -> String;
    async fn on_event(&self, event: &StoredEvent) -> Result<Vec<JobSpec>, ListenerError>;
}

/// Whether a manifest's event pattern (`record-written:product`,
/// `record-written`, `*:product`, `*`) covers an event.
pub fn pattern_matches(pattern: &str, event: &Event) -> bool {
    let (name, model) = pattern.split_once(':').unwrap_or((pattern, "*"));
    (name == "*" || name == event.name) && (model == "*" || model == event.model)
}

/// A connector's `listener` export, for one backend. The dispatcher only
/// routes: an event the listener hears becomes one delivery job
/// (`junction.deliver`, see `sync::deliver`), and the guest decides when
/// that job runs, isolated from every other backend's listener.
pub struct GuestListener {
    pub backend: String,
    pub unit: Unit,
    pub ctx: Arc<CallContext>,
    /// The manifest's `events`.
    pub patterns: Vec<String>,
}

#[async_trait]
impl Listener for GuestListener {
    fn name(&self) -> String {
        format!("{} ({})", self.backend, self.unit.digest())
    }

    async fn on_event(&self, stored: &StoredEvent) -> Result<Vec<JobSpec>, ListenerError> {
        if !delivery::hears(
            &self.backend,
            &self.patterns,
            &self.ctx.grants,
            &stored.event,
        ) {
            return Ok(Vec::new());
        }
        Ok(vec![delivery::delivery(
            &self.backend,
            &self.ctx.grants,
            stored,
        )])
    }
}

/// Errors of the event bus.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Listener(#[from] ListenerError),
}

/// A listener with the key it was set under, if any.
type Keyed = (Option<String>, Arc<dyn Listener>);

/// Records, events and their listeners.
pub struct EventBus {
    queue: Arc<Queue>,
    listeners: RwLock<Vec<Keyed>>,
    live: broadcast::Sender<StoredEvent>,
    wake: Notify,
    /// Events an in-process listener refused, by id: tries so far and when
    /// to offer them again. They are skipped until then, so that refused
    /// events at the head of the outbox never hold up the ones behind.
    deferred: std::sync::Mutex<HashMap<i64, (u32, Instant)>>,
}

/// Events passed over per dispatch pass, at most, for deferred ones: up
/// to this many refused events at the head of the outbox cannot stop the
/// events behind them.
const DEFERRED_MAX: usize = 4096;
/// The longest an in-process listener's refused event waits to be offered
/// again (back-off doubles from 50 ms).
const DEFERRED_WAIT_MAX: Duration = Duration::from_secs(60);

/// When a refused event is offered again, after `tries` refusals.
fn deferred_until(tries: u32, now: Instant) -> Instant {
    let wait = Duration::from_millis(50)
        .saturating_mul(1u32 << tries.min(16))
        .min(DEFERRED_WAIT_MAX);
    now + wait
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

impl EventBus {
    pub fn new(queue: Arc<Queue>) -> Arc<EventBus> {
        Arc::new(EventBus {
            queue,
            listeners: RwLock::new(Vec::new()),
            live: broadcast::channel(1024).0,
            wake: Notify::new(),
            deferred: std::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn add_listener(&self, listener: Arc<dyn Listener>) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((None, listener));
    }

    /// Register, replace (`Some`) or remove (`None`) the listener known
    /// as `key`. An event being handled by the old one finishes on it.
    pub fn set_listener(&self, key: &str, listener: Option<Arc<dyn Listener>>) {
        let mut all = self.listeners.write().unwrap_or_else(|p| p.into_inner());
        all.retain(|(k, _)| k.as_deref() != Some(key));
        if let Some(l) = listener {
            all.push((Some(key.to_string()), l));
        }
    }

    /// A live stream of dispatched events. A subscriber that falls more
    /// than 1024 events behind is told how many it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredEvent> {
        self.live.subscribe()
    }

    /// Create or update a local record (its event goes to the outbox in
    /// the same transaction). `None` when nothing changed.
    pub async fn put_record(&self, write: &RecordWrite) -> Result<Option<LocalRecord>, EventError> {
        let out = self.queue.storage().put_record(write, now_ms()).await?;
        self.wake.notify_one();
        Ok(out.map(|(record, _)| record))
    }

    /// Change a local record as a user of Junction would (no origin
    /// backend, so listeners may export it): read it, apply `change` to
    /// its data, write it back if no one wrote it meanwhile. Returns the
    /// data before and after, or `None` when there is no such record.
    pub async fn edit_record(
        &self,
        model: &str,
        id: &str,
        change: impl FnOnce(&mut serde_json::Value),
    ) -> Result<Option<(serde_json::Value, serde_json::Value)>, EventError> {
        let storage = self.queue.storage();
        let Some(record) = storage.record(model, id).await? else {
            return Ok(None);
        };
        let before: serde_json::Value = serde_json::from_str(&record.data).map_err(|e| {
            StorageError::Rejected(format!("stored data of {model} {id} is not JSON: {e}"))
        })?;
        let mut after = before.clone();
        change(&mut after);
        self.put_record(&RecordWrite {
            model: model.to_string(),
            id: id.to_string(),
            data: after.to_string(),
            expected_version: Some(record.version),
            origin_backend: None,
            bind: None,
            keys: None,
        })
        .await?;
        Ok(Some((before, after)))
    }

    /// Delete a local record; returns whether it existed.
    pub async fn delete_record(
        &self,
        model: &str,
        id: &str,
        origin_backend: Option<&str>,
    ) -> Result<bool, EventError> {
        let out = self
            .queue
            .storage()
            .delete_record(model, id, origin_backend, now_ms())
            .await?;
        self.wake.notify_one();
        Ok(out.is_some())
    }

    /// A custom event (for example from a connector).
    pub async fn emit(&self, event: &Event) -> Result<i64, EventError> {
        let stored = self.queue.storage().emit(event, now_ms()).await?;
        self.wake.notify_one();
        Ok(stored.id)
    }

    /// Dispatch what is in the outbox now; returns how many events were
    /// dispatched. An event an in-process listener refused (or asked an
    /// invalid job for) stays in the outbox and is offered again after a
    /// back-off; the events behind it go on. (Connectors' listeners never
    /// refuse here: each hearing is a delivery job of its own, which
    /// retries and dead-letters by itself.)
    pub async fn dispatch_pending(&self) -> Result<usize, EventError> {
        let storage = self.queue.storage();
        let listeners: Vec<Arc<dyn Listener>> = self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        let mut batch = Vec::new();
        let mut events = Vec::new();
        let now = Instant::now();
        let waiting: std::collections::HashSet<i64> = {
            let deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
            deferred
                .iter()
                .filter(|(_, (_, until))| *until > now)
                .map(|(id, _)| *id)
                .take(DEFERRED_MAX)
                .collect()
        };
        let offered = storage
            .undispatched(256 + waiting.len() as u32)
            .await?
            .into_iter()
            .filter(|e| !waiting.contains(&e.id))
            .take(256);
        for stored in offered {
            let mut specs = Vec::new();
            let mut failed = None;
            for listener in &listeners {
                match listener.on_event(&stored).await {
                    Ok(mut jobs) => specs.append(&mut jobs),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                self.defer(stored.id, &e.to_string());
                continue;
            }
            let now = now_ms();
            let jobs = match specs
                .iter()
                .enumerate()
                .map(|(i, s)| self.queue.prepare(i, s, now))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    self.defer(
                        stored.id,
                        &format!("a listener asked for an invalid job: {e}"),
                    );
                    continue;
                }
            };
            batch.push((stored.id, jobs));
            events.push(stored);
        }
        // One transaction for the whole batch: an event's jobs still exist
        // exactly once, and a busy outbox costs one write, not one per event.
        let mut dispatched = 0;
        if batch.is_empty() {
            return Ok(0);
        }
        let results = match storage.dispatch(&batch, now_ms()).await {
            Ok(results) => results.into_iter().map(Ok).collect(),
            // One event whose jobs cannot be stored must not hold up the
            // others: go one by one, and leave only that one in the outbox.
            Err(StorageError::Database(e)) => return Err(StorageError::Database(e).into()),
            Err(_) if batch.len() > 1 => {
                let mut one_by_one = Vec::with_capacity(batch.len());
                for item in batch {
                    one_by_one.push(
                        storage
                            .dispatch(std::slice::from_ref(&item), now_ms())
                            .await
                            .map(|mut r| r.pop().flatten()),
                    );
                }
                one_by_one
            }
            Err(e) => vec![Err(e)],
        };
        for (stored, result) in events.into_iter().zip(results) {
            match result {
                Ok(Some(_)) => {
                    self.deferred
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&stored.id);
                    dispatched += 1;
                    let _ = self.live.send(stored);
                }
                // Dispatched by another node meanwhile.
                Ok(None) => {
                    self.deferred
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&stored.id);
                }
                Err(e) => self.defer(stored.id, &format!("its jobs could not be stored: {e}")),
            }
        }
        if dispatched > 0 {
            self.queue.wake.notify_one();
        }
        Ok(dispatched)
    }

    /// Leave an event in the outbox and offer it again after a back-off.
    fn defer(&self, id: i64, why: &str) {
        let mut deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        let tries = deferred.get(&id).map_or(0, |(t, _)| *t) + 1;
        let until = deferred_until(tries, Instant::now());
        if tries == 1 {
            tracing::warn!(
                event = id,
                why,
                "event stays in the outbox; offered again after a back-off"
            );
        } else {
            tracing::debug!(event = id, tries, why, "event refused again");
        }
        deferred.insert(id, (tries, until));
    }

    /// Run the dispatcher until the handle is aborted: on every change, and
    /// every `poll` for events another process wrote or a listener refused.
    pub fn start(self: &Arc<Self>, poll: Duration) -> JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                match bus.dispatch_pending().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%e, "dispatching events failed"),
                }
                tokio::select! {
                    _ = bus.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, model: &str) -> Event {
        Event {
            name: name.into(),
            model: model.into(),
            local_id: None,
            changed_fields: Vec::new(),
            payload: "{}".into(),
            origin_backend: None,
        }
    }

    #[test]
    fn patterns_match_name_and_model() {
        let e = event("record-written", "product");
        assert!(pattern_matches("record-written:product", &e));
        assert!(pattern_matches("record-written", &e));
        assert!(pattern_matches("*:product", &e));
        assert!(pattern_matches("*", &e));
        assert!(!pattern_matches("record-written:order", &e));
        assert!(!pattern_matches("record-created", &e));
    }
}
