//! Leases: rows for schedules and other holders, the dialect's own for
//! jobs (advisory locks on PostgreSQL), and the group commit's batches.
//! Runs on SQLite and (when configured) PostgreSQL.

use junction_runtime::storage::StorageError;

use super::records::put;
use super::{done, job, start_all, storages};

#[tokio::test]
async fn leases_exclude_other_holders_until_they_expire() {
    for (name, s, _dir) in storages().await {
        let keys = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            s.lock(&keys, "w1", 0, 100).await.unwrap(),
            vec![true, true],
            "{name}"
        );
        assert_eq!(
            s.lock(&["b".into(), "c".into()], "w2", 50, 150)
                .await
                .unwrap(),
            vec![false, true],
            "{name}"
        );
        // The holder itself may take it again; a lapsed lease is free.
        assert_eq!(
            s.lock(&["a".into()], "w1", 60, 160).await.unwrap(),
            vec![true],
            "{name}"
        );
        assert_eq!(
            s.lock(&["b".into()], "w2", 101, 200).await.unwrap(),
            vec![true],
            "{name}"
        );
        // Only the holder gives a lease back.
        s.unlock(&["a".into()], "w2").await.unwrap();
        assert_eq!(
            s.lock(&["a".into()], "w3", 70, 170).await.unwrap(),
            vec![false],
            "{name}"
        );
        s.unlock(&["a".into()], "w1").await.unwrap();
        assert_eq!(
            s.lock(&["a".into()], "w3", 70, 170).await.unwrap(),
            vec![true],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_jobs_next_try_takes_over_its_earlier_tries_leases() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        start_all(&*s, 2).await;
        let r = vec!["r".to_string()];
        // The try on node-a took a lease, then node-a died; the job runs
        // again (here: still claimed) under another node's name.
        assert_eq!(
            s.lock(&r, &format!("job-{id}.aa:node-a"), 3, 1_000_000)
                .await
                .unwrap(),
            vec![true],
            "{name}"
        );
        // Two parts of one attempt (its dependency imports) exclude each
        // other: one importing a record the other imports would bind it
        // twice.
        assert_eq!(
            s.lock(&r, &format!("job-{id}.aa:node-a:1:0"), 3, 1_000_000)
                .await
                .unwrap(),
            vec![false],
            "{name}: a part of the same attempt waits"
        );
        assert_eq!(
            s.lock(&r, &format!("job-{id}.bb:node-b"), 4, 1_000_000)
                .await
                .unwrap(),
            vec![true],
            "{name}: its own earlier try does not block it"
        );
        assert_eq!(
            s.lock(&r, "job-999:node-c", 5, 1_000_000).await.unwrap(),
            vec![false],
            "{name}: another job still does"
        );
    }
}

#[tokio::test]
async fn a_jobs_lease_lapses_when_the_job_stops_running() {
    for (name, s, _dir) in storages().await {
        let id = s.enqueue(&[job("f")], 1).await.unwrap()[0].id;
        assert_eq!(start_all(s.as_ref(), 2).await, vec![id], "{name}");
        let holder = format!("job-{id}:node-a");
        let r = vec!["r".to_string()];
        assert_eq!(
            s.lock(&r, &holder, 3, 1_000_000).await.unwrap(),
            vec![true],
            "{name}"
        );
        assert_eq!(
            s.lock(&r, "job-999:node-b", 4, 1_000_000).await.unwrap(),
            vec![false],
            "{name}: held while the job runs"
        );
        s.complete(&[done(id)], &[], 5).await.unwrap();
        assert_eq!(
            s.lock(&r, "job-999:node-b", 6, 1_000_000).await.unwrap(),
            vec![true],
            "{name}: the holder job is done, so its lease lapsed"
        );
    }
}

#[tokio::test]
async fn a_write_batch_answers_each_write_as_its_own_method_would() {
    use junction_runtime::storage::{WriteDone, WriteOp};
    for (name, s, _dir) in storages().await {
        let out = s
            .write_batch(&[
                WriteOp::Lock {
                    keys: vec!["k".into()],
                    holder: "a".into(),
                    now: 1,
                    until: 100,
                },
                WriteOp::Lock {
                    keys: vec!["k".into()],
                    holder: "b".into(),
                    now: 1,
                    until: 100,
                },
                WriteOp::Put {
                    writes: vec![
                        put("product", "p1", serde_json::json!({"a": 1}), Some(0)),
                        put("product", "p2", serde_json::json!({"a": 1}), Some(3)),
                    ],
                    now: 2,
                },
                WriteOp::Unlock {
                    keys: vec!["k".into()],
                    holder: "a".into(),
                },
            ])
            .await
            .unwrap();
        assert!(
            matches!(&out[0], WriteDone::Locked(t) if t == &[true]),
            "{name}: {out:?}"
        );
        assert!(
            matches!(&out[1], WriteDone::Locked(t) if t == &[false]),
            "{name}: {out:?}"
        );
        match &out[2] {
            WriteDone::Put(p) => {
                assert!(matches!(p[0], Ok(Some(_))), "{name}");
                assert!(
                    matches!(p[1], Err(StorageError::VersionConflict { .. })),
                    "{name}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(matches!(out[3], WriteDone::Unlocked), "{name}");
        assert_eq!(
            s.lock(&["k".into()], "b", 3, 100).await.unwrap(),
            vec![true],
            "{name}"
        );
        assert!(s.record("product", "p2").await.unwrap().is_none(), "{name}");
    }
}
