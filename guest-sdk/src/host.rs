//! What the host gives a running call: its log, the backend it runs for,
//! the binder, local records, the job queue and per-backend state. These
//! are the contract's imports; natively (in `cargo test`) there is no host,
//! so mappers take a [`Binder`] argument that a test fills in itself.

use serde_json::Value;

use crate::Error;
use crate::bindings::junction::connector::{binder, config, jobs, log as wit_log, records, state};
use crate::mapping::Binder;
use crate::types::{JobRequest, LocalRecord, parse};

pub use wit_log::Level;

/// Append a line to the call's log (shown with the job).
pub fn log(level: Level, message: &str) {
    wit_log::log(level, message);
}

pub fn info(message: &str) {
    log(Level::Info, message);
}

pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// The backend this call runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub kind: String,
    pub version: String,
    /// Such as `https://shop.example.com`, without a trailing slash.
    pub base_url: String,
}

pub fn backend() -> Backend {
    let b = config::backend();
    Backend {
        name: b.name,
        kind: b.kind,
        version: b.version,
        base_url: b.base_url.trim_end_matches('/').to_string(),
    }
}

/// The backend's non-secret settings (a JSON object).
pub fn settings() -> Result<Value, Error> {
    parse("the backend settings", &config::settings())
}

/// A local record, if it exists.
pub fn record(model: &str, id: &str) -> Result<Option<LocalRecord>, Error> {
    records::get(model, id)
        .map(LocalRecord::try_from)
        .transpose()
}

/// Enqueue a job; returns its id.
pub fn enqueue(request: JobRequest) -> Result<String, Error> {
    jobs::enqueue(&request.into()).map_err(Into::into)
}

/// A small per-backend value, such as a cursor.
pub fn state_get(key: &str) -> Option<String> {
    state::get(key)
}

pub fn state_set(key: &str, value: &str) -> Result<(), Error> {
    state::set(key, value).map_err(Into::into)
}

/// The host's binder for this backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostBinder;

impl Binder for HostBinder {
    fn to_local(&self, model: &str, external_id: &str) -> Option<String> {
        binder::to_local(model, external_id)
    }

    fn to_external(&self, model: &str, local_id: &str) -> Option<String> {
        binder::to_external(model, local_id)
    }
}

impl From<crate::bindings::junction::connector::types::Error> for Error {
    fn from(e: crate::bindings::junction::connector::types::Error) -> Self {
        use crate::bindings::junction::connector::types::Error as W;
        match e {
            W::Retryable(d) => Error::Retryable {
                after_seconds: d.seconds,
                message: d.message,
            },
            W::RateLimited(d) => Error::RateLimited {
                reset_seconds: d.seconds,
                message: d.message,
            },
            W::Permanent(m) => Error::Permanent(m),
            W::NotFound(m) => Error::NotFound(m),
            W::Config(m) => Error::Config(m),
            W::NothingToDo(m) => Error::NothingToDo(m),
        }
    }
}
