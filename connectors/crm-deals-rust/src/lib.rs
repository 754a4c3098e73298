//! Companies and deals of a HubSpot-CRM-v3-shaped API, imported into local
//! `company` and `deal` records (a deal linked to its company through the
//! binder): `connectors/crm-deals-python` in Rust, so that the imports
//! benchmark runs the same work in each language.

use junction_guest::mapping::{Binder, Direction, Mapping};
use junction_guest::oauth::OAuthClient;
use junction_guest::paging::{cursor_page, page_size};
use junction_guest::serde_json::{Value, json};
use junction_guest::{
    Adapter, Connector, Dependency, Error, Listener, Manifest, Mapper, Operations, Page,
    RemoteRecord, host,
};

pub struct Deals;

/// The fields asked for with each object type.
fn properties(model: &str) -> &'static [&'static str] {
    match model {
        "company" => &[
            "name",
            "domain",
            "industry",
            "city",
            "country",
            "lastmodifieddate",
        ],
        _ => &[
            "dealname",
            "amount",
            "dealstage",
            "closedate",
            "associatedcompanyid",
            "lastmodifieddate",
        ],
    }
}

fn objects(model: &str) -> Result<&'static str, Error> {
    match model {
        "company" => Ok("companies"),
        "deal" => Ok("deals"),
        other => Err(Error::permanent(format!(
            "model {other:?} is not synced by this connector; it knows company and deal"
        ))),
    }
}

fn record(obj: &Value) -> Result<RemoteRecord, Error> {
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            let text: String = obj.to_string().chars().take(200).collect();
            return Err(Error::permanent(format!(
                "the CRM answered with something that is not an object: {text}"
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

fn api() -> OAuthClient {
    OAuthClient::new("/oauth/v1/token")
}

impl Connector for Deals {
    fn manifest() -> Manifest {
        let ops = Operations::SEARCH | Operations::READ | Operations::IMPORT;
        Manifest::new(
            "crm-deals-rust",
            env!("CARGO_PKG_VERSION"),
            "crm",
            ">=3.0.0, <4.0.0",
        )
        // Import order: a deal's company first.
        .model("company", ops)
        .model("deal", ops)
        .settings_schema(json!({"type": "object"}))
        .secret("client_secret")
    }
}

impl Adapter for Deals {
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
            "limit": page_size(wanted, 200),
            "properties": properties(model),
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
        let found: Value = api().json(
            "GET",
            &path,
            &[("properties", &properties(model).join(","))],
            None,
        )?;
        record(&found)
    }
}

fn amount(v: &Value) -> Result<Value, Error> {
    match v {
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(|f| json!(f))
            .map_err(|_| Error::permanent(format!("amount {s:?} is not a number"))),
        other => Ok(other.clone()),
    }
}

impl Mapper for Deals {
    fn map_import(model: &str, record: &RemoteRecord, binder: &dyn Binder) -> Result<Value, Error> {
        let properties = record.data.get("properties").cloned().unwrap_or(json!({}));
        let m = Mapping::new(&properties)?.binder(binder, Direction::Import);
        match objects(model)? {
            "companies" => ["name", "domain", "industry", "city", "country"]
                .iter()
                .fold(m, |m, f| m.direct(f, f))
                .finish(),
            _ => m
                .direct("dealname", "name")
                .direct("dealstage", "stage")
                .convert("amount", "amount", amount)
                .direct("closedate", "close_date")
                .relation("associatedcompanyid", "company", "company")
                .finish(),
        }
    }

    fn dependencies(model: &str, record: &RemoteRecord) -> Result<Vec<Dependency>, Error> {
        let company = record.data["properties"]["associatedcompanyid"].as_str();
        Ok(match (model, company) {
            ("deal", Some(c)) if !c.is_empty() => vec![Dependency::new("company", c)],
            _ => Vec::new(),
        })
    }
}

/// The manifest names no events, so the host never calls it.
impl Listener for Deals {}

// The optional capabilities of the `full-connector` world: none offered.
impl junction_guest::Features for Deals {}
impl junction_guest::Lookup for Deals {}
impl junction_guest::Webhooks for Deals {}
impl junction_guest::Tasks for Deals {}

junction_guest::export!(Deals);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Bound(HashMap<(String, String), String>);

    impl Binder for Bound {
        fn to_local(&self, model: &str, external_id: &str) -> Option<String> {
            self.0.get(&(model.into(), external_id.into())).cloned()
        }
        fn to_external(&self, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn a_deal_maps_with_its_companys_local_id_and_needs_it_first() {
        let deal = RemoteRecord {
            external_id: "77".into(),
            updated_at: None,
            data: json!({"properties": {"dealname": "Big one", "amount": "1200.5", "dealstage": "closedwon", "associatedcompanyid": "5"}}),
        };
        assert_eq!(
            Deals::dependencies("deal", &deal).unwrap(),
            [Dependency::new("company", "5")]
        );
        assert!(Deals::map_import("deal", &deal, &Bound(HashMap::new())).is_err());
        let bound = Bound(HashMap::from([(
            ("company".into(), "5".into()),
            "c-5".into(),
        )]));
        assert_eq!(
            Deals::map_import("deal", &deal, &bound).unwrap(),
            json!({"name": "Big one", "stage": "closedwon", "amount": 1200.5, "company": "c-5"})
        );
    }
}
