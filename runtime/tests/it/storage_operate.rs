//! Storage conformance, operator area: acting on jobs in bulk, counting by
//! filter, purging per channel scope, import cursors, a record's timeline.
//! Runs on SQLite and (when configured) PostgreSQL, like `storage`.

use junction_runtime::queue::job::{Completion, JobAction, JobFilter, JobState, NewJob, Outcome};
use junction_runtime::queue::retention::PurgeScope;
use junction_runtime::storage::Storage;

use super::storage::{job, start_all, storages};

fn failed(id: i64, at: i64) -> Completion {
    Completion {
        id,
        outcome: Outcome::Failed {
            kind: "test".into(),
            message: "it broke".into(),
        },
        finished_at: at,
        connector_digest: None,
        log: Vec::new(),
        audit: Vec::new(),
    }
}

fn done(id: i64, at: i64) -> Completion {
    Completion {
        outcome: Outcome::Done { result: None },
        ..failed(id, at)
    }
}

async fn enqueue(s: &dyn Storage, jobs: Vec<NewJob>, at: i64) -> Vec<i64> {
    s.enqueue(&jobs, at)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

async fn state(s: &dyn Storage, id: i64) -> JobState {
    s.job(id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn acting_on_many_jobs_changes_those_it_applies_to_and_reports_the_rest() {
    for (name, s, _dir) in storages().await {
        let ids = enqueue(&*s, (0..4).map(|_| job("f")).collect(), 1).await;
        start_all(&*s, 10).await;
        s.complete(
            &[failed(ids[0], 20), failed(ids[1], 20), done(ids[2], 20)],
            &[],
            20,
        )
        .await
        .unwrap();
        // ids[3] is still claimed: a requeue skips it and the done one.
        let acted = s
            .act(
                JobAction::Requeue,
                &[ids[0], ids[1], ids[2], ids[3], 999_999],
                30,
            )
            .await
            .unwrap();
        assert_eq!(acted.changed, vec![ids[0], ids[1]], "{name}");
        assert_eq!(
            acted.skipped,
            vec![(ids[2], JobState::Done), (ids[3], JobState::Enqueued)],
            "{name}"
        );
        assert_eq!(acted.missing, vec![999_999], "{name}");
        assert_eq!(state(&*s, ids[0]).await, JobState::Pending, "{name}");
        let j = s.job(ids[1]).await.unwrap().unwrap();
        assert_eq!((j.tries, j.finished_at), (0, None), "{name}: tries reset");
    }
}

#[tokio::test]
async fn discarding_sets_a_failed_job_aside_with_its_dependents() {
    for (name, s, _dir) in storages().await {
        let parent = enqueue(&*s, vec![job("f")], 1).await[0];
        let mut child = job("g");
        child.parents = vec![junction_runtime::queue::job::Parent::Stored(parent)];
        let child = enqueue(&*s, vec![child], 2).await[0];
        start_all(&*s, 10).await;
        s.complete(&[failed(parent, 20)], &[], 20).await.unwrap();
        let acted = s
            .act(JobAction::Discard, &[parent, child], 30)
            .await
            .unwrap();
        assert_eq!(acted.changed, vec![parent, child], "{name}");
        assert_eq!(acted.skipped, vec![(child, JobState::Cancelled)], "{name}");
        let j = s.job(parent).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Cancelled, "{name}");
        assert_eq!(j.result.as_deref(), Some("\"discarded by an operator\""));
        assert_eq!(state(&*s, child).await, JobState::Cancelled, "{name}");
        // Only failed jobs can be discarded.
        let e = s.requeue(parent, 40).await;
        assert!(e.is_ok(), "{name}: a discarded job can be requeued");
        let e = s
            .act_on_one(JobAction::Discard, parent, 41)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("discard"), "{name}: {e}");
    }
}

#[tokio::test]
async fn counting_by_filter_honours_every_field_and_ignores_paging() {
    for (name, s, _dir) in storages().await {
        let mut a = job("a");
        a.backend = Some("shop".into());
        a.channel = "root.shop".into();
        enqueue(&*s, vec![a], 100).await;
        enqueue(&*s, vec![job("a"), job("b")], 200).await;
        let count = |f: JobFilter| {
            let s = s.clone();
            async move { s.count_jobs(&f).await.unwrap() }
        };
        assert_eq!(count(JobFilter::default()).await, 3, "{name}");
        let a = || JobFilter {
            function: Some("a".into()),
            ..JobFilter::default()
        };
        assert_eq!(count(a()).await, 2, "{name}");
        assert_eq!(
            count(JobFilter {
                backend: Some("shop".into()),
                ..a()
            })
            .await,
            1
        );
        assert_eq!(
            count(JobFilter {
                created_after: Some(150),
                ..a()
            })
            .await,
            1,
            "{name}: created_after"
        );
        assert_eq!(
            count(JobFilter {
                created_before: Some(150),
                ..JobFilter::default()
            })
            .await,
            1,
            "{name}: created_before"
        );
        assert_eq!(
            count(JobFilter {
                before: Some(1),
                limit: 1,
                ..JobFilter::default()
            })
            .await,
            3,
            "{name}: paging is ignored"
        );
        assert_eq!(
            count(JobFilter {
                state: Some(JobState::Failed),
                ..JobFilter::default()
            })
            .await,
            0
        );
        let listed = s
            .jobs(&JobFilter {
                created_after: Some(150),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 2, "{name}: the list filters by time too");
    }
}

#[tokio::test]
async fn purging_a_scope_touches_its_subtree_and_spares_the_exceptions() {
    for (name, s, _dir) in storages().await {
        let mut ids = Vec::new();
        for channel in [
            "root",
            "root.shop",
            "root.shop.orders",
            "root.shopping",
            "root.crm",
        ] {
            let mut j = job("f");
            j.channel = channel.into();
            ids.push(enqueue(&*s, vec![j], 1).await[0]);
        }
        start_all(&*s, 10).await;
        let done: Vec<Completion> = ids.iter().map(|id| done(*id, 20)).collect();
        s.complete(&done, &[], 20).await.unwrap();
        let shop = PurgeScope {
            subtree: Some("root.shop".into()),
            except: vec!["root.shop.orders".into()],
        };
        assert_eq!(s.purge(21, 100, &shop).await.unwrap(), 1, "{name}");
        assert!(s.job(ids[1]).await.unwrap().is_none(), "{name}");
        assert!(
            s.job(ids[3]).await.unwrap().is_some(),
            "{name}: root.shopping is not inside root.shop"
        );
        let rest = PurgeScope {
            subtree: None,
            except: vec!["root.shop".into(), "root.crm".into()],
        };
        assert_eq!(s.purge(21, 100, &rest).await.unwrap(), 2, "{name}");
        let left: Vec<String> = s
            .jobs(&JobFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.channel)
            .collect();
        assert_eq!(left, vec!["root.crm", "root.shop.orders"], "{name}");
    }
}

#[tokio::test]
async fn state_keys_are_listed_by_prefix_and_deleted_one_by_one() {
    for (name, s, _dir) in storages().await {
        for (key, value) in [
            ("import:product:since", "2026-01-01T00:00:00Z"),
            ("import:order:since", "2026-02-01T00:00:00Z"),
            ("import_x", "not a cursor"),
            ("token", "x"),
        ] {
            s.state_set("shop", key, value, 5, None).await.unwrap();
        }
        s.state_set("crm", "import:deal:since", "x", 5, None)
            .await
            .unwrap();
        let listed = s.state_list("shop", "import:").await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec!["import:order:since", "import:product:since"],
            "{name}"
        );
        assert_eq!(listed[0].2, 5);
        assert!(s.state_delete("shop", "import:order:since").await.unwrap());
        assert!(!s.state_delete("shop", "import:order:since").await.unwrap());
        assert_eq!(
            s.state_get("shop", "import:order:since").await.unwrap(),
            None
        );
        assert_eq!(
            s.state_list("crm", "import:").await.unwrap().len(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_records_jobs_are_found_by_local_and_external_id() {
    for (name, s, _dir) in storages().await {
        let with = |function: &str, backend: Option<&str>, args: serde_json::Value| {
            let mut j = job(function);
            j.args = args.to_string();
            j.backend = backend.map(str::to_string);
            // What the queue sets when it prepares a job.
            j.record = junction_runtime::queue::job::record_key(&args, backend);
            j
        };
        let ids = enqueue(
            &*s,
            vec![
                with(
                    "export",
                    Some("shop"),
                    serde_json::json!({"model": "product", "local_id": "p1"}),
                ),
                with(
                    "import",
                    Some("shop"),
                    serde_json::json!({"model": "product", "external_id": "X1"}),
                ),
                with(
                    "import",
                    Some("crm"),
                    serde_json::json!({"model": "product", "external_id": "X1"}),
                ),
                with(
                    "export",
                    Some("shop"),
                    serde_json::json!({"model": "product", "local_id": "p2"}),
                ),
                with(
                    "export",
                    Some("shop"),
                    serde_json::json!({"model": "order", "local_id": "p1"}),
                ),
            ],
            1,
        )
        .await;
        let found: Vec<i64> = s
            .record_jobs("product", "p1", &[("shop".into(), "X1".into())], 10)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            found,
            vec![ids[1], ids[0]],
            "{name}: newest first, nothing else"
        );
        // An id longer than any index entry may be still finds its jobs.
        // (Not compressible, as a repeated letter would be.)
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let long: String = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        let id = enqueue(
            &*s,
            vec![with(
                "export",
                Some("shop"),
                serde_json::json!({"model": "product", "local_id": long}),
            )],
            2,
        )
        .await[0];
        let found = s.record_jobs("product", &long, &[], 10).await.unwrap();
        assert_eq!(found.len(), 1, "{name}");
        assert_eq!(found[0].id, id);
        let one = s
            .record_jobs("product", "p1", &[("shop".into(), "X1".into())], 1)
            .await
            .unwrap();
        assert_eq!(one.len(), 1, "{name}: limited");
    }
}
