//! Junction's Magento 2 connector: one component with the adapter (REST
//! calls, paging, rate limits), the mapper for 2.3 and later, and a
//! listener that exports local price, stock and order-state changes.
//! Mappers are in [`mapping`] and are tested natively.

mod adapter;
pub mod mapping;

use junction_guest::mapping::Binder;
use junction_guest::serde_json::{Value, json};
use junction_guest::{
    Adapter, Connector, Error, Event, FeatureSet, Features, IdPage, JobRequest, Listener, Lookup,
    Manifest, Operations, Page, RemoteRecord, Tasks, Webhook, Webhooks,
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

impl Features for Magento {
    fn features() -> FeatureSet {
        FeatureSet::default()
            // A customer is the same person in every system by email, a
            // product the same article by SKU.
            .match_key("customer", "email")
            .match_key("product", "sku")
            .find("customer")
            .find("product")
            .list_ids("product")
            .list_ids("customer")
            .list_ids("order")
            .list_ids("category")
            .webhook("changes")
            .task(
                "ship-order",
                "ship a local order in the shop with a tracking number: {\"order\": LOCAL_ID, \"track_number\": …, \"carrier\": …}",
            )
    }
}

impl Lookup for Magento {
    fn list_ids(model: &str, cursor: Option<&str>, page_size: u32) -> Result<IdPage, Error> {
        adapter::list_ids(model, cursor, page_size)
    }
    fn find(model: &str, field: &str, value: &str) -> Result<Vec<String>, Error> {
        adapter::find(model, field, value)
    }
}

/// The shop's webhook `changes`: `{"entity": "product", "id": "MB-1",
/// "event": "updated" | "deleted"}`, one change per call.
impl Webhooks for Magento {
    fn on_webhook(backend: &str, hook: &Webhook) -> Result<Vec<JobRequest>, Error> {
        let body = hook.json()?;
        let (Some(entity), Some(id)) = (body["entity"].as_str(), body["id"].as_str()) else {
            return Err(Error::permanent(
                "the change names no \"entity\" and \"id\" (strings)",
            ));
        };
        if !["category", "product", "customer", "order"].contains(&entity) {
            // Something this connector does not sync: nothing to do.
            return Ok(Vec::new());
        }
        Ok(vec![match body["event"].as_str() {
            Some("deleted") => JobRequest::delete_local(backend, entity, id, true),
            _ => JobRequest::import_record(backend, entity, id),
        }])
    }
}

impl Tasks for Magento {
    fn run(name: &str, args: &Value) -> Result<String, Error> {
        if name != "ship-order" {
            return Err(Error::permanent(format!(
                "this connector has no task {name}"
            )));
        }
        let text = |field: &str| args[field].as_str().filter(|s| !s.is_empty());
        let (Some(order), Some(number)) = (text("order"), text("track_number")) else {
            return Err(Error::permanent(
                "ship-order needs \"order\" (a local order id) and \"track_number\"",
            ));
        };
        let Some(external) = junction_guest::host::HostBinder.to_external("order", order) else {
            return Err(Error::permanent(format!(
                "local order {order} is not in this shop (it has no binding); import or export it first"
            )));
        };
        let carrier = text("carrier").unwrap_or("custom");
        let shipment = adapter::ship(&external, number, carrier, text("title").unwrap_or(carrier))?;
        Ok(format!(
            "shipped order {external} (shipment {shipment}) with tracking number {number}"
        ))
    }
}

junction_guest::export!(Magento);
