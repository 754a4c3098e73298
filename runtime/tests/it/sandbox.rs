//! Hostile guests: each misbehaviour ends with its own error naming the
//! limit, and a well-behaved call on the same host succeeds right after.

use std::time::Duration;

use junction_runtime::{CallError, GuestError, Host, HostConfig};

use crate::support::{Ctx, data, probe};

/// A well-behaved call, to show the runtime is fine after a hostile one.
async fn still_works() {
    let ctx = Ctx::default().build();
    let record = probe()
        .read(&ctx, "echo", "after")
        .await
        .into_result()
        .unwrap();
    assert_eq!(data(&record)["id"], "after");
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    let ctx = Ctx::limited(|l| l.deadline = Duration::from_millis(300));
    let err = probe()
        .read(&ctx, "loop", "")
        .await
        .into_result()
        .unwrap_err();
    assert!(matches!(err, CallError::Deadline { .. }), "{err:?}");
    assert!(err.to_string().contains("deadline of 300 ms"), "{err}");
    assert!(err.is_limit_breach());
    still_works().await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap() {
    let ctx = Ctx::limited(|l| l.memory_bytes = 32 << 20);
    let err = probe()
        .read(&ctx, "memory-bomb", "")
        .await
        .into_result()
        .unwrap_err();
    assert!(
        matches!(err, CallError::Memory { limit, .. } if limit == 32 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("33554432 bytes"), "{err}");
    still_works().await;
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack() {
    let ctx = Ctx::default().build();
    let err = probe()
        .read(&ctx, "recursion", "")
        .await
        .into_result()
        .unwrap_err();
    assert!(matches!(err, CallError::StackOverflow { .. }), "{err:?}");
    still_works().await;
}

#[tokio::test]
async fn panic_is_a_trap_with_the_panic_message() {
    let ctx = Ctx::default().build();
    let report = probe().read(&ctx, "panic", "boom-7").await;
    let err = report.result.unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("probe panicked on purpose: boom-7"),
        "{err}"
    );
    assert!(report.log.iter().any(|l| l.message.contains("panicked")));
    still_works().await;
}

#[tokio::test]
async fn oversized_output_is_refused() {
    let ctx = Ctx::limited(|l| l.max_output_bytes = 1 << 20);
    let err = probe()
        .read(&ctx, "big-output", &(2 << 20).to_string())
        .await
        .into_result()
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutputTooLarge { limit, .. } if limit == 1 << 20),
        "{err:?}"
    );
    still_works().await;
}

#[tokio::test]
async fn invalid_json_output_is_refused() {
    let ctx = Ctx::default().build();
    let err = probe()
        .read(&ctx, "bad-json", "x")
        .await
        .into_result()
        .unwrap_err();
    assert!(matches!(err, CallError::InvalidOutput { .. }), "{err:?}");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    still_works().await;
}

#[tokio::test]
async fn no_environment_arguments_filesystem_or_sockets() {
    let ctx = Ctx::default().build();
    let record = probe()
        .read(&ctx, "ambient", "127.0.0.1:5432")
        .await
        .into_result()
        .unwrap();
    let v = data(&record);
    assert_eq!(v["env"], serde_json::json!([]), "{v}");
    assert_eq!(v["args"], serde_json::json!([]), "{v}");
    assert_eq!(v["fs"], false, "{v}");
    assert_eq!(v["dir"], false, "{v}");
    assert_eq!(v["tcp"], false, "{v}");
    assert_eq!(v["dns"], false, "{v}");
}

#[tokio::test]
async fn stdout_goes_to_a_bounded_log() {
    let ctx = Ctx::limited(|l| l.max_log_bytes = 4096);
    let report = probe().read(&ctx, "stdout", "10000").await;
    report.result.as_ref().unwrap();
    assert!(report.log_truncated);
    let kept: usize = report.log.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 4096, "{kept}");
    assert_eq!(report.log[0].message, "line 0 from the probe's stdout");
}

#[tokio::test]
async fn guest_errors_are_not_traps() {
    let ctx = Ctx::default().build();
    for (which, kind) in [
        ("retryable", "retryable"),
        ("rate-limited", "rate-limited"),
        ("permanent", "permanent"),
        ("not-found", "not-found"),
        ("config", "config"),
        ("nothing-to-do", "nothing-to-do"),
    ] {
        let err = probe()
            .read(&ctx, "fail", which)
            .await
            .into_result()
            .unwrap_err();
        let guest = err.guest().unwrap_or_else(|| panic!("{which}: {err:?}"));
        assert_eq!(guest.kind(), kind);
        assert!(!err.is_limit_breach());
    }
    let err = probe()
        .read(&ctx, "fail", "rate-limited")
        .await
        .into_result()
        .unwrap_err();
    assert_eq!(
        err.guest().unwrap().retry_after(),
        Some(Duration::from_secs(60))
    );
    assert!(matches!(
        err.guest(),
        Some(GuestError::RateLimited { message, .. }) if message == "slow down"
    ));
}

#[tokio::test]
async fn fuel_budget_stops_a_busy_guest() {
    let host = Host::new(HostConfig {
        max_instances: 4,
        fuel: true,
        ..HostConfig::default()
    })
    .unwrap();
    let unit = host
        .load_file(junction_test_artifacts::PROBE.as_ref())
        .await
        .unwrap();
    let ctx = Ctx::limited(|l| l.fuel = Some(50_000_000));
    let err = unit.read(&ctx, "loop", "").await.into_result().unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Fuel {
                budget: 50_000_000,
                ..
            }
        ),
        "{err:?}"
    );
    let ok = unit.read(&ctx, "echo", "x").await.into_result().unwrap();
    assert_eq!(ok.external_id, "x");
}

#[tokio::test]
async fn fuel_budget_without_metering_is_a_clear_error() {
    let ctx = Ctx::limited(|l| l.fuel = Some(1000));
    let err = probe()
        .read(&ctx, "echo", "x")
        .await
        .into_result()
        .unwrap_err();
    assert!(err.to_string().contains("fuel metering"), "{err}");
}

#[tokio::test]
async fn host_imports_reach_the_backends_services() {
    let c = Ctx::default();
    let services = c.services.clone();
    let ctx = c.build();
    let record = probe().read(&ctx, "host", "h").await;
    let log = record.log.clone();
    let v = data(&record.into_result().unwrap());
    assert_eq!(v["backend"], "test");
    assert_eq!(v["kind"], "probe");
    assert_eq!(v["version"], "1.2.0");
    assert_eq!(v["settings"]["region"], "eu");
    assert_eq!(v["local"], "loc-1");
    assert_eq!(v["external"], "ext-1");
    assert_eq!(v["cursor"], "42");
    assert_eq!(v["missing"], true);
    assert!(
        log.iter()
            .any(|l| l.message == "probe calling host imports")
    );
    let jobs = services.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1, "test");
    assert_eq!(
        jobs[0].2.identity_key.as_deref(),
        Some("guest:test:echo:ext-1"),
        "a guest's identity key lives in its backend's namespace"
    );
    // A second call collapses into the same job by identity key, and the
    // binding is unique: binding the same pair again is fine.
    probe().read(&ctx, "host", "h").await.into_result().unwrap();
    assert_eq!(services.jobs().len(), 1);
}

#[tokio::test]
async fn many_calls_run_concurrently_in_separate_instances() {
    let ctx = Ctx::default().build();
    let calls = (0..32).map(|i| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            probe()
                .read(&ctx, "echo", &i.to_string())
                .await
                .into_result()
        })
    });
    for (i, call) in calls.enumerate() {
        let record = call.await.unwrap().unwrap();
        assert_eq!(record.external_id, i.to_string());
    }
}

#[tokio::test]
async fn search_pages_with_a_cursor() {
    let ctx = Ctx::default().build();
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = probe()
            .search(&ctx, "echo", "{}", cursor.as_deref(), 2)
            .await
            .into_result()
            .unwrap();
        seen.extend(page.items.into_iter().map(|r| r.external_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn a_memory_limit_above_the_hosts_maximum_is_a_clear_error() {
    let ctx = Ctx::limited(|l| l.memory_bytes = 8 << 30);
    let err = probe()
        .read(&ctx, "echo", "x")
        .await
        .into_result()
        .unwrap_err();
    assert!(err.to_string().contains("max_memory_bytes"), "{err}");
}
