//! Storage conformance, natural keys: a record's match keys written in
//! its write's transaction (replacing the old ones, even when the data did
//! not change), found by key with values over 256 bytes stored hashed, and
//! gone with the record. Runs on SQLite and (when configured) PostgreSQL,
//! like `storage`.

use junction_runtime::features::MatchKey;
use junction_runtime::storage::{RecordWrite, Storage};

use super::storage::storages;

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
