//! The outbox and notifications: events wait until dispatched, a dispatch
//! enqueues an event's jobs exactly once (another dispatcher's second try
//! gets nothing), and notifications are bounded per target with the
//! overflow counted. Runs on SQLite and (when configured) PostgreSQL.

use junction_runtime::model::Event;
use junction_runtime::queue::notify::Notification;

use super::{job, storages};

fn event(name: &str, id: &str) -> Event {
    Event {
        name: name.into(),
        model: "customer".into(),
        local_id: Some(id.into()),
        changed_fields: vec!["email".into()],
        payload: format!(r#"{{"id":"{id}"}}"#),
        origin_backend: Some("shop".into()),
    }
}

fn note(subject: &str) -> Notification {
    Notification {
        id: 0,
        kind: "job-failed".into(),
        backend: Some("shop".into()),
        subject: subject.into(),
        message: "it broke".into(),
        at: 1_000,
    }
}

#[tokio::test]
async fn a_dispatch_enqueues_an_events_jobs_once_and_marks_it() {
    for (name, s, _dir) in storages().await {
        let a = s.emit(&event("custom", "c1"), 1_000).await.unwrap();
        let b = s.emit(&event("custom", "c2"), 1_001).await.unwrap();
        assert!(b.id > a.id, "{name}: outbox ids grow");
        let waiting = s.undispatched(10).await.unwrap();
        assert_eq!(
            waiting.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![a.id, b.id],
            "{name}: oldest first"
        );
        assert_eq!(waiting[0].event, event("custom", "c1"), "{name}");
        let first = s
            .dispatch(&[(a.id, vec![job("x"), job("y")]), (b.id, vec![])], 2_000)
            .await
            .unwrap();
        let jobs = first[0].as_ref().expect("a was not dispatched yet");
        assert_eq!(jobs.len(), 2, "{name}");
        assert_eq!(first[1].as_deref(), Some(&[][..]), "{name}");
        // Another dispatcher that listed the same event before: nothing.
        let again = s.dispatch(&[(a.id, vec![job("x")])], 2_001).await.unwrap();
        assert_eq!(again, vec![None], "{name}: dispatched once");
        assert!(s.undispatched(10).await.unwrap().is_empty(), "{name}");
        assert_eq!(
            s.count_jobs(&Default::default()).await.unwrap(),
            2,
            "{name}"
        );
        // Still readable by id (a listener's delivery job reads it).
        assert_eq!(
            s.event(a.id).await.unwrap().unwrap().event,
            event("custom", "c1")
        );
        assert_eq!(
            s.record_events("customer", "c2", 10)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            vec![b.id],
            "{name}"
        );
    }
}

#[tokio::test]
async fn notifications_are_bounded_per_target_and_count_what_they_drop() {
    for (name, s, _dir) in storages().await {
        for i in 0..3 {
            assert!(
                s.notify_add("ops", &note(&format!("job {i}")), 2)
                    .await
                    .unwrap()
                    == (i < 2)
            );
        }
        assert!(
            s.notify_add("other", &note("job 9"), 2).await.unwrap(),
            "{name}: per target"
        );
        let (notes, dropped) = s.notify_take("ops", 10).await.unwrap();
        assert_eq!(
            notes.iter().map(|n| n.subject.as_str()).collect::<Vec<_>>(),
            vec!["job 0", "job 1"],
            "{name}"
        );
        assert_eq!(dropped, 1, "{name}");
        let ids: Vec<i64> = notes.iter().map(|n| n.id).collect();
        s.notify_done("ops", &ids, dropped).await.unwrap();
        assert_eq!(
            s.notify_take("ops", 10).await.unwrap(),
            (vec![], 0),
            "{name}"
        );
        assert_eq!(
            s.notify_take("other", 10).await.unwrap().0.len(),
            1,
            "{name}"
        );
    }
}
