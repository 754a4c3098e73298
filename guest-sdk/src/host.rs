//! What the host gives a running call: its log, the backend it runs for,
//! the binder, local records, the job queue and per-backend state. These
//! are the contract's imports; natively (in `cargo test`) they answer from
//! the [`crate::testing::FakeHost`] a test runs the unit on, and mappers
//! take a [`Binder`] argument that a test may fill in itself.

use serde_json::Value;

use crate::Error;
use crate::bindings::junction::connector::log as wit_log;
#[cfg(target_arch = "wasm32")]
use crate::bindings::junction::connector::{binder, config, jobs, records, state};
use crate::mapping::Binder;
#[cfg(target_arch = "wasm32")]
use crate::types::parse;
use crate::types::{JobRequest, LocalRecord};

pub use wit_log::Level;

/// Append a line to the call's log (shown with the job).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit_log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::with("host::log", |h| h.logs.push((level, message.to_string())));
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
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with("host::backend", |h| h.backend.clone());
    #[cfg(target_arch = "wasm32")]
    let b = config::backend();
    #[cfg(target_arch = "wasm32")]
    Backend {
        name: b.name,
        kind: b.kind,
        version: b.version,
        base_url: b.base_url.trim_end_matches('/').to_string(),
    }
}

/// The backend's non-secret settings (a JSON object).
pub fn settings() -> Result<Value, Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(crate::testing::with("host::settings", |h| {
        h.settings.clone()
    }));
    #[cfg(target_arch = "wasm32")]
    parse("the backend settings", &config::settings())
}

/// A local record, if it exists.
pub fn record(model: &str, id: &str) -> Result<Option<LocalRecord>, Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(crate::testing::with("host::record", |h| {
        h.records.get(&(model.to_string(), id.to_string())).cloned()
    }));
    #[cfg(target_arch = "wasm32")]
    records::get(model, id)
        .map(LocalRecord::try_from)
        .transpose()
}

/// Enqueue a job; returns its id.
pub fn enqueue(request: JobRequest) -> Result<String, Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return Ok(crate::testing::with("host::enqueue", |h| {
        h.jobs.push(request);
        h.jobs.len().to_string()
    }));
    #[cfg(target_arch = "wasm32")]
    jobs::enqueue(&request.into()).map_err(Into::into)
}

/// A small per-backend value, such as a cursor.
pub fn state_get(key: &str) -> Option<String> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with("host::state_get", |h| h.state.get(key).cloned());
    #[cfg(target_arch = "wasm32")]
    state::get(key)
}

pub fn state_set(key: &str, value: &str) -> Result<(), Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return {
        crate::testing::with("host::state_set", |h| {
            h.state.insert(key.into(), value.into())
        });
        Ok(())
    };
    #[cfg(target_arch = "wasm32")]
    state::set(key, value).map_err(Into::into)
}

/// The host's binder for this backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostBinder;

impl Binder for HostBinder {
    fn to_local(&self, model: &str, external_id: &str) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with("the binder", |h| {
            h.bindings
                .get(&(model.to_string(), external_id.to_string()))
                .cloned()
        });
        #[cfg(target_arch = "wasm32")]
        binder::to_local(model, external_id)
    }

    fn to_external(&self, model: &str, local_id: &str) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with("the binder", |h| {
            h.bindings
                .iter()
                .find(|((m, _), l)| m == model && l.as_str() == local_id)
                .map(|((_, e), _)| e.clone())
        });
        #[cfg(target_arch = "wasm32")]
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
