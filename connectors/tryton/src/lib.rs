//! Junction's Tryton connector (Tryton 8, REST API): the ERP end of the
//! shop ⇄ Junction ⇄ ERP use case. Parties are customers (matched by
//! email), product variants are products (matched by code = SKU, with
//! their template's list price and their stock in the warehouse), sales
//! are orders (matched by reference = the shop's order number), imported
//! incrementally by `write_date` and exported: a local customer or a new
//! local order from another backend becomes a Tryton party or a draft sale
//! with its lines, its products created first (with their stock) when
//! Tryton does not have them. Local records are the hub: this connector
//! never talks to the shop.
//!
//! [`rest`] is the HTTP client (company in `X-Tryton-Context`), [`adapter`]
//! the calls per operation, [`mapping`] the pure record mapping per Tryton
//! version, [`values`] Tryton's JSON encodings of datetimes and decimals.

mod adapter;
pub mod mapping;
mod rest;
pub mod values;

use junction_guest::host::HostBinder;
use junction_guest::mapping::Binder;
use junction_guest::serde_json::{Value, json};
use junction_guest::{
    Adapter, Connector, Dependency, Error, Event, FeatureSet, Features, IdPage, JobRequest,
    Listener, LocalDependency, LocalRecord, Lookup, Manifest, Mapper, Operations, Page,
    RemoteRecord, Tasks, Webhooks, host,
};

use mapping::Version;

pub struct Tryton;

impl Connector for Tryton {
    fn manifest() -> Manifest {
        let both = Operations::SEARCH
            | Operations::READ
            | Operations::IMPORT
            | Operations::WRITE
            | Operations::EXPORT;
        Manifest::new("tryton", env!("CARGO_PKG_VERSION"), "tryton", ">=8.0.0, <9.0.0")
            .model("customer", both)
            .model("product", both)
            .model("order", both | Operations::DELETE)
            .event("record-created:customer")
            .event("record-written:customer")
            .event("record-created:order")
            .event("record-written:order")
            .event("record-deleted:order")
            .settings_schema(json!({
                "type": "object",
                "properties": {
                    "company": {"type": "integer", "description": "the id of the Tryton company the backend works in"},
                    "warehouse": {"type": "integer", "description": "the id of the warehouse (stock location) whose stock is synced; Tryton's first warehouse when absent"}
                },
                "required": ["company"],
                "additionalProperties": false
            }))
            .secret("key")
    }
}

impl Adapter for Tryton {
    fn check(_settings: &Value) -> Result<String, Error> {
        version()?;
        adapter::check()
    }
    fn search(
        model: &str,
        filter: &Value,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page, Error> {
        adapter::search(model, filter, cursor, page_size)
    }
    fn read(model: &str, id: &str) -> Result<RemoteRecord, Error> {
        adapter::read(model, id)
    }
    fn create(model: &str, data: &Value) -> Result<String, Error> {
        adapter::create(model, data)
    }
    fn write(model: &str, id: &str, data: &Value) -> Result<(), Error> {
        adapter::write(model, id, data)
    }
    fn delete(model: &str, id: &str) -> Result<(), Error> {
        adapter::delete(model, id)
    }
}

/// The mapper for the backend's configured Tryton version.
fn version() -> Result<Version, Error> {
    Version::of(&host::backend().version)
}

impl Mapper for Tryton {
    fn map_import(model: &str, record: &RemoteRecord, binder: &dyn Binder) -> Result<Value, Error> {
        mapping::map_import(version()?, model, record, binder)
    }

    fn map_export(
        model: &str,
        record: &LocalRecord,
        changed: Option<&[String]>,
        binder: &dyn Binder,
    ) -> Result<Value, Error> {
        mapping::map_export(version()?, model, record, changed, binder)
    }

    fn dependencies(model: &str, record: &RemoteRecord) -> Result<Vec<Dependency>, Error> {
        Ok(mapping::dependencies(model, record))
    }

    fn export_dependencies(
        model: &str,
        record: &LocalRecord,
    ) -> Result<Vec<LocalDependency>, Error> {
        Ok(mapping::export_dependencies(model, record))
    }
}

/// Customer fields Tryton keeps.
const CUSTOMER_FIELDS: &[&str] = &["email", "first_name", "last_name"];

/// Another backend's new or changed customer goes to Tryton's party; an
/// order new to Tryton becomes a sale (once: Tryton owns it from there),
/// and a deleted order cancels its sale. Products go to Tryton only as an
/// order's dependencies: the ERP is their master. Customers deleted
/// elsewhere stay in the ERP, which keeps parties for its invoices.
impl Listener for Tryton {
    fn on_event(backend: &str, event: &Event) -> Result<Vec<JobRequest>, Error> {
        let Some(local_id) = event.local_id.as_deref() else {
            return Ok(Vec::new());
        };
        if event.name == "record-deleted" {
            return Ok(if event.model == "order" {
                vec![JobRequest::delete_remote(backend, "order", local_id)]
            } else {
                Vec::new()
            });
        }
        let fields: Vec<String> = match event.model.as_str() {
            "customer" => event
                .changed_fields
                .iter()
                .filter(|f| CUSTOMER_FIELDS.contains(&f.as_str()))
                .cloned()
                .collect(),
            "order" if HostBinder.to_external("order", local_id).is_none() => {
                event.changed_fields.clone()
            }
            _ => Vec::new(),
        };
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![JobRequest::export_record(
            backend,
            &event.model,
            local_id,
            &fields,
        )])
    }
}

impl Features for Tryton {
    fn features() -> FeatureSet {
        FeatureSet::default()
            .match_key("customer", "email")
            .match_key("product", "sku")
            .match_key("order", "number")
            .find("customer")
            .find("product")
            .find("order")
            .list_ids("customer")
            .list_ids("product")
            .list_ids("order")
    }
}

impl Lookup for Tryton {
    fn list_ids(model: &str, cursor: Option<&str>, page_size: u32) -> Result<IdPage, Error> {
        adapter::list_ids(model, cursor, page_size)
    }
    fn find(model: &str, field: &str, value: &str) -> Result<Vec<String>, Error> {
        adapter::find(model, field, value)
    }
}

impl Webhooks for Tryton {}
impl Tasks for Tryton {}

junction_guest::export!(Tryton);
