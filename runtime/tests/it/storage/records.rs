//! Records: batches of writes (planned, refused one by one, written in
//! multi-row statements) and their natural keys.
//! Runs on SQLite and (when configured) PostgreSQL.

use super::storages;
use junction_runtime::features::MatchKey;
use junction_runtime::storage::{BindWrite, RecordWrite, Storage, StorageError};

pub(super) fn put(
    model: &str,
    id: &str,
    data: serde_json::Value,
    expected: Option<u64>,
) -> RecordWrite {
    RecordWrite {
        model: model.into(),
        id: id.into(),
        data: data.to_string(),
        expected_version: expected,
        origin_backend: Some("shop".into()),
        bind: None,
        keys: None,
    }
}

/// A page of more records than one statement takes (a connector may
/// return any number per page): every write, binding and lease lands,
/// and each write's event is its own.
#[tokio::test]
async fn a_batch_larger_than_one_statement_is_written_whole() {
    for (name, s, _dir) in storages().await {
        let n = 1_200;
        let writes: Vec<RecordWrite> = (0..n)
            .map(|i| {
                let mut w = put(
                    "product",
                    &format!("p{i}"),
                    serde_json::json!({"i": i}),
                    None,
                );
                w.bind = Some(BindWrite {
                    backend: "shop".into(),
                    external_id: format!("E{i}"),
                    sync_date: 5,
                    synced: None,
                });
                w
            })
            .collect();
        let out = s.put_records(&writes, 2).await.unwrap();
        let mut last = 0;
        for (i, o) in out.iter().enumerate() {
            let (record, event) = o.as_ref().unwrap().as_ref().unwrap();
            assert_eq!(record.id, format!("p{i}"), "{name}");
            assert_eq!(
                event.event.local_id.as_deref(),
                Some(record.id.as_str()),
                "{name}"
            );
            assert!(event.id > last, "{name}: events in the order of the writes");
            last = event.id;
        }
        let stored = s.undispatched(n).await.unwrap();
        for (o, e) in out.iter().zip(&stored) {
            let (record, event) = o.as_ref().unwrap().as_ref().unwrap();
            assert_eq!(e.id, event.id, "{name}");
            assert_eq!(
                e.event.payload, record.data,
                "{name}: the id is this record's event"
            );
        }
        assert_eq!(
            s.binding_counts("shop").await.unwrap(),
            vec![("product".to_string(), i64::from(n))],
            "{name}"
        );
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        assert!(
            s.lock(&keys, "a", 1, 100).await.unwrap().iter().all(|t| *t),
            "{name}"
        );
        assert!(
            s.lock(&keys, "b", 2, 100)
                .await
                .unwrap()
                .iter()
                .all(|t| !*t),
            "{name}"
        );
        s.unlock(&keys, "a").await.unwrap();
        assert!(
            s.lock(&keys, "b", 3, 100).await.unwrap().iter().all(|t| *t),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_record_writes_refuses_one_and_keeps_the_others() {
    for (name, s, _dir) in storages().await {
        s.put_record(&put("product", "p1", serde_json::json!({"a": 1}), None), 1)
            .await
            .unwrap();
        let mut bound = put("product", "p2", serde_json::json!({"a": 2}), Some(0));
        bound.bind = Some(BindWrite {
            backend: "shop".into(),
            external_id: "E2".into(),
            sync_date: 5,
            synced: Some(r#"{"a":2}"#.into()),
        });
        // p3 wants E2 too: the binding is taken, so p3 is refused whole.
        let mut clash = put("product", "p3", serde_json::json!({"a": 3}), Some(0));
        clash.bind = Some(BindWrite {
            backend: "shop".into(),
            external_id: "E2".into(),
            sync_date: 5,
            synced: None,
        });
        let out = s
            .put_records(
                &[
                    put("product", "p1", serde_json::json!({"a": 9}), Some(7)),
                    bound,
                    clash,
                    put("product", "p4", serde_json::json!([1]), None),
                ],
                2,
            )
            .await
            .unwrap();
        assert!(
            matches!(out[0], Err(StorageError::VersionConflict { .. })),
            "{name}: {:?}",
            out[0]
        );
        assert!(matches!(out[1], Ok(Some(_))), "{name}");
        assert!(
            matches!(out[2], Err(StorageError::Rejected(_))),
            "{name}: {:?}",
            out[2]
        );
        assert!(out[3].is_err(), "{name}: not an object");
        assert_eq!(
            s.record("product", "p1").await.unwrap().unwrap().version,
            1,
            "{name}"
        );
        assert!(s.record("product", "p2").await.unwrap().is_some(), "{name}");
        assert!(
            s.record("product", "p3").await.unwrap().is_none(),
            "{name}: nothing half-written"
        );
        let b = s.binding("shop", "product", "E2").await.unwrap().unwrap();
        assert_eq!((b.local_id.as_str(), b.sync_date), ("p2", 5), "{name}");
        assert_eq!(b.synced.as_deref(), Some(r#"{"a":2}"#), "{name}");
        // A bind without a snapshot keeps the last one.
        s.bind("shop", "product", "E2", "p2", 9, None)
            .await
            .unwrap();
        let b = s.binding("shop", "product", "E2").await.unwrap().unwrap();
        assert_eq!(
            (b.sync_date, b.synced.as_deref()),
            (9, Some(r#"{"a":2}"#)),
            "{name}"
        );
        let many = s
            .bindings_of("shop", "product", &["E2".into(), "E9".into()])
            .await
            .unwrap();
        assert_eq!(many.len(), 1, "{name}");
        let records = s
            .records_of("product", &["p1".into(), "p2".into(), "p404".into()])
            .await
            .unwrap();
        assert_eq!(records.len(), 2, "{name}");
        assert!(s.unbind("shop", "product", "p2").await.unwrap(), "{name}");
        assert!(!s.unbind("shop", "product", "p2").await.unwrap(), "{name}");
    }
}

fn key(name: &str, value: &str) -> MatchKey {
    MatchKey {
        name: name.into(),
        value: value.into(),
    }
}

fn write(id: &str, data: &str, keys: Option<Vec<MatchKey>>) -> RecordWrite {
    RecordWrite {
        model: "customer".into(),
        id: id.into(),
        data: data.into(),
        expected_version: None,
        origin_backend: None,
        bind: None,
        keys,
    }
}

async fn holders(s: &dyn Storage, keys: &[MatchKey]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = s
        .records_by_keys("customer", keys)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, id)| (k.value, id))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn record_keys_are_written_with_their_record_replaced_found_and_deleted_with_it() {
    let long = "x".repeat(5000);
    for (name, s, _dir) in storages().await {
        let s = &*s;
        let ada = vec![key("email", "ada@example.com"), key("note", &long)];
        s.put_records(
            &[
                write("c1", r#"{"a":1}"#, Some(ada.clone())),
                write(
                    "c2",
                    r#"{"a":2}"#,
                    Some(vec![key("email", "ada@example.com")]),
                ),
                write("c3", r#"{"a":3}"#, None),
            ],
            1,
        )
        .await
        .unwrap();
        assert_eq!(
            holders(s, &ada).await,
            vec![
                ("ada@example.com".into(), "c1".into()),
                ("ada@example.com".into(), "c2".into()),
                (long.clone(), "c1".into()),
            ],
            "{name}: found by both keys, the long one as asked"
        );
        // Unchanged data, new keys: the keys are replaced all the same.
        let out = s
            .put_records(
                &[write(
                    "c2",
                    r#"{"a":2}"#,
                    Some(vec![key("email", "bob@example.com")]),
                )],
                2,
            )
            .await
            .unwrap();
        assert!(
            out[0].as_ref().unwrap().is_none(),
            "{name}: no change, no event"
        );
        assert_eq!(
            holders(
                s,
                &[
                    key("email", "ada@example.com"),
                    key("email", "bob@example.com")
                ]
            )
            .await,
            vec![
                ("ada@example.com".into(), "c1".into()),
                ("bob@example.com".into(), "c2".into()),
            ],
            "{name}"
        );
        // A refused write (a version conflict) leaves the keys as they were.
        let mut stale = write(
            "c2",
            r#"{"a":9}"#,
            Some(vec![key("email", "eve@example.com")]),
        );
        stale.expected_version = Some(7);
        let out = s.put_records(&[stale], 3).await.unwrap();
        assert!(out[0].is_err(), "{name}");
        assert!(
            holders(s, &[key("email", "eve@example.com")])
                .await
                .is_empty(),
            "{name}"
        );
        // Deleted with the record.
        s.delete_record("customer", "c1", None, 4).await.unwrap();
        assert!(holders(s, &ada).await.is_empty(), "{name}: gone with c1");
        assert!(
            holders(s, &[key("email", "x")]).await.is_empty(),
            "{name}: nothing for an unknown key"
        );
    }
}
