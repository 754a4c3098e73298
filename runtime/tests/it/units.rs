//! Components implementing the smaller worlds, and the mapper and listener
//! exports.

use junction_runtime::CallError;
use junction_runtime::model::{Event, LocalRecord, RemoteRecord};

use crate::support::{Ctx, host, probe};

#[tokio::test]
async fn a_mapper_unit_maps_and_has_no_adapter() {
    let unit = host()
        .load_file(junction_test_artifacts::MAPPER_ONLY.as_ref())
        .await
        .unwrap();
    assert_eq!(unit.exports().world(), "mapper-unit");
    let ctx = Ctx::default().build();
    let record = RemoteRecord {
        external_id: "1".into(),
        updated_at: None,
        data: r#"{"name":"ada"}"#.into(),
    };
    let mapped = unit
        .map_import(&ctx, "echo", &record)
        .await
        .into_result()
        .unwrap();
    assert_eq!(mapped, r#"{"NAME":"ADA"}"#);
    let local = LocalRecord {
        model: "echo".into(),
        id: "l1".into(),
        data: r#"{"NAME":"ADA"}"#.into(),
        version: 1,
        updated_at: "2026-11-29T10:00:00Z".into(),
    };
    let back = unit
        .map_export(&ctx, "echo", local, Some(vec!["NAME".into()]))
        .await
        .into_result()
        .unwrap();
    assert_eq!(back, r#"{"name":"ada"}"#);
    let err = unit
        .read(&ctx, "echo", "1")
        .await
        .into_result()
        .unwrap_err();
    assert!(matches!(err, CallError::MissingExport { .. }), "{err:?}");
    assert!(err.to_string().contains("adapter.read"), "{err}");
    assert!(err.to_string().contains("mapper-unit"), "{err}");
    let manifest = unit.describe(&ctx).await.into_result().unwrap();
    assert!(manifest.supports_backend_version("1.2.0").unwrap());
    assert!(!manifest.supports_backend_version("1.5.0").unwrap());
}

/// The probe's own listener: it asks for an export of a local change and
/// nothing for an imported one. (That the host never hands a backend's
/// listener a change imported from that backend is the host's filter,
/// tested in `events::a_guest_listener_is_delivered_by_a_job_of_its_own_and_never_echoes`.)
#[tokio::test]
async fn the_probe_listener_exports_local_changes_and_leaves_imported_ones() {
    let ctx = Ctx::default().build();
    let mut event = Event {
        name: "record-written".into(),
        model: "echo".into(),
        local_id: Some("l1".into()),
        changed_fields: vec!["name".into()],
        payload: "{}".into(),
        origin_backend: None,
    };
    let jobs = probe()
        .on_event(&ctx, "test", &event)
        .await
        .into_result()
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].function, "junction.export-record");
    event.origin_backend = Some("test".into());
    let jobs = probe()
        .on_event(&ctx, "test", &event)
        .await
        .into_result()
        .unwrap();
    assert!(jobs.is_empty());
}

#[tokio::test]
async fn the_other_adapter_exports_answer() {
    let ctx = Ctx::default().build();
    let id = probe()
        .create(&ctx, "echo", "{}")
        .await
        .into_result()
        .unwrap();
    assert!(id.starts_with("echo-") && id.len() == 21, "{id}");
    probe()
        .write(&ctx, "echo", "1", "{}")
        .await
        .into_result()
        .unwrap();
    probe()
        .delete(&ctx, "echo", "1")
        .await
        .into_result()
        .unwrap();
    assert_eq!(
        probe().check(&ctx, "{}").await.into_result().unwrap(),
        "probe ok"
    );
    let record = RemoteRecord {
        external_id: "1".into(),
        updated_at: None,
        data: "{}".into(),
    };
    assert!(
        probe()
            .dependencies(&ctx, "echo", &record)
            .await
            .into_result()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_component_built_against_the_previous_contract_still_loads_and_runs() {
    // Built from the frozen copy of junction:connector@0.1.0 in
    // tests/fixtures/old-contract/wit, never from wit/.
    assert_ne!(junction_runtime::host::CONTRACT_VERSION, "0.1.0");
    let bytes = std::fs::read(junction_test_artifacts::OLD_CONTRACT).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("junction:connector/mapper@0.1.0")
            && !text.contains(&format!(
                "junction:connector/mapper@{}",
                junction_runtime::host::CONTRACT_VERSION
            )),
        "the fixture must name the old contract"
    );
    let unit = host()
        .load_file(junction_test_artifacts::OLD_CONTRACT.as_ref())
        .await
        .unwrap();
    assert_eq!(unit.exports().world(), "mapper-unit");
    let ctx = Ctx::default().build();
    let manifest = unit.describe(&ctx).await.into_result().unwrap();
    assert_eq!(manifest.name, "old-contract");
    let record = RemoteRecord {
        external_id: "1".into(),
        updated_at: None,
        data: r#"{"name":"ada"}"#.into(),
    };
    // Its imports (log, state, config at 0.1.0) link to this host's.
    for seen in 1..=2 {
        let call = unit.map_import(&ctx, "echo", &record).await;
        assert!(
            call.log
                .iter()
                .any(|l| l.message.contains("mapped by a 0.1.0 component")),
            "{:?}",
            call.log
        );
        let mapped: serde_json::Value = serde_json::from_str(&call.into_result().unwrap()).unwrap();
        assert_eq!(
            mapped,
            serde_json::json!({"data": {"name": "ada"}, "backend": "test", "seen": seen})
        );
    }
}

#[test]
fn the_host_accepts_older_contracts_of_its_line_and_refuses_the_rest() {
    use junction_runtime::host::contract_compatible;
    assert_eq!(junction_runtime::host::CONTRACT_VERSION, "0.1.2");
    for ok in ["0.1.0", "0.1.1", "0.1.2"] {
        assert_eq!(contract_compatible(ok), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("0.1.3", "newer contract"),
        ("0.2.0", "another compatible line"),
        ("1.0.0", "another compatible line"),
        ("0.0.9", "another compatible line"),
        ("0.1.0-rc.1", "another compatible line"),
        ("", "not semver"),
        ("latest", "not semver"),
    ] {
        let err = contract_compatible(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}
