//! Bindings: one external id ↔ one local id per backend and model, found
//! either way, refused when either side is bound elsewhere, listed by
//! page and counted per model. Runs on SQLite and (when configured)
//! PostgreSQL.

use junction_runtime::storage::StorageError;

use super::storages;

#[tokio::test]
async fn a_binding_is_one_pair_found_both_ways_and_refused_when_taken() {
    for (name, s, _dir) in storages().await {
        s.bind("shop", "customer", "e1", "l1", 1_000, Some(r#"{"a":1}"#))
            .await
            .unwrap();
        assert_eq!(
            s.binding_to_local("shop", "customer", "e1")
                .await
                .unwrap()
                .as_deref(),
            Some("l1"),
            "{name}"
        );
        assert_eq!(
            s.binding_to_external("shop", "customer", "l1")
                .await
                .unwrap()
                .as_deref(),
            Some("e1"),
            "{name}"
        );
        // Another backend binds the same local record its own way.
        s.bind("crm", "customer", "x9", "l1", 1_000, None)
            .await
            .unwrap();
        for (ext, local) in [("e2", "l1"), ("e1", "l2")] {
            let err = s
                .bind("shop", "customer", ext, local, 1_001, None)
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::Rejected(_)), "{name}: {err}");
        }
        // Binding again keeps the values last synced when none are given.
        s.bind("shop", "customer", "e1", "l1", 2_000, None)
            .await
            .unwrap();
        let b = s.binding("shop", "customer", "e1").await.unwrap().unwrap();
        assert_eq!(
            (b.sync_date, b.synced.as_deref()),
            (2_000, Some(r#"{"a":1}"#)),
            "{name}"
        );
        assert_eq!(
            s.binding_of_local("shop", "customer", "l1")
                .await
                .unwrap()
                .unwrap()
                .external_id,
            "e1",
            "{name}"
        );
        assert!(s.unbind("shop", "customer", "l1").await.unwrap(), "{name}");
        assert!(
            !s.unbind("shop", "customer", "l1").await.unwrap(),
            "{name}: gone"
        );
        assert_eq!(
            s.binding_to_local("shop", "customer", "e1").await.unwrap(),
            None
        );
        assert_eq!(
            s.binding_to_local("crm", "customer", "x9")
                .await
                .unwrap()
                .as_deref(),
            Some("l1"),
            "{name}: the other backend's binding stays"
        );
    }
}

#[tokio::test]
async fn bindings_are_read_in_bulk_paged_and_counted_per_model() {
    for (name, s, _dir) in storages().await {
        // More than one IN list's worth, so the chunking shows.
        let ext: Vec<String> = (0..1_203).map(|i| format!("e{i:05}")).collect();
        for (i, e) in ext.iter().enumerate() {
            s.bind("shop", "product", e, &format!("p{i}"), 1_000, None)
                .await
                .unwrap();
        }
        s.bind("shop", "order", "o1", "lo1", 1_000, None)
            .await
            .unwrap();
        let mut asked = ext.clone();
        asked.push("missing".into());
        let found = s.bindings_of("shop", "product", &asked).await.unwrap();
        assert_eq!(found.len(), 1_203, "{name}: the existing ones");
        let page = s
            .bindings_page("shop", "product", Some("e00099"), 3)
            .await
            .unwrap();
        assert_eq!(
            page.iter()
                .map(|b| b.external_id.as_str())
                .collect::<Vec<_>>(),
            vec!["e00100", "e00101", "e00102"],
            "{name}"
        );
        assert_eq!(
            s.binding_counts("shop").await.unwrap(),
            vec![("order".to_string(), 1), ("product".to_string(), 1_203)],
            "{name}"
        );
    }
}
