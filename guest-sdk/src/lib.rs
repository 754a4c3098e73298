//! The Rust guest SDK for Junction connectors.
//!
//! A connector is a WebAssembly component built for `wasm32-wasip2` that
//! implements the `junction:connector` contract in `wit/`. This crate gives
//! it the pieces every connector needs; it never depends on the runtime.
//!
//! - [`Connector`], [`Adapter`], [`Mapper`], [`Listener`] and [`export!`]:
//!   implement the traits on one type and export it; the generated
//!   bindings stay hidden. [`Features`] declares the optional
//!   capabilities (match fields for adoption by natural key, [`Lookup`]
//!   for ids-only listing and search by key, [`Webhooks`], [`Tasks`]).
//! - [`http`]: an outbound HTTP client on `wasi:http` that reports *why* a
//!   request failed (denied by the operator's allowlist, a body over the
//!   host's cap, a timeout), and turns statuses into the contract's errors
//!   (`Retry-After` included).
//! - [`Error`]: the contract's error variant on the guest side.
//! - [`mapping`]: declarative record mapping (direct, converted, relations
//!   through the binder, children, create-only, changed-only), natively
//!   testable.
//! - [`oauth`] and [`paging`]: OAuth2 client credentials (token kept in
//!   the backend's state, renewed before expiry and once on a 401) and
//!   cursor-paged search answers.
//! - [`host`]: the host's imports (log, backend, binder, records, jobs,
//!   state).

#[doc(hidden)]
pub mod bindings;
mod connector;
pub mod error;
pub mod host;
pub mod http;
pub mod mapping;
pub mod oauth;
mod optional;
pub mod paging;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod types;

pub use connector::{Adapter, Connector, Listener, Mapper};
pub use error::Error;
pub use optional::{FeatureSet, Features, IdPage, Lookup, Tasks, Webhook, Webhooks};
pub use types::{
    Dependency, Event, JobRequest, LocalDependency, LocalRecord, Manifest, Operations, Page,
    RemoteRecord,
};

/// Re-exported so that connectors use the same `serde_json` as the SDK.
pub use serde_json;
