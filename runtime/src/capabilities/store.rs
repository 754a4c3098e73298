//! The state of one sandboxed call: what the guest's `Store` holds.
//!
//! A store (and instance) is built from a backend's [`CallContext`]: no
//! preopened directories, no environment, no arguments, no sockets; clocks
//! and random only; stdout/stderr into the call's log. What belongs to one
//! call (log, HTTP audit, limit breaches) is replaced by [`CallState::begin`]
//! when a warm instance serves another call of the same backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::stdio::{CallLog, LogStream, LogTarget};
use crate::capabilities::CallContext;
use crate::capabilities::egress::{AuditLog, EgressHooks};

/// What a call leaves behind besides its result, readable after the store
/// is gone (a deadline drops the store mid-call).
#[derive(Debug, Clone)]
pub struct CallShared {
    pub log: CallLog,
    pub audit: AuditLog,
    /// The memory size a denied `memory.grow` asked for, or 0.
    pub memory_breach: Arc<AtomicUsize>,
    /// The table size a denied `table.grow` asked for, or 0.
    pub table_breach: Arc<AtomicUsize>,
}

impl CallShared {
    pub fn new(max_log_bytes: usize) -> Self {
        CallShared {
            log: CallLog::new(max_log_bytes),
            audit: AuditLog::default(),
            memory_breach: Arc::new(AtomicUsize::new(0)),
            table_breach: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// The `T` of `Store<T>` for every guest call.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: EgressHooks,
    log_target: LogTarget,
    pub(crate) limiter: Limiter,
    pub(crate) ctx: Arc<CallContext>,
    pub(crate) shared: CallShared,
    /// Jobs this call enqueued (`max_jobs_per_call`).
    pub(crate) jobs_enqueued: usize,
}

impl CallState {
    pub fn new(ctx: Arc<CallContext>, shared: CallShared) -> Self {
        let log_target = LogTarget::new(&shared.log);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(LogStream::stdout(&log_target))
            .stderr(LogStream::stderr(&log_target))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let limiter = Limiter {
            memory_bytes: ctx.limits.memory_bytes,
            table_elements: ctx.limits.table_elements,
            memory_breach: shared.memory_breach.clone(),
            table_breach: shared.table_breach.clone(),
        };
        // What a guest makes the host hold is capped too: header maps by
        // bytes, and every resource (fields, requests, bodies, streams) by
        // count, so the host's memory stays bounded whatever the guest keeps.
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(ctx.limits.max_header_bytes);
        let mut table = ResourceTable::new();
        table.set_max_capacity(ctx.limits.max_host_resources);
        CallState {
            wasi: wasi.build(),
            http,
            table,
            jobs_enqueued: 0,
            hooks: EgressHooks::new(ctx.egress.clone(), shared.audit.clone()),
            log_target,
            limiter,
            ctx,
            shared,
        }
    }

    /// Start another call on this (warm) store: its log, audit and limit
    /// breaches are the new call's; the backend context stays.
    pub(crate) fn begin(&mut self, shared: CallShared) {
        self.log_target.set(&shared.log);
        self.hooks = EgressHooks::new(self.ctx.egress.clone(), shared.audit.clone());
        self.limiter.memory_breach = shared.memory_breach.clone();
        self.limiter.table_breach = shared.table_breach.clone();
        self.jobs_enqueued = 0;
        self.shared = shared;
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Memory and table caps of one instance. A denied grow is remembered so
/// that the trap it usually causes (a Rust guest aborts on allocation
/// failure) is reported as the memory limit, not as a bare `unreachable`.
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    memory_breach: Arc<AtomicUsize>,
    table_breach: Arc<AtomicUsize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_breach.store(desired, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_breach.store(desired, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        // A component's core instances; Rust components use two or three.
        16
    }

    fn memories(&self) -> usize {
        4
    }

    fn tables(&self) -> usize {
        16
    }
}

/// `junction:connector/types` has no functions; the linker still wants it.
impl super::bindings::types::Host for CallState {}
