//! Magento records ↔ Junction's local records, for every model this
//! connector syncs. Pure functions of JSON and a binder, so `cargo test`
//! runs them natively. The legacy mapper component includes this file too
//! and picks [`Shape::Legacy`] for the older product payload.
//!
//! Local shapes:
//! - `category`: `name`, `active`, `position`
//! - `product`: `sku`, `name`, `price`, `stock`, `in_stock`, `category_id` (local)
//! - `customer`: `email`, `first_name`, `last_name`
//! - `order`: `number`, `customer_id` (local, absent for guests), `email`,
//!   `total`, `currency`, `state`, `lines` (`sku`, `product_id` (local),
//!   `name`, `quantity`, `price`)

use junction_guest::mapping::{Binder, Direction, Mapping};
use junction_guest::serde_json::{Map, Value, json};
use junction_guest::{Dependency, Error, LocalDependency, LocalRecord, RemoteRecord};

/// How the backend's API version shapes a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 2.3 and later: stock in `extension_attributes.stock_item`, categories
    /// in `extension_attributes.category_links`.
    Current,
    /// 2.0–2.2 (as demo-shop's legacy mode serves it): `qty`, `is_in_stock`
    /// and `category_ids` at the top level.
    Legacy,
}

/// `impl Mapper for $ty` with the mapping functions of this module for one
/// product shape: the main connector and the legacy mapper differ only in
/// the shape.
#[macro_export]
macro_rules! magento_mapper {
    ($ty:ty, $shape:expr) => {
        impl junction_guest::Mapper for $ty {
            fn map_import(
                model: &str,
                record: &junction_guest::RemoteRecord,
                binder: &dyn junction_guest::mapping::Binder,
            ) -> Result<junction_guest::serde_json::Value, junction_guest::Error> {
                mapping::map_import(model, record, binder, $shape)
            }
            fn map_export(
                model: &str,
                record: &junction_guest::LocalRecord,
                changed: Option<&[String]>,
                _binder: &dyn junction_guest::mapping::Binder,
            ) -> Result<junction_guest::serde_json::Value, junction_guest::Error> {
                mapping::map_export(model, record, changed, $shape)
            }
            fn dependencies(
                model: &str,
                record: &junction_guest::RemoteRecord,
            ) -> Result<Vec<junction_guest::Dependency>, junction_guest::Error> {
                mapping::dependencies(model, record, $shape)
            }
            fn export_dependencies(
                model: &str,
                record: &junction_guest::LocalRecord,
            ) -> Result<Vec<junction_guest::LocalDependency>, junction_guest::Error> {
                Ok(mapping::export_dependencies(model, record))
            }
        }
    };
}

/// Magento's `2026-11-29 10:00:00` (UTC) as RFC 3339.
pub fn rfc3339(magento_time: &str) -> Option<String> {
    let t = magento_time.trim();
    (t.len() == 19 && t.as_bytes()[10] == b' ').then(|| format!("{}T{}Z", &t[..10], &t[11..]))
}

/// RFC 3339 in UTC (`…Z`) as Magento's `2026-11-29 10:00:00`.
pub fn magento_time(rfc3339: &str) -> Result<String, Error> {
    let t = rfc3339.trim();
    if t.len() >= 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z') {
        Ok(format!("{} {}", &t[..10], &t[11..19]))
    } else {
        Err(Error::permanent(format!(
            "{rfc3339:?} is not an RFC 3339 UTC time such as 2026-11-29T10:00:00Z"
        )))
    }
}

/// The model's external id field in Magento's payloads.
pub fn id_field(model: &str) -> Result<&'static str, Error> {
    Ok(match model {
        "category" | "customer" => "id",
        "product" => "sku",
        "order" => "entity_id",
        other => return Err(unknown(other)),
    })
}

pub fn unknown(model: &str) -> Error {
    Error::permanent(format!(
        "model {model:?} is not synced by this connector; it knows category, product, customer and order"
    ))
}

/// A Magento payload as a remote record (id and update time taken from it).
pub fn remote(model: &str, data: Value) -> Result<RemoteRecord, Error> {
    let field = id_field(model)?;
    let external_id = match &data[field] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(Error::permanent(format!(
                "a {model} from the backend has no {field}"
            )));
        }
    };
    let updated_at = data["updated_at"].as_str().and_then(rfc3339);
    Ok(RemoteRecord {
        external_id,
        updated_at,
        data,
    })
}

fn number(v: &Value) -> Result<Value, Error> {
    match v {
        Value::Number(_) => Ok(v.clone()),
        Value::String(s) => s
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| Error::permanent(format!("{s:?} is not a number"))),
        Value::Null => Ok(Value::Null),
        other => Err(Error::permanent(format!("{other} is not a number"))),
    }
}

fn category_of(data: &Value, shape: Shape) -> Option<String> {
    let first = match shape {
        Shape::Current => &data["extension_attributes"]["category_links"][0]["category_id"],
        Shape::Legacy => &data["category_ids"][0],
    };
    match first {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn stock_of(data: &Value, shape: Shape) -> (Value, Value) {
    match shape {
        Shape::Current => {
            let item = &data["extension_attributes"]["stock_item"];
            (item["qty"].clone(), item["is_in_stock"].clone())
        }
        Shape::Legacy => (data["qty"].clone(), data["is_in_stock"].clone()),
    }
}

/// The records to import before this one.
pub fn dependencies(
    model: &str,
    record: &RemoteRecord,
    shape: Shape,
) -> Result<Vec<Dependency>, Error> {
    let d = &record.data;
    Ok(match model {
        "product" => category_of(d, shape)
            .map(|c| Dependency::new("category", c))
            .into_iter()
            .collect(),
        "order" => {
            let mut deps = Vec::new();
            if let Some(c) = d["customer_id"].as_i64() {
                deps.push(Dependency::new("customer", c));
            }
            for item in d["items"].as_array().into_iter().flatten() {
                if let Some(sku) = item["sku"].as_str()
                    && !deps
                        .iter()
                        .any(|x| x.model == "product" && x.external_id == sku)
                {
                    deps.push(Dependency::new("product", sku));
                }
            }
            deps
        }
        "category" | "customer" => Vec::new(),
        other => return Err(unknown(other)),
    })
}

/// The local records a local record points to: a product's category, an
/// order's customer and products.
pub fn export_dependencies(model: &str, record: &LocalRecord) -> Vec<LocalDependency> {
    let d = &record.data;
    let mut out = Vec::new();
    let mut add = |model: &str, id: &Value| {
        if let Some(id) = id.as_str()
            && !out
                .iter()
                .any(|x: &LocalDependency| x.model == model && x.local_id == id)
        {
            out.push(LocalDependency::new(model, id));
        }
    };
    match model {
        "product" => add("category", &d["category_id"]),
        "order" => {
            add("customer", &d["customer_id"]);
            for line in d["lines"].as_array().into_iter().flatten() {
                add("product", &line["product_id"]);
            }
        }
        _ => {}
    }
    out
}

/// A Magento record as local data.
pub fn map_import(
    model: &str,
    record: &RemoteRecord,
    binder: &dyn Binder,
    shape: Shape,
) -> Result<Value, Error> {
    let m = Mapping::new(&record.data)?.binder(binder, Direction::Import);
    let mut out = match model {
        "category" => m
            .direct("name", "name")
            .direct("is_active", "active")
            .direct("position", "position")
            .finish()?,
        "product" => m
            .direct("sku", "sku")
            .direct("name", "name")
            .convert("price", "price", number)
            .finish()?,
        "customer" => m
            .direct("email", "email")
            .direct("firstname", "first_name")
            .direct("lastname", "last_name")
            .finish()?,
        "order" => m
            .direct("increment_id", "number")
            .relation("customer_id", "customer_id", "customer")
            .direct("customer_email", "email")
            .convert("grand_total", "total", number)
            .direct("order_currency_code", "currency")
            .direct("state", "state")
            .children("items", "lines", |line| {
                line.direct("sku", "sku")
                    .relation("sku", "product_id", "product")
                    .direct("name", "name")
                    .convert("qty_ordered", "quantity", number)
                    .convert("price", "price", number)
            })
            .finish()?,
        other => return Err(unknown(other)),
    };
    if model == "product" {
        let (qty, in_stock) = stock_of(&record.data, shape);
        out["stock"] = number(&qty)?;
        out["in_stock"] = in_stock;
        if let Some(category) = category_of(&record.data, shape) {
            let local = binder
                .to_local("category", &category)
                .ok_or_else(|| Error::retryable(format!("category {category} is not bound yet")))?;
            out["category_id"] = Value::String(local);
        }
    }
    Ok(out)
}

fn wants(changed: Option<&[String]>, field: &str) -> bool {
    changed.is_none_or(|c| c.iter().any(|f| f == field))
}

/// Local data as the Magento payload to write. Only products (price,
/// stock) and orders (state) go back to the shop.
pub fn map_export(
    model: &str,
    record: &LocalRecord,
    changed: Option<&[String]>,
    shape: Shape,
) -> Result<Value, Error> {
    let d = &record.data;
    match model {
        "product" => {
            let mut out = Map::new();
            if wants(changed, "price") && !d["price"].is_null() {
                out.insert("price".into(), number(&d["price"])?);
            }
            if wants(changed, "stock") && !d["stock"].is_null() {
                let qty = number(&d["stock"])?;
                let in_stock = qty.as_f64().is_some_and(|q| q > 0.0);
                match shape {
                    Shape::Current => {
                        out.insert(
                            "extension_attributes".into(),
                            json!({"stock_item": {"qty": qty, "is_in_stock": in_stock}}),
                        );
                    }
                    Shape::Legacy => {
                        out.insert("qty".into(), qty);
                        out.insert("is_in_stock".into(), Value::Bool(in_stock));
                    }
                }
            }
            Ok(Value::Object(out))
        }
        "order" => {
            let mut out = Map::new();
            if wants(changed, "state") {
                let state = d["state"].as_str().ok_or_else(|| {
                    Error::permanent(format!("order {} has no state to export", record.id))
                })?;
                out.insert("state".into(), Value::String(state.to_string()));
            }
            Ok(Value::Object(out))
        }
        "category" | "customer" => Err(Error::permanent(format!(
            "{model} records are imported only; this connector does not export them"
        ))),
        other => Err(unknown(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Bindings(HashMap<(&'static str, String), String>);

    impl Binder for Bindings {
        fn to_local(&self, model: &str, external_id: &str) -> Option<String> {
            self.0
                .iter()
                .find(|((m, e), _)| *m == model && e == external_id)
                .map(|(_, l)| l.clone())
        }
        fn to_external(&self, model: &str, local_id: &str) -> Option<String> {
            self.0
                .iter()
                .find(|((m, _), l)| *m == model && l.as_str() == local_id)
                .map(|((_, e), _)| e.clone())
        }
    }

    fn bindings() -> Bindings {
        let mut m = HashMap::new();
        m.insert(("category", "3".to_string()), "cat-1".to_string());
        m.insert(("customer", "7".to_string()), "cus-1".to_string());
        m.insert(("product", "MB-1".to_string()), "pro-1".to_string());
        Bindings(m)
    }

    fn product(shape: Shape) -> RemoteRecord {
        let data = match shape {
            Shape::Current => json!({
                "id": 1, "sku": "MB-1", "name": "Bag", "price": 34.5, "updated_at": "2026-11-29 10:00:00",
                "extension_attributes": {
                    "category_links": [{"position": 0, "category_id": "3"}],
                    "stock_item": {"qty": 12, "is_in_stock": true}
                }
            }),
            Shape::Legacy => json!({
                "id": 1, "sku": "MB-1", "name": "Bag", "price": 34.5, "updated_at": "2026-11-29 10:00:00",
                "qty": 12, "is_in_stock": true, "category_ids": ["3"]
            }),
        };
        remote("product", data).unwrap()
    }

    #[test]
    fn both_product_shapes_map_to_the_same_local_record() {
        let b = bindings();
        let expected = json!({
            "sku": "MB-1", "name": "Bag", "price": 34.5, "stock": 12, "in_stock": true, "category_id": "cat-1"
        });
        for shape in [Shape::Current, Shape::Legacy] {
            let p = product(shape);
            assert_eq!(p.external_id, "MB-1");
            assert_eq!(p.updated_at.as_deref(), Some("2026-11-29T10:00:00Z"));
            assert_eq!(map_import("product", &p, &b, shape).unwrap(), expected);
            assert_eq!(
                dependencies("product", &p, shape).unwrap(),
                vec![Dependency::new("category", "3")]
            );
        }
        // The wrong shape finds no stock: that is why the registry must pick
        // the mapper by backend version.
        let wrong = map_import("product", &product(Shape::Legacy), &b, Shape::Current).unwrap();
        assert_eq!(wrong["stock"], Value::Null);
    }

    #[test]
    fn an_order_needs_its_customer_and_products_and_maps_its_lines() {
        let order = remote(
            "order",
            json!({
                "entity_id": 5, "increment_id": "100000005", "customer_id": 7, "customer_email": "a@b.c",
                "grand_total": 69.0, "order_currency_code": "EUR", "state": "new", "updated_at": "2026-11-29 10:00:00",
                "items": [{"sku": "MB-1", "name": "Bag", "qty_ordered": 2, "price": 34.5},
                          {"sku": "MB-1", "name": "Bag", "qty_ordered": 1, "price": 34.5}]
            }),
        )
        .unwrap();
        assert_eq!(
            dependencies("order", &order, Shape::Current).unwrap(),
            vec![
                Dependency::new("customer", 7),
                Dependency::new("product", "MB-1")
            ]
        );
        let local = map_import("order", &order, &bindings(), Shape::Current).unwrap();
        assert_eq!(local["customer_id"], "cus-1");
        assert_eq!(local["lines"][1]["product_id"], "pro-1");
        assert_eq!(local["total"], 69.0);
        let local = LocalRecord {
            model: "order".into(),
            id: "ord-1".into(),
            data: local.clone(),
            version: 1,
            updated_at: "2026-11-29T10:00:00Z".into(),
        };
        assert_eq!(
            export_dependencies("order", &local),
            vec![
                LocalDependency::new("customer", "cus-1"),
                LocalDependency::new("product", "pro-1")
            ]
        );
        let unbound = Bindings(HashMap::new());
        let err = map_import("order", &order, &unbound, Shape::Current).unwrap_err();
        assert!(matches!(err, Error::Retryable { .. }), "{err}");
    }

    #[test]
    fn export_maps_only_changed_fields_in_the_versions_shape() {
        let local = LocalRecord {
            model: "product".into(),
            id: "pro-1".into(),
            data: json!({"sku": "MB-1", "price": 30, "stock": 0, "name": "Bag"}),
            version: 3,
            updated_at: "2026-11-29T10:00:00Z".into(),
        };
        let price = ["price".to_string()];
        assert_eq!(
            map_export("product", &local, Some(&price), Shape::Current).unwrap(),
            json!({"price": 30})
        );
        assert_eq!(
            map_export("product", &local, None, Shape::Current).unwrap(),
            json!({"price": 30, "extension_attributes": {"stock_item": {"qty": 0, "is_in_stock": false}}})
        );
        let stock = ["stock".to_string()];
        assert_eq!(
            map_export("product", &local, Some(&stock), Shape::Legacy).unwrap(),
            json!({"qty": 0, "is_in_stock": false})
        );
        assert!(map_export("customer", &local, None, Shape::Current).is_err());
    }

    #[test]
    fn times_convert_both_ways_and_bad_ones_are_named() {
        assert_eq!(
            magento_time("2026-11-29T10:00:00Z").unwrap(),
            "2026-11-29 10:00:00"
        );
        assert_eq!(
            magento_time("2026-11-29T10:00:00.123Z").unwrap(),
            "2026-11-29 10:00:00"
        );
        assert!(
            magento_time("yesterday")
                .unwrap_err()
                .to_string()
                .contains("yesterday")
        );
        assert_eq!(rfc3339("garbage"), None);
        assert!(remote("invoice", json!({})).is_err());
    }
}
