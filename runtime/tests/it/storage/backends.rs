//! Backends: removal with their jobs, state keys and quotas.
//! Runs on SQLite and (when configured) PostgreSQL.

use super::{job, storages};
use junction_runtime::queue::job::{JobState, Parent};
use junction_runtime::storage::{RemoveBackend, StateQuota, StorageError};

#[tokio::test]
async fn state_quotas_count_the_prefix_keys_of_one_backend() {
    for (name, s, _dir) in storages().await {
        let quota = StateQuota {
            prefix: "guest:".into(),
            max_keys: 2,
            max_bytes: 40,
        };
        let q = Some(&quota);
        // Host keys and other backends do not count.
        s.state_set(
            "crm",
            "import:customer:since",
            "x".repeat(100).as_str(),
            1,
            None,
        )
        .await
        .unwrap();
        s.state_set("other", "guest:a", "1", 1, q).await.unwrap();
        s.state_set("other", "guest:b", "1", 1, q).await.unwrap();
        s.state_set("crm", "guest:a", "1", 1, q).await.unwrap();
        s.state_set("crm", "guest:b", "1", 1, q).await.unwrap();
        // Rewriting a key is no new key.
        s.state_set("crm", "guest:b", "22", 2, q).await.unwrap();
        let err = s.state_set("crm", "guest:c", "1", 3, q).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Rejected(m) if m.contains("max_state_keys")),
            "{name}: {err}"
        );
        // Bytes: keys and values together (7 + 1 and 7 + 2 so far).
        let err = s
            .state_set("crm", "guest:a", &"y".repeat(30), 4, q)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::Rejected(m) if m.contains("max_state_bytes")),
            "{name}: {err}"
        );
        assert_eq!(
            s.state_get("crm", "guest:a").await.unwrap().as_deref(),
            Some("1"),
            "{name}: a refused write changes nothing"
        );
        assert_eq!(s.state_get("crm", "guest:c").await.unwrap(), None, "{name}");
        // Bytes, not characters, in what is stored too (each dialect
        // measures them its own way): `guest:b` becomes 10 × "é", 10
        // characters but 20 bytes (usage 8 + 27 = 35). Then 8 bytes for
        // `guest:a` would make 42 counted in bytes, 32 in characters.
        s.state_set("crm", "guest:b", &"é".repeat(10), 5, q)
            .await
            .unwrap();
        let err = s
            .state_set("crm", "guest:a", &"z".repeat(8), 6, q)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StorageError::Rejected(m) if m.contains("42 bytes")),
            "{name}: {err}"
        );
        // 6 bytes fit exactly (40), the old value's byte given back.
        s.state_set("crm", "guest:a", &"z".repeat(6), 7, q)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn removing_a_backend_is_refused_while_it_has_jobs_and_purges_only_when_asked() {
    for (name, s, _dir) in storages().await {
        for b in ["shop", "crm"] {
            s.put_backend(b, "magento", "2.4.6", "{}", 1).await.unwrap();
            s.bind(b, "product", "E1", "p1", 1, None).await.unwrap();
            s.state_set(b, "cursor", "x", 1, None).await.unwrap();
        }
        let mut live = job("junction.noop");
        live.backend = Some("shop".into());
        let parent = s.enqueue(&[live], 1).await.unwrap()[0].id;
        // A job of no backend waiting for the shop's job is cancelled with it.
        let mut child = job("junction.noop");
        child.parents = vec![Parent::Stored(parent)];
        let child = s.enqueue(&[child], 1).await.unwrap()[0].id;
        let g0 = s.registry_generation().await.unwrap();

        let busy = s
            .remove_backend("shop", RemoveBackend::default(), 2)
            .await
            .unwrap_err();
        assert!(
            matches!(busy, StorageError::BackendBusy { jobs: 1, .. }),
            "{name}: {busy}"
        );
        assert_eq!(
            s.backends().await.unwrap().len(),
            2,
            "{name}: nothing removed"
        );
        assert_eq!(s.registry_generation().await.unwrap(), g0, "{name}");

        let how = RemoveBackend {
            cancel_jobs: true,
            purge: false,
        };
        let removed = s.remove_backend("shop", how, 3).await.unwrap().unwrap();
        assert_eq!(removed.cancelled_jobs, 2, "{name}");
        assert_eq!((removed.bindings, removed.state_keys), (0, 0), "{name}");
        for id in [parent, child] {
            let j = s.job(id).await.unwrap().unwrap();
            assert_eq!(j.state, JobState::Cancelled, "{name}: job {id}");
        }
        assert!(s.registry_generation().await.unwrap() > g0, "{name}");
        let names: Vec<String> = s
            .backends()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["crm"], "{name}");
        assert_eq!(
            s.binding_to_local("shop", "product", "E1")
                .await
                .unwrap()
                .as_deref(),
            Some("p1"),
            "{name}: bindings kept"
        );
        assert_eq!(
            s.state_get("shop", "cursor").await.unwrap().as_deref(),
            Some("x"),
            "{name}: state kept"
        );
        assert!(
            s.remove_backend("shop", how, 4).await.unwrap().is_none(),
            "{name}"
        );

        let purge = RemoveBackend {
            cancel_jobs: false,
            purge: true,
        };
        let removed = s.remove_backend("crm", purge, 5).await.unwrap().unwrap();
        assert_eq!((removed.bindings, removed.state_keys), (1, 1), "{name}");
        assert!(
            s.binding_to_local("crm", "product", "E1")
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(
            s.state_get("crm", "cursor").await.unwrap().is_none(),
            "{name}"
        );
        // The other backend's kept rows are untouched by the purge.
        assert!(
            s.binding_to_local("shop", "product", "E1")
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
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
