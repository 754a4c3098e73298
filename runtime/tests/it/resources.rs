//! What a guest makes the host hold, tried as an attacker would (issue
//! "one connector cannot take the node down", in progress): wasi:http
//! header maps kept without end, oversized headers, floods of log lines,
//! floods of jobs. Each ends in its own named limit, and a well-behaved
//! call succeeds right after.

use junction_runtime::CallError;

use crate::support::{Ctx, data, probe};

#[tokio::test]
async fn header_maps_a_guest_keeps_are_capped_in_count() {
    let ctx = Ctx::default().build();
    let err = probe()
        .read(&ctx, "fields-bomb", "5000:60000")
        .await
        .into_result()
        .unwrap_err();
    assert!(
        matches!(err, CallError::HostResources { limit: 1000, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), "host-resources");
    assert!(
        err.to_string().contains("limits.max_host_resources"),
        "{err}"
    );
    probe()
        .read(&ctx, "echo", "after")
        .await
        .into_result()
        .unwrap();
}

#[tokio::test]
async fn a_header_map_is_capped_in_bytes() {
    let ctx = Ctx::limited(|l| l.max_header_bytes = 16 << 10);
    let err = probe()
        .read(&ctx, "fields-bomb", "10:20000")
        .await
        .into_result()
        .unwrap_err();
    assert!(
        matches!(err, CallError::HeaderSize { limit: 16384, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("limits.max_header_bytes"), "{err}");
    let record = probe()
        .read(&ctx, "fields-bomb", "10:1000")
        .await
        .into_result()
        .unwrap();
    assert_eq!(data(&record)["kept"], 10);
}

#[tokio::test]
async fn a_flood_of_empty_lines_is_bounded_and_summarised() {
    let ctx = Ctx::limited(|l| l.max_log_bytes = 4096);
    // `print` writes its argument to stdout and the log, then fails.
    let report = probe().read(&ctx, "print", &"\n".repeat(200_000)).await;
    assert!(report.log_truncated);
    assert!(report.log.len() < 100, "{} lines kept", report.log.len());
    // Its error message is cut as well.
    let err = report.result.unwrap_err().to_string();
    assert!(
        err.len() < 5000 && err.contains("more bytes cut"),
        "{} bytes",
        err.len()
    );
    let note = report.log.last().unwrap();
    assert!(
        note.message.contains("more lines dropped"),
        "{}",
        note.message
    );
}

#[tokio::test]
async fn a_call_enqueues_a_bounded_number_of_jobs() {
    let ctx = Ctx::limited(|l| l.max_jobs_per_call = 5);
    let record = probe()
        .read(&ctx, "enqueue-many", "50")
        .await
        .into_result()
        .unwrap();
    let v = data(&record);
    assert_eq!(v["ok"], 5, "{v}");
    assert!(
        v["err"].as_str().unwrap().contains("max_jobs_per_call"),
        "{v}"
    );
}

#[tokio::test]
async fn a_component_over_the_size_limit_is_refused_before_compiling() {
    let host = junction_runtime::Host::new(junction_runtime::HostConfig {
        max_component_bytes: 1 << 20,
        max_instances: 4,
        ..junction_runtime::HostConfig::default()
    })
    .unwrap();
    // A component header followed by 2 MiB: never compiled, refused by size.
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    bytes.resize(2 << 20, 0);
    let err = host.load(&bytes).await.unwrap_err().to_string();
    assert!(
        err.contains("over the limit of 1048576 bytes") && err.contains("max_component_bytes"),
        "{err}"
    );
    // Bytes under the limit go on to the component checks.
    bytes.truncate(1 << 19);
    let err = host.load(&bytes).await.unwrap_err().to_string();
    assert!(!err.contains("over the limit"), "{err}");
}
