//! `cargo bench -p junction-runtime --bench calls`: the cost of calling a
//! trivial guest export (`adapter.delete` of the probe fixture, which
//! returns `Ok(())`), four ways:
//! (a) on one reused instance, (b) on a fresh sandboxed instance per call
//! (`InstancePre` + pooling allocator; `warm_instances = 0`),
//! (c) the same function compiled natively, (d) through the warm instance
//! pool (the default: a full call, store reset included, on an instance a
//! previous call of the same backend left).
//!
//! (e) the floor: bare wasmtime on the same engine (pooling allocator,
//! epochs), the same component through an `InstancePre`, a store holding
//! nothing, every import a trap, a fresh instance per call — what (b)
//! costs without Junction's sandbox set-up (WASI and HTTP contexts,
//! limits, log, audit, deadline, metrics). Its call is untyped (the
//! bench has no bindings), which if anything makes the floor higher.
//!
//! Prints median and p99 per call over many batches. The target for (b) is
//! a median of at most 15 µs on a 2-core machine, measured beside (e).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_runtime::{CallContext, Host, HostConfig, SandboxLimits, Unit};

const SAMPLES: usize = 200;

fn stats(mut per_call: Vec<Duration>) -> (Duration, Duration) {
    per_call.sort();
    let median = per_call[per_call.len() / 2];
    let p99 = per_call[(per_call.len() * 99 / 100).min(per_call.len() - 1)];
    (median, p99)
}

fn row(name: &str, (median, p99): (Duration, Duration)) {
    println!(
        "{name:<44} median {:>10.2} µs   p99 {:>10.2} µs",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

/// A host with `warm_instances` and the probe fixture loaded on it.
async fn probe(warm_instances: u32) -> (Host, Unit) {
    let host = Host::new(HostConfig {
        max_instances: 16,
        warm_instances,
        ..HostConfig::default()
    })
    .unwrap();
    let unit = host
        .load_file(junction_test_artifacts::PROBE.as_ref())
        .await
        .unwrap();
    (host, unit)
}

/// `SAMPLES * 10` timed calls of `adapter.delete`, after 200 to warm up.
async fn one_call_per_sample(unit: &Unit, ctx: &Arc<CallContext>) -> Vec<Duration> {
    for _ in 0..200 {
        unit.delete(ctx, "noop", "1").await.into_result().unwrap();
    }
    let mut samples = Vec::with_capacity(SAMPLES * 10);
    for _ in 0..SAMPLES * 10 {
        let started = Instant::now();
        unit.delete(ctx, "noop", "1").await.into_result().unwrap();
        samples.push(started.elapsed());
    }
    samples
}

/// (e): `SAMPLES * 10` calls of `adapter.delete`, each on a fresh bare
/// instance of the probe on `host`'s engine, after 200 to warm up.
async fn floor(host: &Host) -> Vec<Duration> {
    use wasmtime::component::{Component, Linker, Val};
    let engine = host.engine();
    let bytes = std::fs::read(junction_test_artifacts::PROBE).unwrap();
    let component = Component::from_binary(engine, &bytes).unwrap();
    let mut linker = Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let adapter = component
        .get_export_index(None, "junction:connector/adapter@0.1.2")
        .expect("the probe exports the adapter");
    let delete = component
        .get_export_index(Some(&adapter), "delete")
        .expect("the adapter has delete");
    let args = [Val::String("noop".into()), Val::String("1".into())];
    let once = async || {
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(1 << 40);
        let instance = pre.instantiate_async(&mut store).await.unwrap();
        let func = instance.get_func(&mut store, delete).unwrap();
        let mut out = [Val::Bool(false)];
        func.call_async(&mut store, &args, &mut out).await.unwrap();
        assert!(matches!(&out[0], Val::Result(Ok(_))), "{out:?}");
    };
    for _ in 0..200 {
        once().await;
    }
    let mut samples = Vec::with_capacity(SAMPLES * 10);
    for _ in 0..SAMPLES * 10 {
        let started = Instant::now();
        once().await;
        samples.push(started.elapsed());
    }
    samples
}

#[inline(never)]
fn native_delete(model: &str, id: &str) -> Result<(), String> {
    black_box((model, id));
    Ok(())
}

fn main() {
    // `cargo test --benches` runs this with `--test`-like flags; only a real
    // `cargo bench` (which passes `--bench`) measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("calls benchmark: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Hosts are kept alive for as long as their units run.
        let (host, unit) = probe(0).await;
        let (_warm_host, warm_unit) = probe(HostConfig::default().warm_instances).await;
        let ctx = Arc::new(CallContext::detached(SandboxLimits::default()));

        // (a) reused instance: batches of 1,000 calls.
        let batch = 1000u32;
        unit.bench_reused_delete(&ctx, batch).await.unwrap();
        let reused: Vec<Duration> = futures_samples(SAMPLES, || {
            let (unit, ctx) = (unit.clone(), ctx.clone());
            async move { unit.bench_reused_delete(&ctx, batch).await.unwrap() / batch }
        })
        .await;

        // (b) fresh sandboxed instance per call: one call per sample, many samples.
        let fresh = one_call_per_sample(&unit, &ctx).await;

        // (d) warm pool: the same, on a host that keeps instances warm.
        let warm = one_call_per_sample(&warm_unit, &ctx).await;

        // (e) the floor, and (b) again right after it, so the two are
        // side by side on the machine as it is now.
        let bare = floor(&host).await;
        let fresh_again = one_call_per_sample(&unit, &ctx).await;

        // (c) native.
        let mut native = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let started = Instant::now();
            for _ in 0..10_000 {
                black_box(native_delete(black_box("noop"), black_box("1"))).unwrap();
            }
            native.push(started.elapsed() / 10_000);
        }

        println!("trivial export (adapter.delete of tests/fixtures/probe)");
        row("(a) reused instance", stats(reused));
        row(
            "(b) fresh instance per call (InstancePre+pool)",
            stats(fresh),
        );
        row("(c) native", stats(native));
        row("(d) warm instance from the pool", stats(warm));
        row("(e) bare wasmtime, fresh instance (floor)", stats(bare));
        row("(b) again, after (e)", stats(fresh_again));
    });
}

async fn futures_samples<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Duration>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(f().await);
    }
    out
}
