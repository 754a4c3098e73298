//! Junction's Tryton connector (Tryton 8, REST API), first slices: product
//! variants imported as local products (`sku` from the variant's code,
//! `name` and `price` from its template, matched by SKU) and Tryton
//! parties imported as local customers (`name` split into `first_name`
//! and `last_name`, `email` from the party's email contact mechanism),
//! incrementally by `write_date`, matched by email so that a shop's
//! customer and the ERP's party become one local record. A party without
//! an email (the company's own, a supplier) is not a customer: the mapper
//! says there is nothing to do. Sales and products come next.
//!
//! Every call names the company in `X-Tryton-Context` (the backend's
//! `company` setting): Tryton answers company-dependent fields only then.

mod values;

use junction_guest::http::{self, Request};
use junction_guest::mapping::Binder;
use junction_guest::serde_json::{Value, json};
use junction_guest::{
    Adapter, Connector, Error, FeatureSet, Features, IdPage, Listener, LocalRecord, Lookup,
    Manifest, Mapper, Operations, Page, RemoteRecord, Tasks, Webhooks, host,
};

pub use values::{base64url, datetime, rfc3339};

pub struct Tryton;

/// The fields read of a party.
const PARTY_FIELDS: &[&str] = &[
    "name",
    "code",
    "write_date",
    "create_date",
    "contact_mechanisms.type",
    "contact_mechanisms.value",
];

/// The fields read of a product variant (its template's name and price).
const PRODUCT_FIELDS: &[&str] = &[
    "code",
    "write_date",
    "create_date",
    "template.name",
    "template.list_price",
];

impl Connector for Tryton {
    fn manifest() -> Manifest {
        Manifest::new("tryton", env!("CARGO_PKG_VERSION"), "tryton", ">=8.0.0, <9.0.0")
            .model(
                "customer",
                Operations::SEARCH | Operations::READ | Operations::IMPORT,
            )
            .model(
                "product",
                Operations::SEARCH | Operations::READ | Operations::IMPORT,
            )
            .settings_schema(json!({
                "type": "object",
                "properties": {"company": {"type": "integer", "description": "the id of the Tryton company the backend works in"}},
                "required": ["company"],
                "additionalProperties": false
            }))
            .secret("key")
    }
}

/// The Tryton model behind a local model, and the fields read of it.
fn model_path(model: &str) -> Result<(&'static str, &'static [&'static str]), Error> {
    match model {
        "customer" => Ok(("party.party", PARTY_FIELDS)),
        "product" => Ok(("product.product", PRODUCT_FIELDS)),
        other => Err(Error::permanent(format!(
            "model {other:?} is not synced by this connector yet; it knows customer and product"
        ))),
    }
}

/// `GET` a REST path (after `/rest/model/`) with the company's context.
fn get(path: &str) -> Result<Value, Error> {
    let settings = host::settings()?;
    let company = settings["company"].as_i64().ok_or_else(|| {
        Error::Config(String::from(
            "the backend's settings need \"company\": the Tryton company's id",
        ))
    })?;
    let context = base64url(json!({"company": company}).to_string().as_bytes());
    let url = format!(
        "{}/rest/model/{path}",
        host::backend().base_url.trim_end_matches('/')
    );
    http::json(
        Request::get(&url).header("x-tryton-context", &context),
        None::<&()>,
    )
}

fn fields(names: &[&str]) -> String {
    names
        .iter()
        .map(|f| format!("f={f}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn record(party: Value) -> Result<RemoteRecord, Error> {
    let id = party["id"]
        .as_i64()
        .ok_or_else(|| Error::permanent("Tryton answered a record without an id"))?;
    Ok(RemoteRecord {
        external_id: id.to_string(),
        updated_at: rfc3339(&party["write_date"]).or_else(|| rfc3339(&party["create_date"])),
        data: party,
    })
}

impl Adapter for Tryton {
    fn check(_settings: &Value) -> Result<String, Error> {
        let found = get("party.party?s=1&f=name")?;
        Ok(format!(
            "connected to Tryton at {}: parties readable ({} on the first page)",
            host::backend().base_url,
            found.as_array().map_or(0, Vec::len)
        ))
    }

    /// Oldest change first, then by id, a page at a time (`s` and `p`).
    fn search(
        model: &str,
        filter: &Value,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<Page, Error> {
        let (path, names) = model_path(model)?;
        let offset: u64 = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| Error::permanent(format!("cursor {c:?} is not an offset")))?,
        };
        let size = page_size.clamp(1, 1000);
        let domain = match filter.get("updated-since").and_then(Value::as_str) {
            Some(since) => json!([["write_date", ">=", datetime(since)?]]),
            None => json!([]),
        };
        let order = json!([["write_date", "ASC"], ["id", "ASC"]]);
        let found = get(&format!(
            "{path}?d={}&o={}&s={size}&p={offset}&{}",
            base64url(domain.to_string().as_bytes()),
            base64url(order.to_string().as_bytes()),
            fields(names)
        ))?;
        let items = found
            .as_array()
            .ok_or_else(|| {
                Error::permanent("Tryton's search answered something other than a list")
            })?
            .iter()
            .cloned()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor =
            (items.len() as u32 == size).then(|| (offset + u64::from(size)).to_string());
        Ok(Page { items, next_cursor })
    }

    fn read(model: &str, id: &str) -> Result<RemoteRecord, Error> {
        let (path, names) = model_path(model)?;
        let id: u64 = id
            .parse()
            .map_err(|_| Error::NotFound(format!("{id:?} is not a Tryton id")))?;
        record(get(&format!("{path}/{id}?{}", fields(names)))?)
    }
}

/// The party's email: its first email contact mechanism.
fn email(party: &Value) -> Option<String> {
    party["contact_mechanisms"]
        .as_array()?
        .iter()
        .find(|m| m["type"] == "email")
        .and_then(|m| m["value"].as_str())
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
}

/// A variant as a local product: its code is the SKU; a variant without
/// one cannot be matched with a shop's product and is declined.
fn product(record: &RemoteRecord) -> Result<Value, Error> {
    let p = &record.data;
    let Some(sku) = p["code"].as_str().map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(Error::NothingToDo(format!(
            "product {} has no code: nothing to match it by",
            record.external_id
        )));
    };
    let mut out = json!({"sku": sku, "name": p["template"]["name"]});
    if let Some(price) = decimal(&p["template"]["list_price"])? {
        out["price"] = price;
    }
    Ok(out)
}

/// Tryton's Decimal object as a JSON number; `None` for null.
fn decimal(v: &Value) -> Result<Option<Value>, Error> {
    if v.is_null() {
        return Ok(None);
    }
    let text = v["decimal"]
        .as_str()
        .ok_or_else(|| Error::permanent(format!("{v} is not a Tryton Decimal")))?;
    let n: f64 = text
        .parse()
        .map_err(|_| Error::permanent(format!("Decimal {text:?} is not a number")))?;
    Ok(Some(json!(n)))
}

impl Mapper for Tryton {
    fn map_import(
        model: &str,
        record: &RemoteRecord,
        _binder: &dyn Binder,
    ) -> Result<Value, Error> {
        model_path(model)?;
        if model == "product" {
            return product(record);
        }
        let Some(email) = email(&record.data) else {
            return Err(Error::NothingToDo(format!(
                "party {} has no email: not a customer",
                record.external_id
            )));
        };
        let name = record.data["name"].as_str().unwrap_or_default().trim();
        let (first, last) = name.rsplit_once(' ').unwrap_or(("", name));
        Ok(json!({"email": email, "first_name": first, "last_name": last}))
    }

    fn map_export(
        model: &str,
        _record: &LocalRecord,
        _changed: Option<&[String]>,
        _binder: &dyn Binder,
    ) -> Result<Value, Error> {
        Err(Error::permanent(format!(
            "this connector does not export {model} records to Tryton yet"
        )))
    }
}

impl Listener for Tryton {}

impl Features for Tryton {
    fn features() -> FeatureSet {
        FeatureSet::default()
            .match_key("customer", "email")
            .match_key("product", "sku")
            .list_ids("customer")
            .list_ids("product")
    }
}

impl Lookup for Tryton {
    fn list_ids(model: &str, cursor: Option<&str>, page_size: u32) -> Result<IdPage, Error> {
        let page = Self::search(model, &json!({}), cursor, page_size)?;
        Ok(IdPage {
            ids: page.items.into_iter().map(|r| r.external_id).collect(),
            next_cursor: page.next_cursor,
        })
    }
}

impl Webhooks for Tryton {}
impl Tasks for Tryton {}

junction_guest::export!(Tryton);

#[cfg(test)]
mod tests {
    use super::*;

    struct NoBinder;
    impl Binder for NoBinder {
        fn to_local(&self, _: &str, _: &str) -> Option<String> {
            None
        }
        fn to_external(&self, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    fn party(mechanisms: Value) -> RemoteRecord {
        record(json!({"id": 3, "name": "Grace Brewster Hopper", "contact_mechanisms": mechanisms,
                      "write_date": {"__class__": "datetime", "year": 2026, "month": 12, "day": 4,
                                     "hour": 12, "minute": 14, "second": 43, "microsecond": 418305}}))
        .unwrap()
    }

    #[test]
    fn a_variant_is_a_product_by_its_code_with_its_templates_price() {
        let p = record(json!({"id": 1, "code": "DS-00001",
            "template": {"name": "Ember Mug", "list_price": {"__class__": "Decimal", "decimal": "12.50"}}}))
        .unwrap();
        assert_eq!(
            Tryton::map_import("product", &p, &NoBinder).unwrap(),
            json!({"sku": "DS-00001", "name": "Ember Mug", "price": 12.5})
        );
        let codeless = record(json!({"id": 2, "code": null, "template": {"name": "x"}})).unwrap();
        assert!(matches!(
            Tryton::map_import("product", &codeless, &NoBinder),
            Err(Error::NothingToDo(_))
        ));
    }

    #[test]
    fn a_party_with_an_email_is_a_customer_and_one_without_is_declined() {
        let p = party(
            json!([{"type": "phone", "value": "1"}, {"type": "email", "value": " Grace@Example.com "}]),
        );
        assert_eq!(p.updated_at.as_deref(), Some("2026-12-04T12:14:43Z"));
        assert_eq!(
            Tryton::map_import("customer", &p, &NoBinder).unwrap(),
            json!({"email": "grace@example.com", "first_name": "Grace Brewster", "last_name": "Hopper"})
        );
        let e = Tryton::map_import("customer", &party(json!([])), &NoBinder).unwrap_err();
        assert!(matches!(e, Error::NothingToDo(m) if m.contains("no email")));
    }
}
