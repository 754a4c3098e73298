//! Subcommands of the `junction` binary that are more than a few lines.
//!
//! - [`serve`]: the long-lived service (node, admin API, dashboard).
//! - [`client`] and [`admin`]: the operator commands, which talk to a
//!   running server over the admin API.
//! - [`db`]: schema migration and copying between databases.
//! - [`dropdir`]: the service's watched folder of components.
//! - [`demo`]: the guided end-to-end sync on a local shop.
//! - [`new`]: `connector new`, a connector skeleton from `templates/`.

pub mod admin;
pub mod client;
pub mod db;
pub mod demo;
pub mod dropdir;
pub mod new;
pub mod repair;
pub mod serve;
