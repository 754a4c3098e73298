//! The Tryton REST calls behind each operation: incremental search by
//! `write_date` (a record counts as changed when it or a part of it that
//! Tryton keeps apart changed: a party's contact mechanisms, a variant's
//! template or its stock, a sale's lines), reads, creates and writes of
//! parties, products and sales, deletes, and lookups by natural key.

use junction_guest::paging::page_size as page_size_within;
use junction_guest::serde_json::{Value, json};
use junction_guest::{Error, IdPage, Page, RemoteRecord, host};

use crate::mapping::{fields, tryton_model};
use crate::rest::{Rest, id_of, like_literal};
use crate::values::{datetime, latest};

/// At most this many stock moves are read to find the products whose
/// stock changed since a cursor; past it the search is a full scan of
/// products (correct, only slower).
const MOVED_PRODUCTS_LIMIT: u32 = 5_000;

/// The client for a model: products count stock in the warehouse.
fn client(model: &str) -> Result<Rest, Error> {
    let rest = Rest::new()?;
    if model != "product" {
        return Ok(rest);
    }
    let warehouse = warehouse(&rest)?;
    Ok(rest.in_warehouse(warehouse))
}

/// The backend's warehouse: the `warehouse` setting, else Tryton's first
/// warehouse (remembered in the connector's state).
fn warehouse(rest: &Rest) -> Result<i64, Error> {
    if let Some(id) = rest.warehouse {
        return Ok(id);
    }
    cached("warehouse", || {
        rest.ids("stock.location", &json!([["type", "=", "warehouse"]]), 1)?
            .first()
            .copied()
            .ok_or_else(|| {
                Error::Config(String::from(
                    "Tryton has no warehouse (stock location of type warehouse); create one or set the backend's \"warehouse\" setting",
                ))
            })
    })
}

/// A Tryton id looked up once per backend and kept in the connector's
/// state (units, currencies and warehouses are created once and hardly
/// ever change).
fn cached(key: &str, look_up: impl FnOnce() -> Result<i64, Error>) -> Result<i64, Error> {
    let key = format!("id:{key}");
    if let Some(id) = host::state_get(&key).and_then(|v| v.parse().ok()) {
        return Ok(id);
    }
    let id = look_up()?;
    host::state_set(&key, &id.to_string())?;
    Ok(id)
}

fn parse_id(model: &str, id: &str) -> Result<i64, Error> {
    id.parse()
        .map_err(|_| Error::NotFound(format!("{id:?} is not the id of a Tryton {model}")))
}

/// The remote record for a Tryton answer; `updated_at` is the latest
/// change of the record and of the parts that change apart from it.
fn record(model: &str, data: Value, moved: Option<&Value>) -> Result<RemoteRecord, Error> {
    let id = id_of(&data)?;
    let mut times = vec![&data["write_date"], &data["create_date"]];
    match model {
        "customer" => times.extend(
            data["contact_mechanisms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| &m["write_date"]),
        ),
        "product" => times.push(&data["template"]["write_date"]),
        "order" => times.extend(
            data["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| &l["write_date"]),
        ),
        _ => {}
    }
    times.extend(moved);
    Ok(RemoteRecord {
        external_id: id.to_string(),
        updated_at: latest(times),
        data,
    })
}

/// The domain of records of `model` changed since `since`, and for
/// products the latest done stock move of each product that moved since
/// then (its quantity changed, its own `write_date` did not).
fn changed_since(rest: &Rest, model: &str, since: &Value) -> Result<(Value, Moves), Error> {
    let mut moves = Moves::new();
    let domain = match model {
        "customer" => json!([
            "OR",
            ["write_date", ">=", since],
            ["contact_mechanisms.write_date", ">=", since]
        ]),
        "product" => match moved_products(rest, since)? {
            Some(moved) => {
                let ids: Vec<i64> = moved.keys().copied().collect();
                moves = moved;
                json!([
                    "OR",
                    ["write_date", ">=", since],
                    ["template.write_date", ">=", since],
                    ["id", "in", ids]
                ])
            }
            None => json!([]),
        },
        "order" => json!([
            "OR",
            ["write_date", ">=", since],
            ["lines.write_date", ">=", since]
        ]),
        other => return Err(crate::mapping::unknown(other)),
    };
    Ok((domain, moves))
}

/// Product id → the write date of its latest done stock move.
type Moves = std::collections::BTreeMap<i64, Value>;

/// Products with a stock move done since `since`, each with its latest
/// such move's write date; `None` when there are too many to list.
fn moved_products(rest: &Rest, since: &Value) -> Result<Option<Moves>, Error> {
    let found = rest.search(
        "stock.move",
        &json!([["write_date", ">=", since], ["state", "=", "done"]]),
        &json!([["write_date", "ASC"], ["id", "ASC"]]),
        &["product", "write_date"],
        MOVED_PRODUCTS_LIMIT,
        0,
    )?;
    if found.len() as u32 >= MOVED_PRODUCTS_LIMIT {
        return Ok(None);
    }
    // Oldest first: the last one kept per product is its latest.
    let mut moves = Moves::new();
    for m in found {
        if let Some(product) = m["product"].as_i64() {
            moves.insert(product, m["write_date"].clone());
        }
    }
    Ok(Some(moves))
}

/// When a product's stock last moved: its latest done move's write date.
fn last_move(rest: &Rest, product: i64) -> Result<Value, Error> {
    let moves = rest.search(
        "stock.move",
        &json!([["product", "=", product], ["state", "=", "done"]]),
        &json!([["write_date", "DESC"]]),
        &["write_date"],
        1,
        0,
    )?;
    Ok(moves
        .into_iter()
        .next()
        .map_or(Value::Null, |m| m["write_date"].clone()))
}

/// Oldest change first, then by id, a page at a time.
pub fn search(
    model: &str,
    filter: &Value,
    cursor: Option<&str>,
    page_size: u32,
) -> Result<Page, Error> {
    let path = tryton_model(model)?;
    let rest = client(model)?;
    let window = Window::of(cursor, page_size)?;
    let (domain, moves) = match filter.get("updated-since").and_then(Value::as_str) {
        Some(since) => changed_since(&rest, model, &datetime(since)?)?,
        None => (json!([]), Moves::new()),
    };
    let found = rest.search(
        path,
        &domain,
        &json!([["write_date", "ASC"], ["id", "ASC"]]),
        fields(model)?,
        window.size,
        window.offset,
    )?;
    let next_cursor = window.next(found.len());
    // A product whose stock moved is as new as its move, or the import
    // would take it for up to date.
    let items = found
        .into_iter()
        .map(|r| {
            let moved = r["id"].as_i64().and_then(|id| moves.get(&id)).cloned();
            record(model, r, moved.as_ref())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next_cursor })
}

/// Every id of `model`, a page at a time (for deletion reconciliation).
pub fn list_ids(model: &str, cursor: Option<&str>, page_size: u32) -> Result<IdPage, Error> {
    let path = tryton_model(model)?;
    let window = Window::of(cursor, page_size)?;
    let found = Rest::new()?.search(
        path,
        &json!([]),
        &json!([["id", "ASC"]]),
        &[],
        window.size,
        window.offset,
    )?;
    Ok(IdPage {
        next_cursor: window.next(found.len()),
        ids: found
            .iter()
            .map(|r| id_of(r).map(|id| id.to_string()))
            .collect::<Result<_, _>>()?,
    })
}

/// An offset page (Tryton's `s` and `p`): the cursor is the offset.
struct Window {
    offset: u64,
    size: u32,
}

impl Window {
    fn of(cursor: Option<&str>, page_size: u32) -> Result<Window, Error> {
        let offset = match cursor {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| Error::permanent(format!("cursor {c:?} is not an offset")))?,
        };
        Ok(Window {
            offset,
            size: page_size_within(page_size, 1000),
        })
    }

    /// The cursor after a page that held `found` records: none when the
    /// page was not full.
    fn next(&self, found: usize) -> Option<String> {
        (found as u64 == u64::from(self.size))
            .then(|| (self.offset + u64::from(self.size)).to_string())
    }
}

pub fn read(model: &str, id: &str) -> Result<RemoteRecord, Error> {
    let path = tryton_model(model)?;
    let id = parse_id(path, id)?;
    let rest = client(model)?;
    let data = rest.read(path, id, fields(model)?)?;
    let moved = if model == "product" {
        Some(last_move(&rest, id)?)
    } else {
        None
    };
    record(model, data, moved.as_ref())
}

/// The natural-key lookups the features declare.
pub fn find(model: &str, field: &str, value: &str) -> Result<Vec<String>, Error> {
    let domain = match (model, field) {
        ("customer", "email") => json!([[
            "contact_mechanisms",
            "where",
            [
                ["type", "=", "email"],
                ["value", "ilike", like_literal(value.trim())]
            ]
        ]]),
        ("product", "sku") => json!([["code", "=", value.trim()]]),
        ("order", "number") => json!([["reference", "=", value.trim()]]),
        _ => {
            return Err(Error::permanent(format!(
                "{model} records are not found by {field} in Tryton"
            )));
        }
    };
    Ok(Rest::new()?
        .ids(tryton_model(model)?, &domain, 10)?
        .into_iter()
        .map(|id| id.to_string())
        .collect())
}

pub fn create(model: &str, data: &Value) -> Result<String, Error> {
    let rest = Rest::new()?;
    let id = match model {
        "customer" => {
            let mut party = json!({"name": data["name"]});
            if let Some(email) = data["email"].as_str() {
                party["contact_mechanisms"] =
                    json!([["create", [{"type": "email", "value": email}]]]);
            }
            id_of(&rest.post("party.party", &party)?)?
        }
        "product" => create_product(&rest, data)?,
        "order" => create_sale(&rest, data)?,
        other => return Err(crate::mapping::unknown(other)),
    };
    Ok(id.to_string())
}

/// The unit products are created in and sold by: Tryton's "Unit".
fn unit(rest: &Rest) -> Result<i64, Error> {
    cached("unit", || {
        rest.ids("product.uom", &json!([["symbol", "=", "u"]]), 1)?
            .first()
            .copied()
            .ok_or_else(|| {
                Error::Config(String::from(
                    "Tryton has no unit of measure with symbol \"u\" (Unit), which products are created in",
                ))
            })
    })
}

/// A template with one variant (its code the SKU), salable by the unit;
/// with the local stock, an inventory in the warehouse brings the
/// variant's quantity to it, so that the ERP starts from the shop's stock
/// instead of sending zero back. When the inventory fails, the product
/// just made is deleted again: nothing half-made stays in Tryton.
fn create_product(rest: &Rest, data: &Value) -> Result<i64, Error> {
    let unit = unit(rest)?;
    let mut template = json!({
        "name": data["name"], "type": "goods", "salable": true,
        "default_uom": unit, "sale_uom": unit,
        "products": [["create", [{"suffix_code": data["code"]}]]],
    });
    if !data["list_price"].is_null() {
        template["list_price"] = data["list_price"].clone();
    }
    let made = rest.post("product.template?f=products", &template)?;
    let template_id = id_of(&made)?;
    let variant = made["products"]
        .as_array()
        .and_then(|p| p.first())
        .and_then(|p| p.as_i64().or_else(|| p["id"].as_i64()))
        .ok_or_else(|| {
            Error::permanent(format!(
                "Tryton made template {template_id} without its variant"
            ))
        })?;
    if let Some(stock) = data["stock"].as_f64().filter(|s| *s > 0.0)
        && let Err(e) = stock_to(rest, variant, stock)
    {
        // Undo, so that the retry creates it whole.
        rest.delete(&format!("product.template/{template_id}"))?;
        return Err(e);
    }
    Ok(variant)
}

/// An inventory of the warehouse's storage zone that sets `product`'s
/// quantity to `quantity`, confirmed.
fn stock_to(rest: &Rest, product: i64, quantity: f64) -> Result<(), Error> {
    let warehouse = warehouse(rest)?;
    let storage = cached("storage", || {
        rest.read("stock.location", warehouse, &["storage_location"])?["storage_location"]
            .as_i64()
            .ok_or_else(|| {
                Error::Config(format!(
                    "Tryton's warehouse {warehouse} has no storage location to hold stock"
                ))
            })
    })?;
    let inventory = rest.post(
        "stock.inventory",
        // Tryton fills the date (today) and the company by default.
        &json!({"location": storage,
                "lines": [["create", [{"product": product, "quantity": quantity}]]]}),
    )?;
    let id = id_of(&inventory)?;
    rest.post(&format!("stock.inventory/{id}/confirm"), &json!({}))?;
    Ok(())
}

/// A draft sale with its lines: the currency by code, each line in its
/// product's default unit.
fn create_sale(rest: &Rest, data: &Value) -> Result<i64, Error> {
    let mut sale = data.clone();
    if let Some(code) = data["currency"].as_str() {
        let currency = cached(&format!("currency:{code}"), || {
            rest.ids("currency.currency", &json!([["code", "=", code]]), 1)?
                .first()
                .copied()
                .ok_or_else(|| {
                    Error::permanent(format!(
                        "Tryton has no currency {code:?}; create it (Currency menu) to take this order"
                    ))
                })
        })?;
        sale["currency"] = json!(currency);
    }
    let lines = data["lines"].as_array().cloned().unwrap_or_default();
    let products: Vec<i64> = lines.iter().filter_map(|l| l["product"].as_i64()).collect();
    let units = rest.search(
        "product.product",
        &json!([["id", "in", products]]),
        &json!([["id", "ASC"]]),
        &["default_uom"],
        products.len().max(1) as u32,
        0,
    )?;
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|mut l| {
            let unit = units
                .iter()
                .find(|u| u["id"] == l["product"])
                .map(|u| u["default_uom"].clone())
                .ok_or_else(|| {
                    Error::NotFound(format!("product {} is not in Tryton", l["product"]))
                })?;
            l["unit"] = unit;
            l["type"] = json!("line");
            Ok(l)
        })
        .collect::<Result<_, Error>>()?;
    sale["lines"] = json!([["create", lines]]);
    id_of(&rest.post("sale.sale", &sale)?)
}

pub fn write(model: &str, id: &str, data: &Value) -> Result<(), Error> {
    let rest = Rest::new()?;
    let path = tryton_model(model)?;
    let id = parse_id(path, id)?;
    match model {
        "customer" => {
            if !data["name"].is_null() {
                rest.put(&format!("party.party/{id}"), &json!({"name": data["name"]}))?;
            }
            if let Some(email) = data["email"].as_str() {
                set_email(&rest, id, email)?;
            }
        }
        "product" => {
            let mut template = json!({});
            for f in ["name", "list_price"] {
                if !data[f].is_null() {
                    template[f] = data[f].clone();
                }
            }
            if template.as_object().is_some_and(|t| !t.is_empty()) {
                let variant = rest.read("product.product", id, &["template"])?;
                let template_id = variant["template"]["id"]
                    .as_i64()
                    .or_else(|| variant["template"].as_i64())
                    .ok_or_else(|| Error::permanent(format!("product {id} has no template")))?;
                rest.put(&format!("product.template/{template_id}"), &template)?;
            }
        }
        "order" => {
            return Err(Error::permanent(
                "sales are created once; Tryton owns them from there",
            ));
        }
        other => return Err(crate::mapping::unknown(other)),
    }
    Ok(())
}

/// The party's first email contact mechanism set to `email` (made when
/// it has none).
fn set_email(rest: &Rest, party: i64, email: &str) -> Result<(), Error> {
    let existing = rest.search(
        "party.contact_mechanism",
        &json!([["party", "=", party], ["type", "=", "email"]]),
        &json!([["sequence", "ASC"], ["id", "ASC"]]),
        &["value"],
        1,
        0,
    )?;
    match existing.first() {
        Some(m) if m["value"].as_str() == Some(email) => Ok(()),
        Some(m) => rest
            .put(
                &format!("party.contact_mechanism/{}", id_of(m)?),
                &json!({"value": email}),
            )
            .map(|_| ()),
        None => rest
            .put(
                &format!("party.party/{party}"),
                &json!({"contact_mechanisms": [["create", [{"type": "email", "value": email}]]]}),
            )
            .map(|_| ()),
    }
}

/// A sale is cancelled, not deleted: Tryton keeps cancelled sales (and
/// can take one back to draft) and refuses to delete one past draft.
pub fn delete(model: &str, id: &str) -> Result<(), Error> {
    let rest = Rest::new()?;
    let path = tryton_model(model)?;
    let id = parse_id(path, id)?;
    match model {
        "order" => rest
            .post(&format!("sale.sale/{id}/cancel"), &json!({}))
            .map(|_| ()),
        other => Err(Error::permanent(format!(
            "{other} records are not deleted in Tryton by this connector"
        ))),
    }
}

pub fn check() -> Result<String, Error> {
    let rest = Rest::new()?;
    let parties = rest.search("party.party", &json!([]), &json!([]), &["name"], 1, 0)?;
    let warehouse = warehouse(&rest)?;
    Ok(format!(
        "connected to Tryton at {}: parties readable ({} on the first page), warehouse {warehouse}",
        host::backend().base_url,
        parties.len()
    ))
}
