//! Generated bindings for the `junction:connector` contract.
//!
//! Kept apart from the logic that uses them (as wasmtime's
//! `wasi-http/src/p2/bindings.rs` does): the host trait impls live one file
//! per interface beside this file, the export calls in `host::call`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    // The widest world: every export a component may have; which ones a
    // component really has is read from it at load (`contract_exports`).
    world: "full-connector",
    // Host imports reach the store's services, which may do I/O (a database
    // in later versions), so they are async.
    // `tracing`: a TRACE span per import a guest calls (its module and
    // function, not its arguments), nested in the call's span; see
    // `crate::telemetry`.
    imports: { default: async | trappable | tracing },
    exports: { default: async },
    require_store_data_send: true,
});

pub use exports::junction::connector::{
    adapter, describe, features, listener, lookup, mapper, tasks, webhooks,
};
pub use junction::connector::{binder, config, jobs, log, records, state, types};
