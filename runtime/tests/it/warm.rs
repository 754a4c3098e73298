//! Warm instances: reuse within one backend, a fresh instance after a
//! failed call or `max_invocations` calls, never across backends, each
//! call's log its own, and none at all with `warm_instances = 0`.

use std::sync::Arc;
use std::time::Duration;

use junction_runtime::capabilities::CallContext;
use junction_runtime::{Host, HostConfig, Unit};

use crate::support::Ctx;

async fn probe_on(warm_instances: u32, max_invocations: u32) -> Unit {
    let host = Host::new(HostConfig {
        max_instances: 16,
        warm_instances,
        max_invocations,
        ..HostConfig::default()
    })
    .unwrap();
    host.load_file(junction_test_artifacts::PROBE.as_ref())
        .await
        .unwrap()
}

/// The probe's `counter`: how many calls the instance has served.
async fn counter(unit: &Unit, ctx: &Arc<CallContext>) -> u64 {
    let r = unit.read(ctx, "counter", "c").await.into_result().unwrap();
    r.data.parse().unwrap()
}

#[tokio::test]
async fn an_instance_serves_calls_until_its_invocation_limit() {
    let unit = probe_on(4, 3).await;
    let ctx = Ctx::default().build();
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(counter(&unit, &ctx).await);
    }
    assert_eq!(seen, [1, 2, 3, 1, 2, 3, 1]);
    assert_eq!(unit.warm_instances(), 1);
}

#[tokio::test]
async fn instances_never_cross_backends() {
    let unit = probe_on(4, 100).await;
    let (a, b) = (Ctx::default().build(), Ctx::default().build());
    assert_eq!(counter(&unit, &a).await, 1);
    assert_eq!(counter(&unit, &a).await, 2);
    assert_eq!(counter(&unit, &b).await, 1, "b gets an instance of its own");
    assert_eq!(counter(&unit, &a).await, 3);
    assert_eq!(counter(&unit, &b).await, 2);
}

#[tokio::test]
async fn a_failed_call_retires_its_instance() {
    let unit = probe_on(4, 100).await;
    let ctx = Ctx {
        limits: junction_runtime::SandboxLimits {
            deadline: Duration::from_millis(300),
            ..junction_runtime::SandboxLimits::default()
        },
        ..Ctx::default()
    }
    .build();
    for fail in [
        ("fail", "permanent"), // a guest error
        ("panic", "x"),        // a trap
        ("loop", "x"),         // the deadline
    ] {
        assert_eq!(counter(&unit, &ctx).await, 1, "after {fail:?}");
        assert_eq!(counter(&unit, &ctx).await, 2);
        let failed = unit.read(&ctx, fail.0, fail.1).await.into_result();
        assert!(failed.is_err(), "{fail:?}");
    }
    assert_eq!(counter(&unit, &ctx).await, 1);
}

#[tokio::test]
async fn each_call_on_a_warm_instance_has_its_own_log() {
    let unit = probe_on(4, 100).await;
    let ctx = Ctx::default().build();
    for n in 1..=3 {
        let report = unit.read(&ctx, "counter", "c").await;
        let lines: Vec<_> = report.log.iter().map(|l| l.message.clone()).collect();
        assert_eq!(lines, [format!("call {n} of this instance")]);
    }
}

#[tokio::test]
async fn without_warm_instances_every_call_is_fresh() {
    let unit = probe_on(0, 100).await;
    let ctx = Ctx::default().build();
    for _ in 0..3 {
        assert_eq!(counter(&unit, &ctx).await, 1);
    }
    assert_eq!(unit.warm_instances(), 0);
}

#[tokio::test]
async fn idle_instances_stay_within_the_host_cap() {
    // max_instances 16 allows 4 idle; warm_instances asks for 8.
    let unit = probe_on(8, 100).await;
    let ctxs: Vec<_> = (0..6).map(|_| Ctx::default().build()).collect();
    for ctx in &ctxs {
        counter(&unit, ctx).await;
    }
    assert_eq!(unit.warm_instances(), 4);
    let limited = Host::new(HostConfig {
        max_invocations: 0,
        ..HostConfig::default()
    });
    assert!(
        limited
            .unwrap_err()
            .to_string()
            .contains("max_invocations must be at least 1"),
    );
}

#[tokio::test]
async fn a_derived_context_of_the_same_backend_reuses_the_instance_and_its_services() {
    let unit = probe_on(4, 100).await;
    let base = Ctx::default().build();
    let made = unit.instantiations();
    assert_eq!(counter(&unit, &base).await, 1);
    // An import page's context: the backend's, with other services (its
    // prefetched binder). The warm instance serves it, and its host
    // imports reach the derived context's services, not the first one's.
    let other = Ctx::default();
    let page = Arc::new(CallContext {
        services: junction_runtime::capabilities::Services::from_one(other.services.clone()),
        ..(*base).clone()
    });
    assert_eq!(counter(&unit, &page).await, 2);
    assert_eq!(unit.instantiations(), made + 1);
    use junction_runtime::capabilities::BinderService;
    other
        .services
        .bind("test", "echo", "e1", "l1", None)
        .await
        .unwrap();
    let seen = |ctx: Arc<CallContext>| {
        let unit = unit.clone();
        async move {
            let r = unit
                .read(&ctx, "to-local", "echo/e1")
                .await
                .into_result()
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&r.data).unwrap()["local"].clone()
        }
    };
    assert_eq!(
        seen(page.clone()).await,
        "l1",
        "the derived context's binder answers"
    );
    assert_eq!(
        seen(base.clone()).await,
        serde_json::Value::Null,
        "and the base's its own"
    );
    // The page's context gone, the backend's still serves from the pool.
    drop(page);
    assert_eq!(
        counter(&unit, &base).await,
        3,
        "the same instance, its third counter call"
    );
    assert_eq!(unit.instantiations(), made + 1);
    // Another backend's context never does.
    let elsewhere = Ctx::default().build();
    assert_eq!(counter(&unit, &elsewhere).await, 1);
    assert_eq!(unit.instantiations(), made + 2);
}
