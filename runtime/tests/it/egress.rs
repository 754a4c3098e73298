//! Outbound HTTP from the sandbox: only to allowed hosts, checked again at
//! connect time, capped, timed out, audited, with credentials added by the
//! host.

use std::sync::atomic::Ordering;
use std::time::Duration;

use junction_runtime::capabilities::egress::{Auth, Secret};
use junction_runtime::{CallError, EgressLimits, SandboxLimits};

use crate::support::{Ctx, Server, data, probe};

fn config_error(err: &CallError) -> &str {
    match err.guest() {
        Some(junction_runtime::GuestError::Config { message }) => message,
        other => panic!("expected a config error, got {other:?} from {err:?}"),
    }
}

#[tokio::test]
async fn an_allowed_request_goes_through_and_is_audited() {
    let server = Server::start().await;
    let ctx = Ctx::server(&server).build();
    let report = probe()
        .read(&ctx, "http", &server.url("/ok?token=s3cret&page=2"))
        .await;
    let audit = report.audit.clone();
    let v = data(&report.into_result().unwrap());
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello");
    assert_eq!(audit.len(), 1);
    let entry = &audit[0];
    assert_eq!(entry.method, "GET");
    assert_eq!(entry.host, "127.0.0.1");
    assert_eq!(entry.port, server.addr.port());
    assert_eq!(
        entry.path, "/ok?token&page",
        "query values are not recorded"
    );
    assert_eq!(entry.status, Some(200));
    assert_eq!(entry.response_bytes, 5);
    assert!(entry.denied.is_none());
}

#[tokio::test]
async fn a_host_off_the_list_is_denied_with_its_name() {
    let server = Server::start().await;
    let ctx = Ctx::server(&server).build();
    let report = probe()
        .read(&ctx, "http", "http://evil.example.com/steal")
        .await;
    let audit = report.audit.clone();
    let err = report.into_result().unwrap_err();
    let message = config_error(&err);
    assert!(message.contains("evil.example.com"), "{message}");
    assert!(message.contains("denied"), "{message}");
    assert_eq!(audit.len(), 1);
    let reason = audit[0].denied.as_deref().unwrap();
    assert!(
        reason.contains("not in the backend's allowlist"),
        "{reason}"
    );
    // Nothing reached the network: the test server saw no request either.
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_empty_allowlist_denies_everything() {
    let server = Server::start().await;
    let ctx = Ctx::default().build();
    let report = probe().read(&ctx, "http", &server.url("/ok")).await;
    let reason = report.audit[0].denied.clone().unwrap();
    assert!(reason.contains("allowlist is empty"), "{reason}");
    config_error(&report.into_result().unwrap_err());
}

#[tokio::test]
async fn an_allowed_name_resolving_to_loopback_is_refused() {
    let server = Server::start().await;
    let port = server.addr.port();
    let ctx = Ctx {
        allow: vec![format!("http://localhost:{port}")],
        ..Ctx::default()
    }
    .build();
    let report = probe()
        .read(&ctx, "http", &format!("http://localhost:{port}/ok"))
        .await;
    let reason = report.audit[0].denied.clone().unwrap();
    assert!(
        reason.contains("localhost resolved to 127.0.0.1 (loopback)"),
        "{reason}"
    );
    assert!(reason.contains(&format!("localhost:{port}")), "{reason}");
    config_error(&report.into_result().unwrap_err());
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 0);

    // The operator can allow that exact host and port.
    let ctx = Ctx {
        allow: vec![format!("http://localhost:{port}")],
        allow_internal: vec![format!("localhost:{port}")],
        ..Ctx::default()
    }
    .build();
    let record = probe()
        .read(&ctx, "http", &format!("http://LOCALHOST.:{port}/ok"))
        .await;
    assert_eq!(data(&record.into_result().unwrap())["status"], 200);
}

#[tokio::test]
async fn a_loopback_literal_or_mapped_form_needs_an_exception() {
    let server = Server::start().await;
    let port = server.addr.port();
    let ctx = Ctx {
        allow: vec![format!("http://127.0.0.1:{port}")],
        ..Ctx::default()
    }
    .build();
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
    ] {
        let report = probe().read(&ctx, "http", &url).await;
        let reason = report.audit[0].denied.clone().unwrap();
        assert!(reason.contains("is a loopback address"), "{url}: {reason}");
    }
}

#[tokio::test]
async fn metadata_and_userinfo_tricks_are_refused() {
    let server = Server::start().await;
    let ctx = Ctx::server(&server).build();
    for url in [
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("http://{}@evil.example.com/", server.addr),
        format!("http://user@{}/ok", server.addr),
    ] {
        let report = probe().read(&ctx, "http", &url).await;
        assert!(
            report.audit[0].denied.is_some(),
            "{url}: {:?}",
            report.audit
        );
        assert!(report.result.is_err(), "{url}");
    }
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirects_are_not_followed_and_following_one_off_the_list_is_denied() {
    let server = Server::start().await;
    let ctx = Ctx::server(&server).build();
    let url = server.url("/redirect?to=http://evil.example.com/x");
    let first = data(
        &probe()
            .read(&ctx, "http", &url)
            .await
            .into_result()
            .unwrap(),
    );
    assert_eq!(
        first["status"], 302,
        "the host returns the redirect as it is"
    );
    assert_eq!(first["location"], "http://evil.example.com/x");

    let report = probe().read(&ctx, "follow-redirect", &url).await;
    assert_eq!(report.audit.len(), 2);
    assert_eq!(report.audit[0].status, Some(302));
    assert!(report.audit[1].denied.is_some());
    let message = config_error(&report.result.unwrap_err()).to_string();
    assert!(message.contains("evil.example.com"), "{message}");
}

#[tokio::test]
async fn oversized_responses_are_cut_at_the_cap() {
    let server = Server::start().await;
    let ctx = Ctx {
        egress: EgressLimits {
            max_response_body_bytes: 64 * 1024,
            ..EgressLimits::default()
        },
        ..Ctx::server(&server)
    }
    .build();
    // Declared too large up front.
    let report = probe()
        .read(&ctx, "http", &server.url("/big?bytes=200000"))
        .await;
    let failure = report.audit[0].error.clone().unwrap();
    assert!(failure.contains("over the cap of 65536 bytes"), "{failure}");
    let err = report.result.unwrap_err();
    assert!(err.to_string().contains("size cap"), "{err}");
    // Streamed without a length: cut while reading.
    let report = probe()
        .read(&ctx, "http", &server.url("/stream?bytes=500000"))
        .await;
    let failure = report.audit[0].error.clone().unwrap();
    assert!(
        failure.contains("exceeded the cap of 65536 bytes"),
        "{failure}"
    );
    let err = report.result.unwrap_err();
    assert!(err.to_string().contains("size cap"), "{err}");
    // Under the cap is fine.
    let ok = probe()
        .read(&ctx, "http", &server.url("/big?bytes=1000"))
        .await;
    assert_eq!(ok.audit[0].response_bytes, 1000);
    ok.into_result().unwrap();
}

#[tokio::test]
async fn a_slow_host_hits_the_call_deadline() {
    let server = Server::start().await;
    let ctx = Ctx {
        limits: SandboxLimits {
            deadline: Duration::from_millis(400),
            ..SandboxLimits::default()
        },
        ..Ctx::server(&server)
    }
    .build();
    let err = probe()
        .read(&ctx, "http", &server.url("/slow?ms=5000"))
        .await
        .into_result()
        .unwrap_err();
    assert!(matches!(err, CallError::Deadline { .. }), "{err:?}");
    let ctx = Ctx::server(&server).build();
    probe()
        .read(&ctx, "http", &server.url("/ok"))
        .await
        .into_result()
        .unwrap();
}

#[tokio::test]
async fn a_slow_host_hits_the_egress_timeout_as_a_retryable_error() {
    let server = Server::start().await;
    let ctx = Ctx {
        egress: EgressLimits {
            total_timeout: Duration::from_millis(200),
            ..EgressLimits::default()
        },
        ..Ctx::server(&server)
    }
    .build();
    let report = probe()
        .read(&ctx, "http", &server.url("/slow?ms=3000"))
        .await;
    assert!(
        report.audit[0]
            .error
            .as_deref()
            .unwrap()
            .contains("timed out")
    );
    let err = report.result.unwrap_err();
    assert!(
        matches!(
            err.guest(),
            Some(junction_runtime::GuestError::Retryable { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_host_adds_credentials_and_the_checked_host_header() {
    let server = Server::start().await;
    let ctx = Ctx {
        auth: Some(Auth::Bearer {
            token: Secret::new("tok-123-secret"),
        }),
        ..Ctx::server(&server)
    }
    .build();
    let report = probe().read(&ctx, "http", &server.url("/headers")).await;
    let text = format!("{:?} {:?}", report.log, report.audit);
    assert!(
        !text.contains("tok-123-secret"),
        "secret leaked into log or audit"
    );
    report.into_result().unwrap();
    let headers = server.last_headers.lock().unwrap().clone();
    assert!(
        headers.contains(&"authorization: Bearer tok-123-secret".to_string()),
        "{headers:?}"
    );
    assert!(
        headers.contains(&format!("host: {}", server.addr)),
        "{headers:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_per_backend_are_capped() {
    let server = Server::start().await;
    let ctx = Ctx {
        egress: EgressLimits {
            max_concurrent_requests: 1,
            ..EgressLimits::default()
        },
        ..Ctx::server(&server)
    }
    .build();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let ctx = ctx.clone();
            let url = server.url("/slow?ms=100");
            tokio::spawn(async move { probe().read(&ctx, "http", &url).await.into_result() })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn oversized_request_bodies_are_refused() {
    let server = Server::start().await;
    let ctx = Ctx {
        egress: EgressLimits {
            max_request_body_bytes: 10_000,
            ..EgressLimits::default()
        },
        ..Ctx::server(&server)
    }
    .build();
    let ok = probe()
        .read(&ctx, "post", &format!("5000@{}", server.url("/ok")))
        .await;
    assert_eq!(ok.audit[0].request_bytes, 5000);
    assert_eq!(data(&ok.into_result().unwrap())["status"], 200);
    let report = probe()
        .read(&ctx, "post", &format!("50000@{}", server.url("/ok")))
        .await;
    let failure = report.audit[0]
        .error
        .clone()
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(
        failure.contains("request body exceeded the cap of 10000 bytes"),
        "{failure}"
    );
    // Refused before connecting: the backend never saw half a request.
    assert_eq!(report.audit[0].status, None);
    let err = report.result.unwrap_err();
    assert!(err.to_string().contains("size cap"), "{err}");
}

#[tokio::test]
async fn more_calls_than_instance_slots_wait_instead_of_failing() {
    let host = junction_runtime::Host::new(junction_runtime::HostConfig {
        max_instances: 2,
        ..junction_runtime::HostConfig::default()
    })
    .unwrap();
    let unit = host
        .load_file(junction_test_artifacts::PROBE.as_ref())
        .await
        .unwrap();
    let server = Server::start().await;
    let ctx = Ctx::server(&server).build();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (unit, ctx, url) = (unit.clone(), ctx.clone(), server.url("/slow?ms=50"));
            tokio::spawn(async move { unit.read(&ctx, "http", &url).await.into_result() })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert!(server.max_in_flight.load(Ordering::SeqCst) <= 2);
}
