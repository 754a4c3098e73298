//! The Rust guest SDK for Junction connectors.
//!
//! A connector is a WebAssembly component built for `wasm32-wasip2` that
//! implements the `junction:connector` contract in `wit/`. This crate gives
//! it the pieces every connector needs; it never depends on the runtime.
//!
//! - [`http`]: an outbound HTTP client on `wasi:http` that reports *why* a
//!   request failed (denied by the operator's allowlist, a body over the
//!   host's cap, a timeout), instead of a generic connection error, and
//!   turns statuses into the contract's errors (`Retry-After` included).
//! - [`Error`]: the contract's error variant on the guest side.
//! - [`mapping`]: declarative record mapping (direct, converted, relations
//!   through the binder, children, create-only, changed-only), natively
//!   testable.

pub mod error;
pub mod http;
pub mod mapping;

pub use error::Error;
