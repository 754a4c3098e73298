//! Warm instances: a store and instance kept after a successful call so
//! that the next call of the same unit for the same backend skips
//! instantiation. Instantiating a Rust guest takes tens of microseconds,
//! but a Python or JavaScript guest (an interpreter and its heap) takes a
//! millisecond or more.
//!
//! Rules: an instance serves only the backend it was made for (guest
//! memory survives between its calls, and must not cross backends): the
//! same resolved backend (its grants and egress policy), of which a call
//! may use a derived context (an import page's prefetched binder), which
//! the instance then takes on; it is dropped after any failed call (a trap, a limit, a
//! deadline or a guest error leaves state nobody vouches for) and after
//! `max_invocations` calls; idle instances across the host never exceed
//! `warm_instances`, and the call slots are sized so that running plus idle
//! instances stay within the pooling allocator's `max_instances`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::Instance;
use wasmtime::{AsContext, AsContextMut, Store, StoreContext, StoreContextMut};

use crate::capabilities::CallContext;
use crate::capabilities::store::CallState;

/// An instance with the store it lives in.
pub(crate) struct Warm {
    pub store: Store<CallState>,
    pub instance: Instance,
    /// Calls it has served.
    pub uses: u32,
}

impl Warm {
    /// The backend context it serves (its store holds it).
    fn ctx(&self) -> &Arc<CallContext> {
        &self.store.data().ctx
    }

    /// Whether a call may still ask for it (it is one of `idle`): some
    /// context of its backend (every context of one resolved backend shares
    /// its grants) is held by something besides the idle instances — one
    /// no idle instance holds, or one they hold that is referenced
    /// elsewhere too (the backend's own, after a search that ran beside a
    /// page's import).
    fn in_use(&self, idle: &[Warm]) -> bool {
        let grants = &self.ctx().grants;
        // Count contexts, not references to them: each holds the grants once.
        let mut idle_contexts: Vec<&Arc<CallContext>> = idle
            .iter()
            .filter(|o| Arc::ptr_eq(&o.ctx().grants, grants))
            .map(|o| o.ctx())
            .collect();
        idle_contexts.sort_unstable_by_key(|c| Arc::as_ptr(c));
        idle_contexts.dedup_by_key(|c| Arc::as_ptr(c));
        Arc::strong_count(grants) > idle_contexts.len()
            || idle_contexts.iter().any(|c| {
                let held_idle = idle.iter().filter(|o| Arc::ptr_eq(o.ctx(), c)).count();
                Arc::strong_count(c) > held_idle
            })
    }
}

/// The idle instances of one unit.
pub(crate) struct WarmPool {
    idle: Mutex<Vec<Warm>>,
    /// Idle instances of every unit of the host.
    host_idle: Arc<AtomicUsize>,
    max_idle: usize,
    max_invocations: u32,
}

impl WarmPool {
    pub fn new(host_idle: Arc<AtomicUsize>, max_idle: usize, max_invocations: u32) -> Self {
        WarmPool {
            idle: Mutex::new(Vec::new()),
            host_idle,
            max_idle,
            max_invocations,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop idle instances no call can use any more (the backend was
    /// reconfigured or removed, or it was a one-off context).
    fn sweep(&self, idle: &mut Vec<Warm>) {
        let before = idle.len();
        let keep: Vec<bool> = idle.iter().map(|w| w.in_use(idle)).collect();
        let mut keep = keep.into_iter();
        idle.retain(|_| keep.next().unwrap_or(true));
        self.host_idle
            .fetch_sub(before - idle.len(), Ordering::Relaxed);
    }

    /// An idle instance made for `ctx`'s backend, if there is one; it
    /// takes on `ctx` (whose services may be a derived call's).
    pub fn take(&self, ctx: &Arc<CallContext>) -> Option<Warm> {
        let mut idle = self.lock();
        self.sweep(&mut idle);
        let mut found = idle
            .iter()
            .rposition(|w| w.ctx().same_backend(ctx))
            .map(|i| idle.swap_remove(i));
        if let Some(w) = &mut found {
            w.store.data_mut().ctx = ctx.clone();
        }
        if found.is_some() {
            self.host_idle.fetch_sub(1, Ordering::Relaxed);
        }
        found
    }

    /// Keep an instance after a successful call, unless it has served its
    /// calls or the host has enough idle ones.
    pub fn put(&self, store: Store<CallState>, instance: Instance, uses: u32) {
        if uses >= self.max_invocations {
            return;
        }
        let mut idle = self.lock();
        self.sweep(&mut idle);
        if self.host_idle.fetch_add(1, Ordering::Relaxed) >= self.max_idle {
            self.host_idle.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        idle.push(Warm {
            store,
            instance,
            uses,
        });
    }

    /// Idle instances of this unit that a call could still use.
    pub fn len(&self) -> usize {
        let mut idle = self.lock();
        self.sweep(&mut idle);
        idle.len()
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let n = self.lock().len();
        self.host_idle.fetch_sub(n, Ordering::Relaxed);
    }
}

pub(crate) type ReturnSlot = Arc<Mutex<Option<(Store<CallState>, Instance)>>>;

/// The store a call runs on. When the call's future ends, however it
/// ends (returned, failed, or dropped at its deadline), the store and
/// instance go to the call's return slot; the call then decides from its
/// outcome whether they may be kept warm.
pub(crate) struct Lease {
    store: Option<(Store<CallState>, Instance)>,
    slot: ReturnSlot,
}

impl Lease {
    pub fn new(store: Store<CallState>, instance: Instance, slot: &ReturnSlot) -> Self {
        Lease {
            store: Some((store, instance)),
            slot: slot.clone(),
        }
    }

    fn store(&self) -> &Store<CallState> {
        &self
            .store
            .as_ref()
            .expect("a lease holds its store until dropped")
            .0
    }

    fn store_mut(&mut self) -> &mut Store<CallState> {
        &mut self
            .store
            .as_mut()
            .expect("a lease holds its store until dropped")
            .0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pair) = self.store.take() {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(pair);
        }
    }
}

impl AsContext for Lease {
    type Data = CallState;

    fn as_context(&self) -> StoreContext<'_, CallState> {
        self.store().as_context()
    }
}

impl AsContextMut for Lease {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, CallState> {
        self.store_mut().as_context_mut()
    }
}
