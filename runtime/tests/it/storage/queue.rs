//! The queue's hot paths: candidates and claims, completions (the
//! dialects' batch writes), heartbeats, expired leases, release.
//! Runs on SQLite and (when configured) PostgreSQL.

use super::{candidate_ids, claim, done, enqueue, job, start_all, state, storages};
use junction_runtime::capabilities::egress::AuditEntry;
use junction_runtime::host::{LogLevel, LogLine, LogSource};
use junction_runtime::queue::job::{Completion, JobState, NewJob, Outcome};
use junction_runtime::storage::postgres::PgStorage;
use junction_runtime::storage::{ClaimRequest, Storage};

#[tokio::test]
async fn candidates_come_in_run_order_and_respect_eta() {
    for (name, s, _dir) in storages().await {
        let mut a = job("a");
        a.priority = 5;
        a.eta = 10;
        let mut b = job("b");
        b.priority = 1;
        b.eta = 20;
        let mut c = job("c");
        c.priority = 5;
        c.eta = 5;
        let mut later = job("later");
        later.eta = 1000;
        let ids = enqueue(&*s, vec![a, b, c, later], 1).await;
        let got = candidate_ids(&*s, &claim(100)).await;
        assert_eq!(got, [ids[1], ids[2], ids[0]], "{name}");
    }
}

#[tokio::test]
async fn full_and_stopped_channels_are_skipped() {
    for (name, s, _dir) in storages().await {
        let mut shop = job("a");
        shop.channel = "root.shop".into();
        let mut orders = job("b");
        orders.channel = "root.shop.orders".into();
        let mut shopping = job("c");
        shopping.channel = "root.shopping".into();
        let mut crm = job("d");
        crm.channel = "root.crm".into();
        let ids = enqueue(&*s, vec![shop, orders, shopping, crm], 1).await;
        let mut req = claim(100);
        req.full_channels = vec!["root.shop".into()];
        let got = candidate_ids(&*s, &req).await;
        assert_eq!(
            got,
            [ids[2], ids[3]],
            "{name}: root.shop and root.shop.orders are full"
        );

        // A sequential channel stops while it holds a failed job.
        let mut failed = job("e");
        failed.channel = "root.crm".into();
        let f = s.enqueue(&[failed], 2).await.unwrap()[0].id;
        s.claim(&[f], &claim(100)).await.unwrap();
        let mut c = done(f);
        c.outcome = Outcome::Failed {
            kind: "permanent".into(),
            message: "no".into(),
        };
        s.complete(&[c], &[], 101).await.unwrap();
        let mut req = claim(100);
        req.sequential_channels = vec!["root.crm".into()];
        let got = candidate_ids(&*s, &req).await;
        assert!(
            !got.contains(&ids[3]),
            "{name}: root.crm is stopped by its failed job"
        );
    }
}

#[tokio::test]
async fn backends_holding_their_share_are_left_out_of_claims() {
    for (name, s, _dir) in storages().await {
        let of = |backend: Option<&str>| {
            let mut j = job("f");
            j.backend = backend.map(str::to_string);
            j
        };
        let ids = enqueue(
            &*s,
            vec![
                of(Some("hostile")),
                of(Some("hostile")),
                of(Some("shop")),
                of(None),
            ],
            1,
        )
        .await;
        let mut req = claim(100);
        req.held_backends = vec!["hostile".into()];
        let got = candidate_ids(&*s, &req).await;
        assert_eq!(got, [ids[2], ids[3]], "{name}: candidates");
        // The one-statement claim leaves them out as well.
        let claimed: Vec<i64> = s
            .claim_next(&req)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(claimed, [ids[2], ids[3]], "{name}: claim_next");
        req.held_backends.clear();
        let rest: Vec<i64> = s
            .claim_next(&req)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(rest, [ids[0], ids[1]], "{name}: once it holds less");
    }
}

#[tokio::test]
async fn claims_take_only_pending_jobs() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        let first = s.claim(&[id], &claim(10)).await.unwrap();
        assert_eq!(first.len(), 1, "{name}");
        assert_eq!(first[0].state, JobState::Enqueued);
        assert_eq!(first[0].lease_until, Some(1010));
        assert_eq!(first[0].node.as_deref(), Some("node-a"));
        assert!(s.claim(&[id], &claim(11)).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn completions_record_outcomes_logs_and_audit() {
    for (name, s, _dir) in storages().await {
        let ids = enqueue(&*s, vec![job("a"), job("b"), job("c")], 1).await;
        start_all(&*s, 10).await;
        let mut ok = done(ids[0]);
        ok.log = vec![LogLine {
            level: LogLevel::Info,
            source: LogSource::Guest,
            message: "hello".into(),
        }];
        ok.audit = vec![AuditEntry {
            method: "GET".into(),
            scheme: "https".into(),
            host: "shop.example.com".into(),
            port: 443,
            path: "/p?x".into(),
            status: Some(200),
            denied: None,
            error: None,
            request_bytes: 0,
            response_bytes: 10,
            duration_ms: 3,
        }];
        let retry = Completion {
            outcome: Outcome::Retry {
                eta: 500,
                count_try: true,
                kind: "retryable".into(),
                message: "later".into(),
            },
            ..done(ids[1])
        };
        let fail = Completion {
            outcome: Outcome::Failed {
                kind: "permanent".into(),
                message: "broken".into(),
            },
            ..done(ids[2])
        };
        s.complete(&[ok, retry, fail], &[], 50).await.unwrap();
        let a = s.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((a.state, a.tries), (JobState::Done, 1), "{name}");
        assert_eq!(a.result.as_deref(), Some("\"ok\""));
        assert_eq!(a.connector_digest.as_deref(), Some("sha256:abc"));
        assert_eq!(s.job_log(ids[0]).await.unwrap()[0].message, "hello");
        assert_eq!(
            s.job_audit(ids[0]).await.unwrap()[0].entry.host,
            "shop.example.com"
        );
        let b = s.job(ids[1]).await.unwrap().unwrap();
        assert_eq!((b.state, b.tries, b.eta), (JobState::Pending, 1, 500));
        assert_eq!(b.error_message.as_deref(), Some("later"));
        let c = s.job(ids[2]).await.unwrap().unwrap();
        assert_eq!(
            (c.state, c.error_kind.as_deref()),
            (JobState::Failed, Some("permanent"))
        );
        // A report for a job that is no longer running is ignored.
        s.complete(&[done(ids[2])], &[], 60).await.unwrap();
        assert_eq!(state(&*s, ids[2]).await, JobState::Failed);
    }
}

#[tokio::test]
async fn begun_jobs_are_marked_started_with_their_start_time() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await;
        s.complete(&[], &[(id, 12)], 13).await.unwrap();
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.started_at),
            (JobState::Started, Some(12)),
            "{name}"
        );
        s.complete(&[done(id)], &[], 20).await.unwrap();
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.started_at), (JobState::Done, Some(12)));
    }
}

#[tokio::test]
async fn retries_that_do_not_count_keep_the_try_count() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await;
        let c = Completion {
            outcome: Outcome::Retry {
                eta: 20,
                count_try: false,
                kind: "locked".into(),
                message: "busy".into(),
            },
            ..done(id)
        };
        s.complete(&[c], &[], 15).await.unwrap();
        assert_eq!(s.job(id).await.unwrap().unwrap().tries, 0, "{name}");
    }
}

#[tokio::test]
async fn expired_leases_return_to_the_queue_and_count_a_try() {
    for (name, s, _dir) in storages().await {
        let mut once = job("once");
        once.max_retries = 1;
        let ids = enqueue(&*s, vec![job("f"), once], 1).await;
        start_all(&*s, 10).await; // lease until 1010
        s.complete(&[], &[(ids[0], 11), (ids[1], 11)], 11)
            .await
            .unwrap(); // both begun: the try counts
        assert!(s.requeue_expired(1000).await.unwrap().is_empty(), "{name}");
        s.heartbeat("node-b", &ids, 5000).await.unwrap(); // another node's beat changes nothing
        let mut back = s.requeue_expired(1011).await.unwrap();
        back.sort();
        assert_eq!(back, ids);
        let f = s.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((f.state, f.tries), (JobState::Pending, 1));
        assert_eq!(f.error_kind.as_deref(), Some("lease-expired"));
        let once = s.job(ids[1]).await.unwrap().unwrap();
        assert_eq!(once.state, JobState::Failed, "out of tries");
        // A heartbeat keeps a running job's lease alive.
        start_all(&*s, 2000).await;
        s.heartbeat("node-a", &[ids[0]], 9000).await.unwrap();
        assert!(s.requeue_expired(5000).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_job_claimed_ahead_but_never_begun_is_not_charged_a_try() {
    for (name, s, _dir) in storages().await {
        let mut once = job("once");
        once.max_retries = 1;
        let id = s.enqueue(&[once], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await; // claimed ahead, lease until 1010, never begun
        assert_eq!(s.requeue_expired(1011).await.unwrap(), vec![id], "{name}");
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.tries), (JobState::Pending, 0), "{name}");
        assert_eq!(j.error_kind, None, "{name}: nothing failed");
    }
}

#[tokio::test]
async fn released_jobs_go_back_without_counting() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 10).await;
        s.release("node-a", &[id], 20).await.unwrap();
        let j = s.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.tries), (JobState::Pending, 0), "{name}");
    }
}

#[tokio::test]
async fn shared_channel_limits_hold_across_nodes() {
    for (name, s, _dir) in storages().await {
        let in_channel = |channel: &str| NewJob {
            channel: channel.into(),
            ..job("f")
        };
        let ids = enqueue(
            &*s,
            vec![
                in_channel("root.shop"),
                in_channel("root.shop.orders"),
                in_channel("root.shop"),
                in_channel("root.crm"),
            ],
            1,
        )
        .await;
        let limited = |node: &str| ClaimRequest {
            node: node.into(),
            shared_limits: vec![("root.shop".into(), 2), ("root.shop.orders".into(), 1)],
            ..claim(2)
        };
        // Node a may take two jobs under root.shop, and root.crm.
        let a = s.claim(&ids, &limited("node-a")).await.unwrap();
        let mut got: Vec<i64> = a.iter().map(|j| j.id).collect();
        got.sort_unstable();
        assert_eq!(got, vec![ids[0], ids[1], ids[3]], "{name}");
        // Node b finds root.shop full: node a's jobs count for it too.
        assert!(
            s.claim(&ids, &limited("node-b")).await.unwrap().is_empty(),
            "{name}"
        );
        s.complete(&[done(ids[0])], &[], 3).await.unwrap();
        let b = s.claim(&ids, &limited("node-b")).await.unwrap();
        assert_eq!(
            b.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[2]],
            "{name}"
        );
    }
}

/// The dialects bind a batch's ids their own way (an array; JSON text
/// read with `json_each`) and write a batch's starts and ends in their own
/// statements (UNNEST; VALUES in chunks): a batch larger than any chunk,
/// begun and finished at once, is claimed, kept alive and completed whole,
/// each job written with its own start, and the job waiting on all of them
/// is released.
#[tokio::test]
async fn a_batch_larger_than_any_chunk_is_claimed_kept_and_completed_whole() {
    for (name, s, _dir) in storages().await {
        const N: usize = 1_203;
        let parents = s.enqueue(&vec![job("parent"); N], 1).await.unwrap();
        let mut child = job("child");
        child.parents = parents
            .iter()
            .map(|e| junction_runtime::queue::job::Parent::Stored(e.id))
            .collect();
        let child = s.enqueue(&[child], 1).await.unwrap()[0].id;
        assert_eq!(
            state(&*s, child).await,
            JobState::WaitDependencies,
            "{name}"
        );
        let request = ClaimRequest {
            limit: N as u32,
            ..claim(10)
        };
        let ids = candidate_ids(&*s, &request).await;
        assert_eq!(ids.len(), N, "{name}");
        let claimed = s.claim(&ids, &request).await.unwrap();
        assert_eq!(claimed.len(), N, "{name}: every id of the list claimed");
        s.heartbeat("node-a", &ids, 99_000).await.unwrap();
        for id in [ids[0], ids[N / 2], ids[N - 1]] {
            let lease = s.job(id).await.unwrap().unwrap().lease_until;
            assert_eq!(lease, Some(99_000), "{name}: the whole list kept alive");
        }
        // Begun and finished in one batch: each start written with its end.
        let begun: Vec<(i64, i64)> = ids.iter().map(|&id| (id, 20 + id % 7)).collect();
        let completions: Vec<_> = ids.iter().map(|&id| done(id)).collect();
        s.complete(&completions, &begun, 60).await.unwrap();
        for &(id, at) in [begun[0], begun[N / 2], begun[N - 1]].iter() {
            let j = s.job(id).await.unwrap().unwrap();
            assert_eq!(j.state, JobState::Done, "{name}");
            assert_eq!(j.started_at, Some(at), "{name}: its own start time");
            assert_eq!(j.tries, 1, "{name}");
        }
        assert_eq!(
            state(&*s, child).await,
            JobState::Pending,
            "{name}: released"
        );
    }
}

/// Another node's new jobs wake this one where the database can push
/// (PostgreSQL's NOTIFY, sent when the enqueueing transaction commits);
/// SQLite offers none, and its nodes poll.
#[tokio::test]
async fn wake_ups_come_from_other_nodes_where_the_database_pushes_them() {
    for (name, s, _dir) in storages().await {
        if name == "sqlite" {
            assert!(s.wakeups().await.is_none(), "sqlite polls");
        }
    }
    let Some((url, schema)) = super::postgres_schema().await else {
        return;
    };
    let a = PgStorage::open(&url, Some(&schema)).await.unwrap();
    let b = PgStorage::open(&url, Some(&schema)).await.unwrap();
    let mut woken = b.wakeups().await.expect("postgres pushes wake-ups");
    // The listener connects in the background: enqueue until it hears.
    let heard = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            a.enqueue(&[job("x")], 1).await.unwrap();
            if tokio::time::timeout(std::time::Duration::from_millis(200), woken.recv())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "node b heard node a's enqueue");
}
