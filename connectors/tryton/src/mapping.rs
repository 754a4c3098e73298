//! Tryton records ↔ Junction's local records, pure functions of JSON and a
//! binder (tested natively). The local shapes are the shop's (see the
//! Magento connector), so both connectors meet in one local record:
//!
//! - `customer` ↔ `party.party`: `email` (the party's first email contact
//!   mechanism; a party without one — the company itself, a supplier — is
//!   not a customer and is declined), `first_name` and `last_name` (the
//!   party's `name` split at its last space), `address` (`street`,
//!   `postal_code`, `city` of its first address) when it has one.
//! - `product` ↔ `product.product`: `sku` (the variant's `code`; a variant
//!   without one cannot be matched and is declined), `name` and `price`
//!   (its template's `name` and `list_price`), `stock` and `in_stock` (the
//!   quantity in the backend's warehouse, read from the stock module).
//! - `order` ↔ `sale.sale`: `number` (the sale's `reference`, where the
//!   shop's order number goes, else Tryton's own `number`), `customer_id`,
//!   `email`, `currency`, `total`, `lines` (`sku`, `product_id`, `name`,
//!   `quantity`, `price`) and `erp_state` (Tryton's state of the sale —
//!   not `state`, which is the shop's and goes back to the shop).
//!
//! Exports produce what [`crate::adapter`] writes: Tryton's field names
//! and Decimal values, with the references Tryton needs by id resolved
//! through the binder (`party`, `product`) and those it needs by code
//! (`currency`, a line's unit) left for the adapter to look up.
//!
//! Versions: Tryton 8.0 and 8.2 were compared field by field for what this
//! module reads and writes (and their REST protocol line by line): they do
//! not differ, so one mapper serves `>=8.0, <9.0`; Tryton before 8.0 has no
//! REST API. A version that differs gets its own function here, chosen by
//! [`Version`], the way OCA connectors register a mapper per backend
//! version.

use junction_guest::mapping::Binder;
use junction_guest::serde_json::{Map, Value, json};
use junction_guest::{Dependency, Error, LocalDependency, LocalRecord, RemoteRecord};

use crate::values::{decimal, number};

/// The Tryton versions this mapper knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 8.0 and 8.2 (identical for every field used here).
    V8,
}

impl Version {
    /// The mapper for a backend's configured version (`8.2.1`).
    pub fn of(version: &str) -> Result<Version, Error> {
        match version.trim().split('.').next() {
            Some("8") => Ok(Version::V8),
            _ => Err(Error::Config(format!(
                "Tryton {version} is not supported by this connector: it speaks Tryton 8's REST API (8.0 to 8.x); set the backend's version to the server's"
            ))),
        }
    }
}

/// The fields read of a Tryton record for each local model.
pub fn fields(model: &str) -> Result<&'static [&'static str], Error> {
    Ok(match model {
        "customer" => &[
            "name",
            "write_date",
            "create_date",
            "contact_mechanisms.type",
            "contact_mechanisms.value",
            "contact_mechanisms.write_date",
            "addresses.street",
            "addresses.postal_code",
            "addresses.city",
        ],
        "product" => &[
            "code",
            "write_date",
            "create_date",
            "quantity",
            "template.name",
            "template.list_price",
            "template.write_date",
        ],
        "order" => &[
            "number",
            "reference",
            "state",
            "write_date",
            "create_date",
            "party",
            "party.email",
            "currency.code",
            "total_amount",
            "lines.type",
            "lines.product",
            "lines.product.code",
            "lines.description",
            "lines.quantity",
            "lines.unit_price",
            "lines.write_date",
        ],
        other => return Err(unknown(other)),
    })
}

/// The Tryton model behind a local model.
pub fn tryton_model(model: &str) -> Result<&'static str, Error> {
    Ok(match model {
        "customer" => "party.party",
        "product" => "product.product",
        "order" => "sale.sale",
        other => return Err(unknown(other)),
    })
}

pub fn unknown(model: &str) -> Error {
    Error::permanent(format!(
        "model {model:?} is not synced by this connector; it knows customer, product and order"
    ))
}

/// The party's email: its first email contact mechanism, lowercased.
pub fn email(party: &Value) -> Option<String> {
    party["contact_mechanisms"]
        .as_array()?
        .iter()
        .find(|m| m["type"] == "email")
        .and_then(|m| m["value"].as_str())
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
}

/// The records to import before a sale: its party and its lines'
/// products.
pub fn dependencies(model: &str, record: &RemoteRecord) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    if model != "order" {
        return out;
    }
    let d = &record.data;
    if let Some(party) = d["party"]["id"].as_i64().or_else(|| d["party"].as_i64()) {
        out.push(Dependency::new("customer", party));
    }
    for line in d["lines"].as_array().into_iter().flatten() {
        if let Some(product) = line["product"]["id"].as_i64()
            && !out
                .iter()
                .any(|x| x.model == "product" && x.external_id == product.to_string())
        {
            out.push(Dependency::new("product", product));
        }
    }
    out
}

/// The local records to export before an order: its customer and its
/// lines' products.
pub fn export_dependencies(model: &str, record: &LocalRecord) -> Vec<LocalDependency> {
    let mut out: Vec<LocalDependency> = Vec::new();
    if model != "order" {
        return out;
    }
    let mut add = |model: &str, id: &Value| {
        if let Some(id) = id.as_str()
            && !out.iter().any(|x| x.model == model && x.local_id == id)
        {
            out.push(LocalDependency::new(model, id));
        }
    };
    add("customer", &record.data["customer_id"]);
    for line in record.data["lines"].as_array().into_iter().flatten() {
        add("product", &line["product_id"]);
    }
    out
}

/// A Tryton record as local data.
pub fn map_import(
    version: Version,
    model: &str,
    record: &RemoteRecord,
    binder: &dyn Binder,
) -> Result<Value, Error> {
    let Version::V8 = version;
    let d = &record.data;
    let id = &record.external_id;
    match model {
        "customer" => {
            let Some(email) = email(d) else {
                return Err(Error::NothingToDo(format!(
                    "party {id} has no email: not a customer"
                )));
            };
            let name = d["name"].as_str().unwrap_or_default().trim();
            let (first, last) = name.rsplit_once(' ').unwrap_or(("", name));
            let mut out = json!({"email": email, "first_name": first, "last_name": last});
            if let Some(a) = d["addresses"].as_array().and_then(|a| a.first()) {
                let text = |k: &str| a[k].as_str().unwrap_or_default().trim().to_string();
                out["address"] = json!({"street": text("street"), "postal_code": text("postal_code"), "city": text("city")});
            }
            Ok(out)
        }
        "product" => {
            let Some(sku) = d["code"].as_str().map(str::trim).filter(|c| !c.is_empty()) else {
                return Err(Error::NothingToDo(format!(
                    "product {id} has no code: nothing to match it by"
                )));
            };
            let mut out = json!({"sku": sku, "name": d["template"]["name"]});
            if let Some(price) = number(&d["template"]["list_price"])? {
                out["price"] = price;
            }
            if let Some(qty) = d["quantity"].as_f64() {
                out["stock"] = json!(qty);
                out["in_stock"] = Value::Bool(qty > 0.0);
            }
            Ok(out)
        }
        "order" => {
            let shown = [&d["reference"], &d["number"]]
                .into_iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .find(|n| !n.is_empty());
            let mut out = Map::new();
            if let Some(n) = shown {
                out.insert("number".into(), json!(n));
            }
            let party = d["party"]["id"].as_i64().map(|p| p.to_string());
            // A party that is not a customer (no email) stays out, as a
            // shop's guest order has no customer.
            if let Some(local) = party.and_then(|p| binder.to_local("customer", &p)) {
                out.insert("customer_id".into(), json!(local));
            }
            if let Some(e) = d["party"]["email"].as_str().filter(|e| !e.is_empty()) {
                out.insert("email".into(), json!(e.trim().to_lowercase()));
            }
            if let Some(c) = d["currency"]["code"].as_str() {
                out.insert("currency".into(), json!(c));
            }
            if let Some(total) = number(&d["total_amount"])? {
                out.insert("total".into(), total);
            }
            let mut lines = Vec::new();
            for line in d["lines"].as_array().into_iter().flatten() {
                if line["type"] != "line" {
                    continue; // titles, comments and subtotals
                }
                let mut l = Map::new();
                if let Some(sku) = line["product"]["code"].as_str() {
                    l.insert("sku".into(), json!(sku));
                }
                if let Some(p) = line["product"]["id"].as_i64()
                    && let Some(local) = binder.to_local("product", &p.to_string())
                {
                    l.insert("product_id".into(), json!(local));
                }
                l.insert("name".into(), line["description"].clone());
                l.insert("quantity".into(), line["quantity"].clone());
                l.insert(
                    "price".into(),
                    number(&line["unit_price"])?.unwrap_or(Value::Null),
                );
                lines.push(Value::Object(l));
            }
            out.insert("lines".into(), Value::Array(lines));
            out.insert("erp_state".into(), d["state"].clone());
            Ok(Value::Object(out))
        }
        other => Err(unknown(other)),
    }
}

/// Local data as what the adapter writes to Tryton. `changed` is `None`
/// for a create (every field) and the changed fields for a write.
pub fn map_export(
    version: Version,
    model: &str,
    record: &LocalRecord,
    changed: Option<&[String]>,
    binder: &dyn Binder,
) -> Result<Value, Error> {
    let Version::V8 = version;
    let d = &record.data;
    let wants = |f: &str| changed.is_none_or(|c| c.iter().any(|x| x == f));
    let text = |f: &str| d[f].as_str().map(str::trim).unwrap_or_default();
    match model {
        "customer" => {
            let mut out = Map::new();
            if wants("first_name") || wants("last_name") {
                let name = format!("{} {}", text("first_name"), text("last_name"));
                let name = name.trim();
                if name.is_empty() {
                    return Err(Error::permanent(format!(
                        "customer {} has no first_name or last_name: Tryton requires a party's name",
                        record.id
                    )));
                }
                out.insert("name".into(), json!(name));
            }
            if wants("email") && !text("email").is_empty() {
                out.insert("email".into(), json!(text("email").to_lowercase()));
            }
            nothing_left(out, model, record)
        }
        "product" => {
            let mut out = Map::new();
            if changed.is_none() {
                if text("sku").is_empty() {
                    return Err(Error::permanent(format!(
                        "product {} has no sku: Tryton's variant needs a code to be matched by",
                        record.id
                    )));
                }
                out.insert("code".into(), json!(text("sku")));
                if let Some(stock) = d["stock"].as_f64().filter(|s| *s > 0.0) {
                    out.insert("stock".into(), json!(stock));
                }
            }
            if wants("name") {
                out.insert("name".into(), json!(text("name")));
            }
            if wants("price") && !d["price"].is_null() {
                out.insert(
                    "list_price".into(),
                    decimal(&d["price"], &format!("price of product {}", record.id))?,
                );
            }
            nothing_left(out, model, record)
        }
        "order" => {
            if changed.is_some() {
                // Tryton owns a sale once it exists: it is quoted,
                // confirmed and shipped there, and a confirmed sale cannot
                // be edited. Only its creation goes out.
                return Err(Error::NothingToDo(format!(
                    "order {} is already a sale in Tryton; Tryton owns it from there",
                    record.id
                )));
            }
            let customer = d["customer_id"].as_str().ok_or_else(|| {
                Error::permanent(format!(
                    "order {} has no customer: a Tryton sale needs a party (guest orders are not exported)",
                    record.id
                ))
            })?;
            let party = binder.to_external("customer", customer).ok_or_else(|| {
                Error::retryable(format!(
                    "customer {customer} of order {} is not a Tryton party yet",
                    record.id
                ))
            })?;
            let mut lines = Vec::new();
            for (i, line) in d["lines"].as_array().into_iter().flatten().enumerate() {
                let what = format!("line {} of order {}", i + 1, record.id);
                let product = line["product_id"].as_str().ok_or_else(|| {
                    Error::permanent(format!(
                        "{what} has no product_id: Tryton's sale line needs a product"
                    ))
                })?;
                let product = binder.to_external("product", product).ok_or_else(|| {
                    Error::retryable(format!("the product of {what} is not in Tryton yet"))
                })?;
                let quantity = line["quantity"]
                    .as_f64()
                    .ok_or_else(|| Error::permanent(format!("{what} has no numeric quantity")))?;
                lines.push(json!({
                    "product": id(&product)?,
                    "quantity": quantity,
                    "unit_price": decimal(&line["price"], &format!("price of {what}"))?,
                    "description": line["name"].as_str().unwrap_or_default(),
                }));
            }
            if lines.is_empty() {
                return Err(Error::permanent(format!(
                    "order {} has no lines: Tryton would hold an empty sale",
                    record.id
                )));
            }
            let mut out = json!({"party": id(&party)?, "lines": lines});
            if !text("number").is_empty() {
                out["reference"] = json!(text("number"));
            }
            if !text("currency").is_empty() {
                out["currency"] = json!(text("currency"));
            }
            Ok(out)
        }
        other => Err(unknown(other)),
    }
}

fn nothing_left(
    out: Map<String, Value>,
    model: &str,
    record: &LocalRecord,
) -> Result<Value, Error> {
    if out.is_empty() {
        return Err(Error::NothingToDo(format!(
            "none of {model} {}'s changed fields is kept in Tryton",
            record.id
        )));
    }
    Ok(Value::Object(out))
}

/// A Tryton id the binder holds, as the integer Tryton takes.
fn id(external: &str) -> Result<i64, Error> {
    external
        .parse()
        .map_err(|_| Error::permanent(format!("{external:?} is not a Tryton id")))
}

#[cfg(test)]
mod tests {
    use junction_guest::host::HostBinder;
    use junction_guest::testing::FakeHost;

    use super::*;

    /// Party 7 is local customer c-1, product 3 local product p-1.
    fn bound<R>(f: impl FnOnce(&dyn Binder) -> R) -> R {
        FakeHost::new("http://tryton.test/db")
            .bind("customer", "7", "c-1")
            .bind("product", "3", "p-1")
            .run(|| f(&HostBinder))
            .0
    }

    fn remote(data: Value) -> RemoteRecord {
        RemoteRecord {
            external_id: data["id"].to_string(),
            updated_at: None,
            data,
        }
    }

    fn local(model: &str, data: Value) -> LocalRecord {
        LocalRecord {
            model: model.into(),
            id: "l-1".into(),
            data,
            version: 1,
            updated_at: String::new(),
        }
    }

    fn decimal_of(text: &str) -> Value {
        json!({"__class__": "Decimal", "decimal": text})
    }

    #[test]
    fn only_tryton_8_is_spoken() {
        assert_eq!(Version::of("8.2.1").unwrap(), Version::V8);
        assert_eq!(Version::of("8.0").unwrap(), Version::V8);
        assert!(matches!(Version::of("7.8.3"), Err(Error::Config(m)) if m.contains("REST")));
    }

    #[test]
    fn a_variant_is_a_product_by_its_code_with_its_price_and_stock() {
        bound(|b| {
            let p = remote(json!({"id": 1, "code": "DS-00001", "quantity": 4.0,
                "template": {"name": "Ember Mug", "list_price": decimal_of("12.50")}}));
            assert_eq!(
                map_import(Version::V8, "product", &p, b).unwrap(),
                json!({"sku": "DS-00001", "name": "Ember Mug", "price": 12.5, "stock": 4.0, "in_stock": true})
            );
            let codeless = remote(json!({"id": 2, "code": null, "template": {"name": "x"}}));
            assert!(matches!(
                map_import(Version::V8, "product", &codeless, b),
                Err(Error::NothingToDo(_))
            ));
        })
    }

    #[test]
    fn a_party_with_an_email_is_a_customer_and_one_without_is_declined() {
        bound(|b| {
            let p = remote(json!({"id": 7, "name": "Grace Brewster Hopper",
                "contact_mechanisms": [{"type": "phone", "value": "1"}, {"type": "email", "value": " Grace@Example.com "}],
                "addresses": [{"street": "1 Navy Way", "postal_code": "10001", "city": "New York"}]}));
            assert_eq!(
                map_import(Version::V8, "customer", &p, b).unwrap(),
                json!({"email": "grace@example.com", "first_name": "Grace Brewster", "last_name": "Hopper",
                       "address": {"street": "1 Navy Way", "postal_code": "10001", "city": "New York"}})
            );
            let none = remote(json!({"id": 8, "name": "Supplier", "contact_mechanisms": []}));
            let e = map_import(Version::V8, "customer", &none, b).unwrap_err();
            assert!(matches!(e, Error::NothingToDo(m) if m.contains("no email")));
        })
    }

    #[test]
    fn a_sale_is_an_order_with_its_lines_and_state_apart_from_the_shops() {
        bound(|b| {
            let sale = remote(
                json!({"id": 5, "number": "S-1", "reference": "100000001", "state": "confirmed",
                "party": {"id": 7, "email": "Grace@Example.com"}, "currency": {"id": 1, "code": "EUR"},
                "total_amount": decimal_of("25.00"),
                "lines": [
                    {"type": "title", "description": "Mugs"},
                    {"type": "line", "product": {"id": 3, "code": "DS-00001"}, "description": "Ember Mug",
                     "quantity": 2.0, "unit_price": decimal_of("12.5000")}]}),
            );
            assert_eq!(
                dependencies("order", &sale)
                    .iter()
                    .map(|d| (d.model.as_str(), d.external_id.as_str()))
                    .collect::<Vec<_>>(),
                vec![("customer", "7"), ("product", "3")]
            );
            assert_eq!(
                map_import(Version::V8, "order", &sale, b).unwrap(),
                json!({"number": "100000001", "customer_id": "c-1", "email": "grace@example.com",
                       "currency": "EUR", "total": 25.0, "erp_state": "confirmed",
                       "lines": [{"sku": "DS-00001", "product_id": "p-1", "name": "Ember Mug", "quantity": 2.0, "price": 12.5}]})
            );
        })
    }

    #[test]
    fn an_order_exports_as_a_sale_of_bound_parties_and_products() {
        let order = bound(|b| {
            let order = local(
                "order",
                json!({"number": "100000001", "customer_id": "c-1", "currency": "EUR", "state": "new",
                       "lines": [{"sku": "DS-00001", "product_id": "p-1", "name": "Ember Mug", "quantity": 2, "price": 12.5}]}),
            );
            assert_eq!(
                export_dependencies("order", &order)
                    .iter()
                    .map(|d| (d.model.as_str(), d.local_id.as_str()))
                    .collect::<Vec<_>>(),
                vec![("customer", "c-1"), ("product", "p-1")]
            );
            assert_eq!(
                map_export(Version::V8, "order", &order, None, b).unwrap(),
                json!({"party": 7, "reference": "100000001", "currency": "EUR",
                       "lines": [{"product": 3, "quantity": 2.0, "unit_price": decimal_of("12.5"), "description": "Ember Mug"}]})
            );
            // Once a sale, Tryton owns it.
            let again = map_export(Version::V8, "order", &order, Some(&["state".into()]), b);
            assert!(matches!(again, Err(Error::NothingToDo(_))));
            order
        });
        // A product not yet in Tryton is waited for, not guessed.
        let e = FakeHost::new("http://tryton.test/db")
            .bind("customer", "7", "c-1")
            .run(|| map_export(Version::V8, "order", &order, None, &HostBinder))
            .0
            .unwrap_err();
        assert!(matches!(e, Error::Retryable { message, .. } if message.contains("line 1")));
    }

    #[test]
    fn customers_and_products_export_only_what_changed() {
        bound(|b| {
            let c = local(
                "customer",
                json!({"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace"}),
            );
            assert_eq!(
                map_export(Version::V8, "customer", &c, None, b).unwrap(),
                json!({"name": "Ada Lovelace", "email": "ada@example.com"})
            );
            assert_eq!(
                map_export(Version::V8, "customer", &c, Some(&["email".into()]), b).unwrap(),
                json!({"email": "ada@example.com"})
            );
            let p = local(
                "product",
                json!({"sku": "DS-1", "name": "Mug", "price": 9.5, "stock": 3}),
            );
            assert_eq!(
                map_export(Version::V8, "product", &p, None, b).unwrap(),
                json!({"code": "DS-1", "stock": 3.0, "name": "Mug", "list_price": decimal_of("9.5")})
            );
            let nothing = map_export(Version::V8, "product", &p, Some(&["category_id".into()]), b);
            assert!(matches!(nothing, Err(Error::NothingToDo(_))));
        })
    }
}
