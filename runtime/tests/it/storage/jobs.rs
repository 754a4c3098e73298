//! Jobs: enqueueing with identity keys and dependencies, operators' actions,
//! listing and counting by filter, the counts the database keeps, purging.
//! Runs on SQLite and (when configured) PostgreSQL.

use super::{done, enqueue, job, postgres_schema, start_all, state, storages};
use junction_runtime::queue::job::{
    Completion, JobAction, JobFilter, JobState, NewJob, Outcome, Parent,
};
use junction_runtime::queue::retention::PurgeScope;
use junction_runtime::storage::postgres::PgStorage;
use junction_runtime::storage::{Storage, StorageError};

#[tokio::test]
async fn jobs_round_trip() {
    for (name, s, _dir) in storages().await {
        let mut j = job("import-record");
        j.args = r#"{"id":7}"#.into();
        j.backend = Some("shop".into());
        j.priority = 3;
        j.eta = 42;
        j.channel = "root.shop".into();
        j.description = Some("import 7".into());
        let out = s.enqueue(&[j], 5).await.unwrap();
        let got = s.job(out[0].id).await.unwrap().unwrap();
        assert_eq!(got.function, "import-record", "{name}");
        assert_eq!(got.args, r#"{"id":7}"#);
        assert_eq!(got.backend.as_deref(), Some("shop"));
        assert_eq!((got.priority, got.eta, got.created_at), (3, 42, 5));
        assert_eq!(got.channel, "root.shop");
        assert_eq!(got.state, JobState::Pending);
        assert_eq!(got.max_retries, 3);
        assert!(s.job(9999).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn identity_keys_collapse_live_jobs_only() {
    for (name, s, _dir) in storages().await {
        let mut j = job("f");
        j.identity_key = Some("k1".into());
        let out = s.enqueue(&[j.clone(), j.clone()], 1).await.unwrap();
        assert!(!out[0].deduplicated && out[1].deduplicated, "{name}");
        assert_eq!(out[0].id, out[1].id);
        let again = s.enqueue(&[j.clone()], 2).await.unwrap();
        assert_eq!(again[0].id, out[0].id);
        // Claimed but not started, it still collapses; once started, a new
        // job with the same key is a new job (the old one may have read
        // its input already).
        start_all(&*s, 10).await;
        assert!(s.enqueue(&[j.clone()], 10).await.unwrap()[0].deduplicated);
        s.complete(&[], &[(out[0].id, 10)], 10).await.unwrap();
        let fresh = s.enqueue(&[j], 11).await.unwrap();
        assert!(!fresh[0].deduplicated);
        assert_ne!(fresh[0].id, out[0].id);
    }
}

#[tokio::test]
async fn concurrent_enqueues_of_one_key_create_one_job() {
    for (name, s, _dir) in storages().await {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut j = job("f");
                    j.identity_key = Some("same".into());
                    s.enqueue(&[j], 1).await.unwrap()[0].id
                })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{name}");
        assert_eq!(s.jobs(&JobFilter::default()).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn dependencies_chain_group_fail_and_cancel() {
    for (name, s, _dir) in storages().await {
        // a → b, and c waits for both a and b (a group).
        let mut b = job("b");
        b.parents = vec![Parent::InBatch(0)];
        let mut c = job("c");
        c.parents = vec![Parent::InBatch(0), Parent::InBatch(1)];
        let ids = enqueue(&*s, vec![job("a"), b, c], 1).await;
        assert_eq!(
            state(&*s, ids[1]).await,
            JobState::WaitDependencies,
            "{name}"
        );
        assert_eq!(s.parents(ids[2]).await.unwrap(), [ids[0], ids[1]]);
        assert_eq!(start_all(&*s, 10).await, [ids[0]], "only a is ready");
        s.complete(&[done(ids[0])], &[], 20).await.unwrap();
        assert_eq!(state(&*s, ids[1]).await, JobState::Pending);
        assert_eq!(
            state(&*s, ids[2]).await,
            JobState::WaitDependencies,
            "c still waits for b"
        );
        // b fails: c stays visibly waiting.
        start_all(&*s, 30).await;
        let fail = Completion {
            outcome: Outcome::Failed {
                kind: "permanent".into(),
                message: "no".into(),
            },
            ..done(ids[1])
        };
        s.complete(&[fail], &[], 40).await.unwrap();
        assert_eq!(state(&*s, ids[2]).await, JobState::WaitDependencies);
        // Requeue b, finish it: c becomes pending.
        s.requeue(ids[1], 50).await.unwrap();
        assert_eq!(s.job(ids[1]).await.unwrap().unwrap().tries, 0);
        start_all(&*s, 60).await;
        s.complete(&[done(ids[1])], &[], 70).await.unwrap();
        assert_eq!(state(&*s, ids[2]).await, JobState::Pending);

        // Cancel cascades to every dependent, transitively.
        let mut y = job("y");
        y.parents = vec![Parent::InBatch(0)];
        let mut z = job("z");
        z.parents = vec![Parent::InBatch(1)];
        let t = enqueue(&*s, vec![job("x"), y, z], 80).await;
        let mut cancelled = s.cancel(t[0], 90).await.unwrap();
        cancelled.sort();
        assert_eq!(cancelled, t);
        let err = s.cancel(t[0], 91).await.unwrap_err();
        assert!(matches!(err, StorageError::WrongState { .. }), "{err}");
        // A parent marked done by hand releases its child.
        let mut q = job("q");
        q.parents = vec![Parent::InBatch(0)];
        let m = enqueue(&*s, vec![job("p"), q], 100).await;
        s.mark_done(m[0], 110).await.unwrap();
        assert_eq!(state(&*s, m[1]).await, JobState::Pending);
        // A dependency on a job that does not exist is refused.
        let mut orphan = job("o");
        orphan.parents = vec![Parent::Stored(123456)];
        assert!(matches!(
            s.enqueue(&[orphan], 1).await,
            Err(StorageError::MissingParent { .. })
        ));
    }
}

#[tokio::test]
async fn purge_removes_old_finished_jobs_in_batches() {
    for (name, s, _dir) in storages().await {
        let specs: Vec<NewJob> = (0..5).map(|_| job("f")).collect();
        let ids = enqueue(&*s, specs, 1).await;
        start_all(&*s, 10).await;
        s.complete(&ids.iter().map(|id| done(*id)).collect::<Vec<_>>(), &[], 50)
            .await
            .unwrap();
        s.enqueue(&[job("live")], 60).await.unwrap();
        assert_eq!(
            s.purge(51, 2, &PurgeScope::default()).await.unwrap(),
            2,
            "{name}"
        );
        assert_eq!(s.purge(51, 10, &PurgeScope::default()).await.unwrap(), 3);
        assert_eq!(s.purge(51, 10, &PurgeScope::default()).await.unwrap(), 0);
        let left = s.jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].function, "live");
    }
}

#[tokio::test]
async fn listing_filters_and_counts() {
    for (name, s, _dir) in storages().await {
        let mut a = job("a");
        a.channel = "root.shop".into();
        a.backend = Some("shop".into());
        s.enqueue(&[a, job("b"), job("b")], 1).await.unwrap();
        let filter = JobFilter {
            function: Some("b".into()),
            ..JobFilter::default()
        };
        assert_eq!(s.jobs(&filter).await.unwrap().len(), 2, "{name}");
        let filter = JobFilter {
            backend: Some("shop".into()),
            ..JobFilter::default()
        };
        assert_eq!(s.jobs(&filter).await.unwrap()[0].channel, "root.shop");
        let filter = JobFilter {
            state: Some(JobState::Done),
            ..JobFilter::default()
        };
        assert!(s.jobs(&filter).await.unwrap().is_empty());
        let page = s
            .jobs(&JobFilter {
                limit: 2,
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
        let rest = s
            .jobs(&JobFilter {
                before: Some(page[1].id),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        let counts = s.counts().await.unwrap();
        let pending_root = counts
            .iter()
            .find(|c| c.channel == "root" && c.state == JobState::Pending)
            .unwrap();
        assert_eq!(pending_root.count, 2);
    }
}

/// Jobs by (channel, state, count), counted from the jobs themselves.
pub(super) async fn counted(s: &dyn Storage) -> Vec<(String, JobState, i64)> {
    let jobs = s
        .jobs(&JobFilter {
            limit: 100_000,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let mut by: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for j in jobs {
        *by.entry((j.channel, j.state.to_string())).or_default() += 1;
    }
    by.into_iter()
        .map(|((channel, state), n)| (channel, JobState::parse(&state).unwrap(), n))
        .collect()
}

/// The counts the database keeps, in the same shape.
pub(super) async fn kept(s: &dyn Storage) -> Vec<(String, JobState, i64)> {
    let mut kept: Vec<(String, JobState, i64)> = s
        .counts()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.channel, c.state, c.count))
        .collect();
    kept.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
    kept
}

#[tokio::test]
async fn kept_job_counts_follow_every_kind_of_change() {
    for (name, s, _dir) in storages().await {
        let s = &*s;
        let mut shop = job("a");
        shop.channel = "root.shop".into();
        shop.backend = Some("shop".into());
        let mut waits = job("b");
        waits.parents = vec![Parent::InBatch(0)];
        let ids = enqueue(s, vec![shop, waits, job("c"), job("d"), job("e")], 1).await;
        assert_eq!(kept(s).await, counted(s).await, "{name}: after enqueue");
        assert_eq!(
            kept(s).await.iter().map(|c| c.2).sum::<i64>(),
            5,
            "{name}: every job counted once"
        );

        start_all(s, 10).await;
        assert_eq!(kept(s).await, counted(s).await, "{name}: after claim");
        let failed = Completion {
            outcome: Outcome::Failed {
                kind: "permanent".into(),
                message: "no".into(),
            },
            ..done(ids[2])
        };
        let retry = Completion {
            outcome: Outcome::Retry {
                eta: 30,
                count_try: true,
                kind: "retryable".into(),
                message: "later".into(),
            },
            ..done(ids[3])
        };
        s.complete(&[done(ids[0]), failed, retry], &[(ids[4], 11)], 20)
            .await
            .unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after complete");

        s.requeue(ids[2], 25).await.unwrap();
        s.cancel(ids[3], 26).await.unwrap();
        s.mark_done(ids[1], 27).await.unwrap();
        assert_eq!(
            kept(s).await,
            counted(s).await,
            "{name}: after requeue, cancel, mark done"
        );
        // ids[4] is started with a lease until 1010.
        s.requeue_expired(5_000).await.unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after expiry");

        s.compact_counts().await.unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: after compaction");
        assert!(
            s.purge(100_000, 100, &PurgeScope::default()).await.unwrap() > 0,
            "{name}"
        );
        assert_eq!(kept(s).await, counted(s).await, "{name}: after purge");
        s.compact_counts().await.unwrap();
        assert_eq!(kept(s).await, counted(s).await, "{name}: compacted again");
        assert!(
            !kept(s).await.iter().any(|c| c.2 == 0),
            "{name}: no empty groups are reported"
        );
    }
}

#[tokio::test]
async fn the_oldest_due_job_of_each_channel_counts_pending_and_enqueued_only() {
    for (name, s, _dir) in storages().await {
        let s = &*s;
        let at = |function: &str, channel: &str, eta: i64| NewJob {
            channel: channel.to_string(),
            eta,
            ..job(function)
        };
        let ids = enqueue(
            s,
            vec![
                at("a", "root", 5),
                at("b", "root", 10),
                at("c", "root.shop", 100),
                at("d", "root.crm", 7),
            ],
            1,
        )
        .await;
        let due = |v: Vec<(String, i64)>| {
            let mut v = v;
            v.sort();
            v
        };
        let expected = vec![("root".to_string(), 5), ("root.crm".to_string(), 7)];
        assert_eq!(due(s.oldest_due(50).await.unwrap()), expected, "{name}");
        // Claimed but not begun (enqueued): still waiting to start.
        start_all(s, 50).await;
        assert_eq!(due(s.oldest_due(50).await.unwrap()), expected, "{name}");
        // Begun: no longer waiting.
        s.complete(&[], &[(ids[0], 51)], 51).await.unwrap();
        assert_eq!(
            due(s.oldest_due(51).await.unwrap()),
            vec![("root".to_string(), 10), ("root.crm".to_string(), 7)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn jobs_changed_by_a_session_outside_the_schema_are_still_counted() {
    let Some((url, schema)) = postgres_schema().await else {
        return;
    };
    let pg = PgStorage::open(&url, Some(&schema)).await.unwrap();
    pg.enqueue(&[job("a"), job("b")], 1).await.unwrap();
    // A session whose search path lacks the schema (psql, pgbench, a
    // repair script): the count triggers must still find their table.
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {schema}.jobs SET state = 'cancelled', finished_at = 5 WHERE function = 'a'"
    ))
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    assert_eq!(kept(&pg).await, counted(&pg).await);
}

fn failed_at(id: i64, at: i64) -> Completion {
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

fn done_at(id: i64, at: i64) -> Completion {
    Completion {
        outcome: Outcome::Done { result: None },
        ..failed_at(id, at)
    }
}

#[tokio::test]
async fn acting_on_many_jobs_changes_those_it_applies_to_and_reports_the_rest() {
    for (name, s, _dir) in storages().await {
        let ids = enqueue(&*s, (0..4).map(|_| job("f")).collect(), 1).await;
        start_all(&*s, 10).await;
        s.complete(
            &[
                failed_at(ids[0], 20),
                failed_at(ids[1], 20),
                done_at(ids[2], 20),
            ],
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
        s.complete(&[failed_at(parent, 20)], &[], 20).await.unwrap();
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
        let done: Vec<Completion> = ids.iter().map(|id| done_at(*id, 20)).collect();
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
