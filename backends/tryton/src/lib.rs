//! A real Tryton ERP for Junction's tests, benchmark and `junction demo
//! --erp`: Tryton 8.2 and its party, product, stock and sale modules are
//! installed from `tryton.lock` (hashes required, wheels only) into a
//! virtualenv, a template SQLite database is made once with `setup.py`
//! (modules activated, a company, a REST key), and every [`Server`] is a
//! copy of that template served by `trytond` on a free loopback port and
//! killed when dropped.
//!
//! [`python`] makes hash-pinned virtualenvs (the test artifacts' Python
//! SDK toolchain uses it too), [`install()`] the Tryton one with its
//! template, [`Server`] runs and calls one.

mod install;
pub mod python;
mod server;

pub use install::{DATABASE, Install, KEY, install};
pub use server::Server;

/// What failed while installing or running Tryton; each names the step
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} failed to start: {source}; {hint}")]
    Spawn {
        what: String,
        hint: String,
        source: std::io::Error,
    },
    #[error("{what} failed ({status}); see its output above")]
    Failed {
        what: String,
        status: std::process::ExitStatus,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("trytond did not answer on {addr} within {seconds} s; its log:\n{log}")]
    NotReady {
        addr: std::net::SocketAddr,
        seconds: u64,
        log: String,
    },
    #[error("tryton's REST API on {addr}: {reason}")]
    Rest {
        addr: std::net::SocketAddr,
        reason: String,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
