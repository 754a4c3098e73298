//! The wasmtime engine and linker shared by every call: component model,
//! async, pooling allocator, epoch interruption, optional fuel; and the
//! thread that ticks epochs.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::capabilities::bindings;
use crate::capabilities::store::CallState;

/// Engine-wide settings, fixed for the life of a [`Host`](super::Host).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// The largest memory any backend's limit may allow; each slot
    /// reserves this much address space.
    pub max_memory_bytes: usize,
    /// Enable fuel metering so `SandboxLimits::fuel` can be used. Costs
    /// some speed on every call, so it is off unless asked for.
    pub fuel: bool,
    /// Epoch tick: the granularity of call deadlines.
    pub epoch_tick: Duration,
    /// Instances kept idle after successful calls, for the next call of the
    /// same unit and backend (0: a fresh instance for every call). They
    /// count against `max_instances`, of which they may take a quarter at
    /// most.
    pub warm_instances: u32,
    /// Calls one instance serves before a fresh one replaces it. Each
    /// replacement of an interpreted guest costs about a millisecond and
    /// page faults on its heap; at 100 it was a fifth of a direct import's
    /// time through Python (see the imports benchmark).
    pub max_invocations: u32,
    /// Components larger than this are refused before compilation (the
    /// compiler's time and memory grow with the code's size).
    pub max_component_bytes: usize,
    /// Compile in a child process running this executable (`junction`,
    /// which has the hidden `__compile-component` command), under
    /// `compile_memory_bytes` and `compile_timeout`; `None` compiles in
    /// this process, with no memory bound (see `host::compile`).
    pub compiler: Option<PathBuf>,
    /// The compiler child's address space.
    pub compile_memory_bytes: u64,
    /// The compiler child's wall-clock and CPU time.
    pub compile_timeout: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            max_instances: 256,
            max_memory_bytes: 1 << 30,
            fuel: false,
            epoch_tick: Duration::from_millis(10),
            warm_instances: 16,
            max_invocations: 1000,
            max_component_bytes: 40 << 20,
            compiler: None,
            compile_memory_bytes: 3 << 30,
            compile_timeout: Duration::from_secs(120),
        }
    }
}

impl HostConfig {
    /// Idle warm instances allowed: `warm_instances`, within a quarter of
    /// `max_instances` so that calls always have slots.
    pub(crate) fn idle_cap(&self) -> u32 {
        self.warm_instances.min(self.max_instances / 4)
    }
}

pub(crate) fn engine(config: &HostConfig) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let n = config.max_instances;
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(8))
        .total_stacks(n)
        .max_memory_size(config.max_memory_bytes);
    // Resetting a slot after its instance is gone: with Linux's
    // PAGEMAP_SCAN (6.7+), only the pages the call dirtied are copied back
    // from the module's image and up to 1 MiB of memory (64 KiB of tables)
    // stays resident, instead of an madvise that drops every page for the
    // next instance to fault in again — a fresh instance of the probe
    // costs 22 µs instead of 35 (the calls benchmark). The contents are
    // reset either way: nothing passes from one instance to the next.
    // Without the ioctl, keeping pages resident would mean a memset of
    // all of them, slower than the madvise, so it stays off there.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
    }
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&cfg)
}

pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::FullConnector::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Ticks the engine's epoch until the engine is dropped.
pub(crate) fn start_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("junction-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawning the epoch thread");
}
