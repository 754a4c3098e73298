//! Records, the outbox and listeners; the job trap; guest host imports
//! backed by the database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use junction_runtime::SandboxLimits;
use junction_runtime::capabilities::egress::EgressPolicy;
use junction_runtime::capabilities::stored::StoredServices;
use junction_runtime::capabilities::{BackendInfo, CallContext, Services};
use junction_runtime::events::{EventBus, GuestListener, Listener, ListenerError};
use junction_runtime::grants::Grants;
use junction_runtime::queue::testing::JobTrap;
use junction_runtime::queue::worker::{Handled, handler_fn};
use junction_runtime::queue::{JobSpec, Queue, QueueConfig};
use junction_runtime::storage::sqlite::SqliteStorage;
use junction_runtime::storage::{RecordWrite, StoredEvent};
use serde_json::json;

use crate::support::probe;

async fn queue() -> (Arc<Queue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("events.db"))
        .await
        .unwrap();
    (Queue::new(Arc::new(storage), QueueConfig::default()), dir)
}

fn write(model: &str, id: &str, data: serde_json::Value, origin: Option<&str>) -> RecordWrite {
    RecordWrite {
        model: model.into(),
        id: id.into(),
        data: data.to_string(),
        expected_version: None,
        origin_backend: origin.map(str::to_string),
        bind: None,
        keys: None,
    }
}

/// Exports every written product to the `shop` backend.
struct ExportToShop;

#[async_trait]
impl Listener for ExportToShop {
    fn name(&self) -> String {
        "export-to-shop".into()
    }

    async fn on_event(&self, stored: &StoredEvent) -> Result<Vec<JobSpec>, ListenerError> {
        let e = &stored.event;
        if e.model != "product" || e.origin_backend.as_deref() == Some("shop") {
            return Ok(Vec::new()); // skip_if
        }
        Ok(vec![
            JobSpec::new(
                "export-record",
                json!({"model": e.model, "id": e.local_id, "fields": e.changed_fields}),
            )
            .identity_key(&format!(
                "export:{}:{}",
                e.model,
                e.local_id.clone().unwrap_or_default()
            )),
        ])
    }
}

#[tokio::test]
async fn a_record_change_becomes_jobs_through_the_outbox() {
    let (queue, _dir) = queue().await;
    let bus = EventBus::new(queue.clone());
    bus.add_listener(Arc::new(ExportToShop));
    let mut trap = JobTrap::new(queue.clone());
    trap.handler(
        "export-record",
        handler_fn(|_j| async { Handled::done(None) }),
    );
    let mut live = bus.subscribe();

    let created = bus
        .put_record(&write(
            "product",
            "p1",
            json!({"sku": "A", "price": 10}),
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.version, 1);
    // Nothing is enqueued until the outbox is dispatched.
    assert!(trap.enqueued().await.unwrap().is_empty());
    assert_eq!(bus.dispatch_pending().await.unwrap(), 1);
    trap.assert_enqueued("export-record", json!({"model": "product", "id": "p1"}))
        .await;
    assert_eq!(live.recv().await.unwrap().event.name, "record-created");

    // A write names the fields that changed; an unchanged write is nothing.
    bus.put_record(&write(
        "product",
        "p1",
        json!({"sku": "A", "price": 12}),
        None,
    ))
    .await
    .unwrap();
    assert!(
        bus.put_record(&write(
            "product",
            "p1",
            json!({"sku": "A", "price": 12}),
            None
        ))
        .await
        .unwrap()
        .is_none()
    );
    bus.dispatch_pending().await.unwrap();
    let written = live.recv().await.unwrap().event;
    assert_eq!(
        (written.name.as_str(), written.changed_fields.clone()),
        ("record-written", vec!["price".to_string()])
    );
    // The identity key collapsed the second export into the first.
    assert_eq!(trap.enqueued().await.unwrap().len(), 1);
    assert_eq!(trap.perform_enqueued().await.unwrap(), 1);

    // An import from the shop does not echo back to it.
    bus.put_record(&write("product", "p2", json!({"sku": "B"}), Some("shop")))
        .await
        .unwrap();
    bus.dispatch_pending().await.unwrap();
    assert!(trap.enqueued().await.unwrap().is_empty());

    // Deletes are events too; a missing record is not.
    assert!(bus.delete_record("product", "p2", None).await.unwrap());
    assert!(!bus.delete_record("product", "p2", None).await.unwrap());
    bus.dispatch_pending().await.unwrap();
    assert_eq!(live.recv().await.unwrap().event.name, "record-created");
    assert_eq!(live.recv().await.unwrap().event.name, "record-deleted");
}

#[tokio::test]
async fn an_event_survives_a_crash_before_dispatch_and_its_jobs_exist_once() {
    let (queue, _dir) = queue().await;
    queue.register_function("export-record");
    // Written while no dispatcher runs (as if the process died right after).
    let first = EventBus::new(queue.clone());
    first
        .put_record(&write("product", "p9", json!({"sku": "Z"}), None))
        .await
        .unwrap();
    drop(first);
    // Two dispatchers come up; the event's jobs are enqueued exactly once.
    let a = EventBus::new(queue.clone());
    let b = EventBus::new(queue.clone());
    a.add_listener(Arc::new(ExportToShop));
    b.add_listener(Arc::new(ExportToShop));
    let (x, y) = tokio::join!(a.dispatch_pending(), b.dispatch_pending());
    assert_eq!(x.unwrap() + y.unwrap(), 1);
    assert_eq!(
        JobTrap::new(queue.clone()).enqueued().await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_failing_listener_leaves_the_event_in_the_outbox() {
    struct Flaky(std::sync::atomic::AtomicBool);
    #[async_trait]
    impl Listener for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }
        async fn on_event(&self, stored: &StoredEvent) -> Result<Vec<JobSpec>, ListenerError> {
            if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(ListenerError {
                    listener: self.name(),
                    event: stored.id,
                    message: "down".into(),
                });
            }
            Ok(vec![JobSpec::new(
                "export-record",
                json!({"id": stored.event.local_id}),
            )])
        }
    }
    let (queue, _dir) = queue().await;
    queue.register_function("export-record");
    let bus = EventBus::new(queue.clone());
    bus.add_listener(Arc::new(Flaky(Default::default())));
    bus.put_record(&write("product", "p1", json!({"a": 1}), None))
        .await
        .unwrap();
    assert_eq!(
        bus.dispatch_pending().await.unwrap(),
        0,
        "no orphan job, event kept"
    );
    assert!(
        JobTrap::new(queue.clone())
            .enqueued()
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        bus.dispatch_pending().await.unwrap(),
        0,
        "a refused event waits out its back-off"
    );
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(bus.dispatch_pending().await.unwrap(), 1);
    assert_eq!(
        JobTrap::new(queue.clone()).enqueued().await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn refused_events_at_the_head_do_not_hold_up_the_ones_behind() {
    // A listener that refuses every event about a "poison" record.
    struct Picky;
    #[async_trait]
    impl Listener for Picky {
        fn name(&self) -> String {
            "picky".into()
        }
        async fn on_event(&self, stored: &StoredEvent) -> Result<Vec<JobSpec>, ListenerError> {
            if stored
                .event
                .local_id
                .as_deref()
                .is_some_and(|id| id.starts_with("poison"))
            {
                return Err(ListenerError {
                    listener: self.name(),
                    event: stored.id,
                    message: "cannot decide".into(),
                });
            }
            Ok(vec![JobSpec::new(
                "export-record",
                json!({"id": stored.event.local_id}),
            )])
        }
    }
    let (queue, _dir) = queue().await;
    queue.register_function("export-record");
    let bus = EventBus::new(queue.clone());
    bus.add_listener(Arc::new(Picky));
    // More refused events than one dispatch pass looks at (256).
    for i in 0..300 {
        bus.put_record(&write(
            "product",
            &format!("poison-{i}"),
            json!({"a": 1}),
            None,
        ))
        .await
        .unwrap();
    }
    bus.put_record(&write("product", "good", json!({"a": 1}), None))
        .await
        .unwrap();
    let mut dispatched = 0;
    for _ in 0..5 {
        dispatched += bus.dispatch_pending().await.unwrap();
    }
    assert_eq!(dispatched, 1, "the good event behind 300 refused ones");
    let jobs = JobTrap::new(queue.clone()).enqueued().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].args.contains("good"), "{}", jobs[0].args);
}

#[tokio::test]
async fn version_conflicts_and_bad_data_are_refused() {
    let (queue, _dir) = queue().await;
    let bus = EventBus::new(queue.clone());
    bus.put_record(&write("product", "p1", json!({"a": 1}), None))
        .await
        .unwrap();
    let mut stale = write("product", "p1", json!({"a": 2}), None);
    stale.expected_version = Some(0);
    let err = bus.put_record(&stale).await.unwrap_err();
    assert!(err.to_string().contains("version 1, not 0"), "{err}");
    let err = bus
        .put_record(&write("product", "p2", json!([1, 2]), None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    assert!(
        queue
            .storage()
            .record("product", "p2")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_dispatcher_runs_on_its_own() {
    let (queue, _dir) = queue().await;
    queue.register_function("export-record");
    let bus = EventBus::new(queue.clone());
    bus.add_listener(Arc::new(ExportToShop));
    let task = bus.start(Duration::from_millis(50));
    bus.put_record(&write("product", "p1", json!({"a": 1}), None))
        .await
        .unwrap();
    let trap = JobTrap::new(queue.clone());
    for _ in 0..100 {
        if !trap.enqueued().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    trap.assert_enqueued("export-record", json!({"id": "p1"}))
        .await;
}

fn guest_ctx(queue: &Arc<Queue>) -> Arc<CallContext> {
    Arc::new(CallContext {
        backend: BackendInfo {
            name: "shop".into(),
            kind: "probe".into(),
            version: "1.0.0".into(),
            base_url: String::new(),
        },
        settings: "{}".into(),
        egress: Arc::new(EgressPolicy::deny_all()),
        limits: SandboxLimits::default(),
        services: Services::from_one(Arc::new(StoredServices::new(queue.clone()))),
        grants: Arc::new(Grants::unrestricted("shop")),
    })
}

#[tokio::test]
async fn a_guest_listener_is_delivered_by_a_job_of_its_own_and_never_echoes() {
    let (queue, _dir) = queue().await;
    queue.register_function(junction_runtime::sync::DELIVER);
    let bus = EventBus::new(queue.clone());
    bus.add_listener(Arc::new(GuestListener {
        backend: "shop".into(),
        unit: probe().clone(),
        ctx: guest_ctx(&queue),
        patterns: vec!["record-written:echo".into(), "record-created:echo".into()],
    }));
    bus.put_record(&write("echo", "e1", json!({"x": 1}), None))
        .await
        .unwrap();
    bus.put_record(&write("echo", "e2", json!({"x": 1}), Some("shop")))
        .await
        .unwrap();
    bus.put_record(&write("other", "o1", json!({"x": 1}), None))
        .await
        .unwrap();
    assert_eq!(bus.dispatch_pending().await.unwrap(), 3);
    let trap = JobTrap::new(queue.clone());
    let jobs = trap.enqueued().await.unwrap();
    // The dispatcher called no guest: the one event the listener hears
    // became one delivery job in the backend's channel (the guest decides
    // when it runs; `hostile` and `resources` run it on a node).
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].backend.as_deref(), Some("shop"));
    assert_eq!(jobs[0].channel, "root.shop");
    assert_eq!(jobs[0].max_retries, junction_runtime::sync::LISTENER_TRIES);
    let event = queue.storage().event(1).await.unwrap().unwrap();
    assert_eq!(event.event.local_id.as_deref(), Some("e1"));
    trap.assert_enqueued(
        junction_runtime::sync::DELIVER,
        json!({"backend": "shop", "model": "echo", "event": event.id}),
    )
    .await;
}

#[tokio::test]
async fn guest_host_imports_reach_the_database() {
    let (queue, _dir) = queue().await;
    queue.register_guest_function("junction.import-record");
    let ctx = guest_ctx(&queue);
    let record = probe().read(&ctx, "host", "h").await.into_result().unwrap();
    let v: serde_json::Value = serde_json::from_str(&record.data).unwrap();
    assert_eq!(
        (
            v["local"].as_str(),
            v["external"].as_str(),
            v["cursor"].as_str()
        ),
        (Some("loc-1"), Some("ext-1"), Some("42"))
    );
    let s = queue.storage();
    assert_eq!(
        s.binding_to_local("shop", "echo", "ext-1")
            .await
            .unwrap()
            .as_deref(),
        Some("loc-1")
    );
    assert_eq!(
        s.state_get("shop", "guest:cursor")
            .await
            .unwrap()
            .as_deref(),
        Some("42")
    );
    let trap = JobTrap::new(queue.clone());
    let job = trap
        .assert_enqueued(
            "junction.import-record",
            json!({"backend": "shop", "model": "echo", "external_id": "ext-1"}),
        )
        .await;
    // The guest's key, in its backend's namespace.
    assert_eq!(job.identity_key.as_deref(), Some("guest:shop:echo:ext-1"));
    assert_eq!(job.channel, "root.shop");
    assert_eq!(v["job"].as_str(), Some(job.id.to_string().as_str()));
    // Binding the same external id to another local id is the guest's error.
    s.bind("shop", "echo", "ext-2", "loc-2", 0, None)
        .await
        .unwrap();
    let err = s
        .bind("shop", "echo", "ext-2", "loc-3", 0, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already bound"), "{err}");
}
