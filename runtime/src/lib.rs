//! Junction's runtime: the sandboxed component host, its capabilities, and
//! (in later modules) the job queue, storage and synchronizer.
//!
//! Start at [`host::Host`]: it loads connector components, checks them
//! against the `junction:connector` contract in `wit/`, and runs each call
//! in a fresh sandbox configured by a [`capabilities::CallContext`].

pub mod allowlist;
pub mod api;
pub mod backend;
pub mod capabilities;
pub mod config;
pub mod error;
pub mod events;
pub mod features;
pub mod grants;
pub mod host;
pub mod inspect;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod node;
pub mod queue;
pub mod registry;
pub mod secrets;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod text;
pub mod tls;

pub use capabilities::CallContext;
pub use error::{CallError, GuestError};
pub use host::{Host, HostConfig, Unit};
pub use limits::{EgressLimits, SandboxLimits};
