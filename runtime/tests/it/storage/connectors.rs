//! Connectors and backends as stored, activations and rollbacks.
//! Runs on SQLite and (when configured) PostgreSQL.

use super::storages;
use junction_runtime::storage::InstalledConnector;

#[tokio::test]
async fn connectors_and_backends_are_stored_once() {
    for (name, s, _dir) in storages().await {
        let c = InstalledConnector {
            digest: "sha256:1".into(),
            name: "magento".into(),
            version: "0.1.0".into(),
            backend_kind: "magento".into(),
            backend_versions: ">=2".into(),
            manifest: "{}".into(),
            installed_at: 1,
            active: false,
        };
        assert!(s.install_connector(&c, b"wasm").await.unwrap(), "{name}");
        assert!(
            !s.install_connector(&c, b"wasm").await.unwrap(),
            "{name}: same digest"
        );
        assert_eq!(s.connectors().await.unwrap(), vec![c.clone()], "{name}");
        assert_eq!(
            s.connector_component("sha256:1").await.unwrap().as_deref(),
            Some(&b"wasm"[..])
        );
        s.put_backend("shop", "magento", "2.4.6", "{\"a\":1}", 1)
            .await
            .unwrap();
        s.put_backend("shop", "magento", "2.4.7", "{\"a\":2}", 2)
            .await
            .unwrap();
        let backends = s.backends().await.unwrap();
        assert_eq!(backends.len(), 1, "{name}");
        assert_eq!(backends[0].config, "{\"a\":2}", "{name}");
        assert!(s.remove_connector("sha256:1").await.unwrap(), "{name}");
        assert!(s.connectors().await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn activations_and_rollbacks_walk_the_history_of_versions() {
    for (name, s, _dir) in storages().await {
        let version = |digest: &str, v: &str| InstalledConnector {
            digest: digest.into(),
            name: "magento".into(),
            version: v.into(),
            backend_kind: "magento".into(),
            backend_versions: ">=2".into(),
            manifest: "{}".into(),
            installed_at: 1,
            active: false,
        };
        let active = || async {
            s.connectors()
                .await
                .unwrap()
                .into_iter()
                .filter(|c| c.active)
                .map(|c| c.digest)
                .collect::<Vec<_>>()
        };
        let g0 = s.registry_generation().await.unwrap();
        for (d, v) in [
            ("sha256:1", "1.0.0"),
            ("sha256:2", "2.0.0"),
            ("sha256:3", "3.0.0"),
        ] {
            s.install_connector(&version(d, v), b"wasm").await.unwrap();
        }
        assert!(active().await.is_empty(), "{name}: installed inactive");
        assert_eq!(s.rollback_connector("magento", 2).await.unwrap(), None);
        for d in ["sha256:1", "sha256:2", "sha256:3"] {
            assert!(s.activate_connector(d, 3).await.unwrap(), "{name}");
            assert_eq!(active().await, vec![d.to_string()], "{name}: one active");
        }
        assert!(!s.activate_connector("sha256:9", 3).await.unwrap());
        assert!(s.registry_generation().await.unwrap() > g0, "{name}");
        assert_eq!(
            s.rollback_connector("magento", 4).await.unwrap().as_deref(),
            Some("sha256:2"),
            "{name}"
        );
        // A version removed meanwhile is skipped.
        assert!(s.remove_connector("sha256:1").await.unwrap());
        assert_eq!(s.rollback_connector("magento", 5).await.unwrap(), None);
        assert_eq!(active().await, vec!["sha256:2".to_string()], "{name}");
        assert!(s.activate_connector("sha256:3", 6).await.unwrap());
        assert_eq!(
            s.rollback_connector("magento", 7).await.unwrap().as_deref(),
            Some("sha256:2"),
            "{name}: back from a re-activation"
        );
    }
}
