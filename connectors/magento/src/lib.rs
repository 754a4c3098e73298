//! Junction's Magento 2 connector: one component with the adapter (REST
//! calls, paging, rate limits), the mapper for 2.3 and later, and a
//! listener that exports local price, stock and order-state changes.
//! Mappers are in [`mapping`] and are tested natively.

mod adapter;
pub mod mapping;

use junction_guest::serde_json::{Value, json};
use junction_guest::{
    Adapter, Connector, Error, Event, JobRequest, Listener, Manifest, Operations, Page,
    RemoteRecord,
};

use mapping::Shape;

pub struct Magento;

impl Connector for Magento {
    fn manifest() -> Manifest {
        let read = Operations::SEARCH | Operations::READ | Operations::IMPORT;
        let both = read | Operations::WRITE | Operations::EXPORT;
        Manifest::new(
            "magento",
            env!("CARGO_PKG_VERSION"),
            "magento",
            ">=2.0.0, <3.0.0",
        )
        .model("category", read)
        .model("product", both | Operations::DELETE)
        .model("customer", read)
        .model("order", both)
        .event("record-written:product")
        .event("record-written:order")
        .event("record-deleted:product")
        .settings_schema(json!({"type": "object", "properties": {}, "additionalProperties": false}))
        .secret("token")
    }
}

impl Adapter for Magento {
    fn check(_settings: &Value) -> Result<String, Error> {
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
    fn write(model: &str, id: &str, data: &Value) -> Result<(), Error> {
        adapter::write(model, id, data)
    }
    fn delete(model: &str, id: &str) -> Result<(), Error> {
        adapter::delete(model, id)
    }
}

magento_mapper!(Magento, Shape::Current);

/// Fields whose local change goes back to the shop.
const EXPORTED: &[(&str, &[&str])] = &[("product", &["price", "stock"]), ("order", &["state"])];

impl Listener for Magento {
    fn on_event(backend: &str, event: &Event) -> Result<Vec<JobRequest>, Error> {
        let Some(local_id) = event.local_id.as_deref() else {
            return Ok(Vec::new());
        };
        if event.name == "record-deleted" {
            return Ok(vec![JobRequest::delete_remote(
                backend,
                &event.model,
                local_id,
            )]);
        }
        let Some((_, fields)) = EXPORTED.iter().find(|(m, _)| *m == event.model) else {
            return Ok(Vec::new());
        };
        let changed: Vec<String> = event
            .changed_fields
            .iter()
            .filter(|f| fields.contains(&f.as_str()))
            .cloned()
            .collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![JobRequest::export_record(
            backend,
            &event.model,
            local_id,
            &changed,
        )])
    }
}

// The optional capabilities of the `full-connector` world: none offered.
impl junction_guest::Features for Magento {}
impl junction_guest::Lookup for Magento {}
impl junction_guest::Webhooks for Magento {}
impl junction_guest::Tasks for Magento {}

junction_guest::export!(Magento);
