//! The traits a connector implements — [`Connector`] (what it is),
//! [`Adapter`] (talks to the backend), [`Mapper`] (transforms records) and
//! [`Listener`] (turns events into jobs) — and [`export!`](crate::export),
//! which makes a type implementing them the component's exports.
//!
//! Every method has a default that says the operation is not supported, so
//! a mapper-only component implements just `Connector` and `Mapper` and
//! writes `impl Adapter for X {}` and `impl Listener for X {}`. The host
//! picks units by the operations the manifest declares, not by the exports.

use serde_json::Value;

use crate::Error;
use crate::bindings::exports::junction::connector::{adapter, describe, listener, mapper};
use crate::bindings::junction::connector::types as wit;
use crate::host::HostBinder;
use crate::mapping::Binder;
use crate::types::{
    Dependency, Event, JobRequest, LocalDependency, LocalRecord, Manifest, Page, RemoteRecord,
    parse,
};

fn unsupported(what: &str, model: &str) -> Error {
    Error::permanent(format!("this connector does not {what} {model} records"))
}

/// What the component is.
pub trait Connector {
    fn manifest() -> Manifest;
}

/// Talks to the backend (OCA's BackendAdapter).
pub trait Adapter {
    /// Verify the connection; return a line for the operator.
    fn check(_settings: &Value) -> Result<String, Error> {
        Err(Error::permanent("this connector has no connection check"))
    }
    /// One page of records matching `filter` (`{"updated-since": RFC 3339}`
    /// for incremental imports).
    fn search(
        model: &str,
        _filter: &Value,
        _cursor: Option<&str>,
        _page_size: u32,
    ) -> Result<Page, Error> {
        Err(unsupported("search", model))
    }
    fn read(model: &str, _id: &str) -> Result<RemoteRecord, Error> {
        Err(unsupported("read", model))
    }
    fn create(model: &str, _data: &Value) -> Result<String, Error> {
        Err(unsupported("create", model))
    }
    fn write(model: &str, _id: &str, _data: &Value) -> Result<(), Error> {
        Err(unsupported("write", model))
    }
    fn delete(model: &str, _id: &str) -> Result<(), Error> {
        Err(unsupported("delete", model))
    }
}

/// Transforms records (OCA's Mapper). The binder is an argument so that a
/// mapper runs natively in `cargo test` with a binder the test builds.
pub trait Mapper {
    fn map_import(
        model: &str,
        _record: &RemoteRecord,
        _binder: &dyn Binder,
    ) -> Result<Value, Error> {
        Err(unsupported("import", model))
    }
    /// `changed` is `None` on create (map everything).
    fn map_export(
        model: &str,
        _record: &LocalRecord,
        _changed: Option<&[String]>,
        _binder: &dyn Binder,
    ) -> Result<Value, Error> {
        Err(unsupported("export", model))
    }
    /// Records to import before this one (an order's customer).
    fn dependencies(_model: &str, _record: &RemoteRecord) -> Result<Vec<Dependency>, Error> {
        Ok(Vec::new())
    }
    /// Local records to export before this one (a new order's customer);
    /// the host exports those the backend does not have yet.
    fn export_dependencies(
        _model: &str,
        _record: &LocalRecord,
    ) -> Result<Vec<LocalDependency>, Error> {
        Ok(Vec::new())
    }
}

/// Turns events into jobs; returning none skips the event.
pub trait Listener {
    fn on_event(_backend: &str, _event: &Event) -> Result<Vec<JobRequest>, Error> {
        Ok(Vec::new())
    }
}

fn object(value: Value, what: &str) -> Result<String, wit::Error> {
    if value.is_object() {
        Ok(value.to_string())
    } else {
        Err(Error::permanent(format!("{what} must be a JSON object")).into())
    }
}

impl<T: Connector> describe::Guest for T {
    fn describe() -> wit::Manifest {
        T::manifest().into()
    }
}

impl<T: Adapter> adapter::Guest for T {
    fn check(settings: String) -> Result<String, wit::Error> {
        let settings = parse("the settings", &settings)?;
        Ok(T::check(&settings)?)
    }

    fn search(
        model: String,
        filter: String,
        cursor: Option<String>,
        page_size: u32,
    ) -> Result<wit::Page, wit::Error> {
        let filter = parse("the search filter", &filter)?;
        Ok(T::search(&model, &filter, cursor.as_deref(), page_size)?.into())
    }

    fn read(model: String, id: String) -> Result<wit::RemoteRecord, wit::Error> {
        Ok(T::read(&model, &id)?.into())
    }

    fn create(model: String, data: String) -> Result<String, wit::Error> {
        Ok(T::create(&model, &parse("the record to create", &data)?)?)
    }

    fn write(model: String, id: String, data: String) -> Result<(), wit::Error> {
        Ok(T::write(
            &model,
            &id,
            &parse("the record to write", &data)?,
        )?)
    }

    fn delete(model: String, id: String) -> Result<(), wit::Error> {
        Ok(T::delete(&model, &id)?)
    }
}

impl<T: Mapper> mapper::Guest for T {
    fn map_import(model: String, record: wit::RemoteRecord) -> Result<String, wit::Error> {
        let record = RemoteRecord::try_from(record)?;
        object(
            T::map_import(&model, &record, &HostBinder)?,
            "a mapped record",
        )
    }

    fn map_export(
        model: String,
        record: wit::LocalRecord,
        changed: Option<Vec<String>>,
    ) -> Result<String, wit::Error> {
        let record = LocalRecord::try_from(record)?;
        object(
            T::map_export(&model, &record, changed.as_deref(), &HostBinder)?,
            "a mapped record",
        )
    }

    fn dependencies(
        model: String,
        record: wit::RemoteRecord,
    ) -> Result<Vec<wit::Dependency>, wit::Error> {
        let record = RemoteRecord::try_from(record)?;
        Ok(T::dependencies(&model, &record)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    fn export_dependencies(
        model: String,
        record: wit::LocalRecord,
    ) -> Result<Vec<wit::LocalDependency>, wit::Error> {
        let record = LocalRecord::try_from(record)?;
        Ok(T::export_dependencies(&model, &record)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

impl<T: Listener> listener::Guest for T {
    fn on_event(backend: String, event: wit::Event) -> Result<Vec<wit::JobRequest>, wit::Error> {
        let event = Event::try_from(event)?;
        Ok(T::on_event(&backend, &event)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Make `$ty` — which implements [`Connector`], [`Adapter`], [`Mapper`],
/// [`Listener`] and the optional [`Features`](crate::Features),
/// [`Lookup`](crate::Lookup),
/// [`Webhooks`](crate::Webhooks) and [`Tasks`](crate::Tasks) — this
/// component's exports (the contract's `full-connector` world). Use once, in the crate built as
/// the component. Natively it exports nothing: the component's export
/// names (`junction:connector/adapter@0.1.2#search`) are not symbols a
/// native linker takes, and a crate built as `["cdylib", "rlib"]` must
/// still link for `cargo test`.
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_connector!($ty with_types_in $crate::bindings);
    };
}
