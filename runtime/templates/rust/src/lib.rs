//! {{name}}: companies of a HubSpot-CRM-v3-shaped API (Junction's
//! reference CRM, `demo-crm`) imported into local `company` records.
//!
//! Start here: add a model to the manifest, its API path to [`objects`]
//! and its fields to [`PROPERTIES`], then map them in the [`Mapper`]. The
//! host calls `search` page by page with `{"updated-since": ...}` after the
//! first import, and skips records whose `updated_at` is older than their
//! last sync: return it, or every import re-imports everything.

use junction_guest::mapping::{Binder, Direction, Mapping};
use junction_guest::oauth::OAuthClient;
use junction_guest::paging::{cursor_page, page_size};
use junction_guest::serde_json::{Value, json};
use junction_guest::{
    Adapter, Connector, Error, Listener, Manifest, Mapper, Operations, Page, RemoteRecord, host,
};

pub struct Companies;

/// The fields asked for with every company.
pub const PROPERTIES: &[&str] = &["name", "domain", "city", "country", "lastmodifieddate"];
/// The largest page the API gives.
pub const MAX_PAGE: u32 = 200;

impl Connector for Companies {
    fn manifest() -> Manifest {
        // The backends this connector serves: their kind and a semver range.
        Manifest::new(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "crm",
            ">=3.0.0, <4.0.0",
        )
        // Model → operations; the order of models is the import order.
        .model(
            "company",
            Operations::SEARCH | Operations::READ | Operations::IMPORT,
        )
        .settings_schema(json!({"type": "object"}))
        // The OAuth2 client's secret: the host adds the backend's
        // credentials to the token request only, never to the connector.
        .secret("client_secret")
    }
}

/// The API's object type of a local model.
pub fn objects(model: &str) -> Result<&'static str, Error> {
    match model {
        "company" => Ok("companies"),
        other => Err(Error::permanent(format!(
            "model {other:?} is not synced by {{name}}; it knows company"
        ))),
    }
}

fn api() -> OAuthClient {
    OAuthClient::new("/oauth/v1/token")
}

fn record(obj: &Value) -> Result<RemoteRecord, Error> {
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            let text: String = obj.to_string().chars().take(200).collect();
            return Err(Error::permanent(format!(
                "the CRM answered with something that is not an object with an id: {text}"
            )));
        }
    };
    Ok(RemoteRecord {
        external_id: id,
        updated_at: obj
            .get("updatedAt")
            .and_then(Value::as_str)
            .map(str::to_string),
        data: obj.clone(),
    })
}

impl Adapter for Companies {
    fn check(_settings: &Value) -> Result<String, Error> {
        let found: Value = api().json(
            "POST",
            "/crm/v3/objects/companies/search",
            &[],
            Some(&json!({"limit": 1})),
        )?;
        Ok(format!(
            "connected to the CRM at {}: {} companies",
            host::backend().base_url,
            found["total"]
        ))
    }

    fn search(
        model: &str,
        filter: &Value,
        cursor: Option<&str>,
        wanted: u32,
    ) -> Result<Page, Error> {
        let mut body = json!({
            "limit": page_size(wanted, MAX_PAGE),
            "properties": PROPERTIES,
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        });
        if let Some(since) = filter.get("updated-since").and_then(Value::as_str) {
            let since =
                json!({"propertyName": "lastmodifieddate", "operator": "GTE", "value": since});
            body["filterGroups"] = json!([{"filters": [since]}]);
        }
        if let Some(after) = cursor {
            body["after"] = json!(after);
        }
        let path = format!("/crm/v3/objects/{}/search", objects(model)?);
        let found: Value = api().json("POST", &path, &[], Some(&body))?;
        cursor_page(&found, record, "results", &["paging", "next", "after"])
    }

    fn read(model: &str, id: &str) -> Result<RemoteRecord, Error> {
        let path = format!(
            "/crm/v3/objects/{}/{}",
            objects(model)?,
            junction_guest::oauth::encode(id)
        );
        let found: Value =
            api().json("GET", &path, &[("properties", &PROPERTIES.join(","))], None)?;
        record(&found)
    }
}

impl Mapper for Companies {
    fn map_import(model: &str, record: &RemoteRecord, binder: &dyn Binder) -> Result<Value, Error> {
        objects(model)?;
        let properties = record.data.get("properties").cloned().unwrap_or(json!({}));
        let mut m = Mapping::new(&properties)?.binder(binder, Direction::Import);
        for field in ["name", "domain", "city", "country"] {
            m = m.direct(field, field);
        }
        m.finish()
    }
}

/// The manifest names no events, so the host never calls it.
impl Listener for Companies {}

// The optional capabilities of the `full-connector` world: none offered.
impl junction_guest::Features for Companies {}
impl junction_guest::Lookup for Companies {}
impl junction_guest::Webhooks for Companies {}
impl junction_guest::Tasks for Companies {}

junction_guest::export!(Companies);
