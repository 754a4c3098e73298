//! Magento's REST API: paths, `searchCriteria` queries and paging, and the
//! calls that write prices, stock and order states back. Every failure is
//! already the contract's error (the SDK's HTTP client maps statuses,
//! `Retry-After` and denied hosts).

use junction_guest::http::{self, Request};
use junction_guest::serde_json::{Value, json};
use junction_guest::{Error, IdPage, Page, RemoteRecord, host};

use crate::mapping::{id_field, magento_time, remote, unknown};

fn base() -> String {
    format!("{}/rest/V1", host::backend().base_url)
}

/// A path segment with everything but unreserved characters escaped.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn list_path(model: &str) -> Result<&'static str, Error> {
    Ok(match model {
        "category" => "categories/list",
        "product" => "products",
        "customer" => "customers/search",
        "order" => "orders",
        other => return Err(unknown(other)),
    })
}

fn record_path(model: &str, id: &str) -> Result<String, Error> {
    Ok(match model {
        "category" => format!("categories/{}", segment(id)),
        "product" => format!("products/{}", segment(id)),
        "customer" => format!("customers/{}", segment(id)),
        "order" => format!("orders/{}", segment(id)),
        other => return Err(unknown(other)),
    })
}

/// The `searchCriteria` query for one page of records changed since
/// `filter["updated-since"]` (oldest change first, so that a record
/// changing during the scan moves behind the pages already read).
pub fn search_query(filter: &Value, page: u32, page_size: u32) -> Result<String, Error> {
    let mut q = Vec::new();
    if let Some(since) = filter.get("updated-since").and_then(Value::as_str) {
        let f = "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D";
        q.push(format!("{f}%5Bfield%5D=updated_at"));
        q.push(format!("{f}%5Bvalue%5D={}", segment(&magento_time(since)?)));
        q.push(format!("{f}%5Bcondition_type%5D=gteq"));
    }
    q.push("searchCriteria%5BsortOrders%5D%5B0%5D%5Bfield%5D=updated_at".to_string());
    q.push("searchCriteria%5BsortOrders%5D%5B0%5D%5Bdirection%5D=ASC".to_string());
    q.push(format!("searchCriteria%5BpageSize%5D={page_size}"));
    q.push(format!("searchCriteria%5BcurrentPage%5D={page}"));
    Ok(q.join("&"))
}

pub fn check() -> Result<String, Error> {
    let url = format!("{}/products?{}", base(), search_query(&json!({}), 1, 1)?);
    let found: Value = http::json(Request::get(&url), None::<&()>)?;
    Ok(format!(
        "connected to Magento at {}: {} products",
        host::backend().base_url,
        found["total_count"]
    ))
}

/// The page a cursor names (the first without one) and the page size
/// Magento takes.
fn paging(cursor: Option<&str>, page_size: u32) -> Result<(u32, u32), Error> {
    let page = match cursor {
        None => 1,
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| Error::permanent(format!("cursor {c:?} is not a page number")))?,
    };
    Ok((page, page_size.clamp(1, 1000)))
}

/// The next page's cursor, if there is one. Magento answers a page past
/// the end with the last page again, so the end is known only from the
/// total count.
fn next_page(found: &Value, page: u32, page_size: u32) -> Option<String> {
    let total = found["total_count"].as_u64().unwrap_or(0);
    (u64::from(page) * u64::from(page_size) < total).then(|| (page + 1).to_string())
}

pub fn search(
    model: &str,
    filter: &Value,
    cursor: Option<&str>,
    page_size: u32,
) -> Result<Page, Error> {
    let (page, page_size) = paging(cursor, page_size)?;
    let url = format!(
        "{}/{}?{}",
        base(),
        list_path(model)?,
        search_query(filter, page, page_size)?
    );
    let found: Value = http::json(Request::get(&url), None::<&()>)?;
    let items = found["items"]
        .as_array()
        .ok_or_else(|| Error::permanent(format!("the {model} search answered without items")))?
        .iter()
        .map(|item| remote(model, item.clone()))
        .collect::<Result<Vec<RemoteRecord>, Error>>()?;
    Ok(Page {
        items,
        next_cursor: next_page(&found, page, page_size),
    })
}

pub fn read(model: &str, id: &str) -> Result<RemoteRecord, Error> {
    let url = format!("{}/{}", base(), record_path(model, id)?);
    let data: Value = http::json(Request::get(&url), None::<&()>).map_err(|e| match e {
        Error::NotFound(m) => {
            Error::NotFound(format!("{model} {id} is gone from the backend: {m}"))
        }
        other => other,
    })?;
    remote(model, data)
}

pub fn write(model: &str, id: &str, data: &Value) -> Result<(), Error> {
    match model {
        "product" => {
            if data.as_object().is_some_and(|o| o.is_empty()) {
                return Ok(());
            }
            let url = format!("{}/{}", base(), record_path(model, id)?);
            let _: Value = http::json(Request::new("PUT", &url), Some(&json!({"product": data})))?;
            Ok(())
        }
        "order" => {
            let Some(state) = data.get("state").and_then(Value::as_str) else {
                return Ok(());
            };
            let action = match state {
                "holded" => "hold",
                "new" => "unhold",
                "canceled" => "cancel",
                other => {
                    return Err(Error::permanent(format!(
                        "order state {other:?} cannot be set through the API; use holded, new or canceled"
                    )));
                }
            };
            let url = format!("{}/orders/{}/{action}", base(), segment(id));
            let _: Value = http::json(Request::new("POST", &url), None::<&()>)?;
            Ok(())
        }
        other => Err(Error::permanent(format!(
            "{other} records cannot be written back through this connector"
        ))),
    }
}

pub fn delete(model: &str, id: &str) -> Result<(), Error> {
    if model != "product" {
        return Err(Error::permanent(format!(
            "{model} records cannot be deleted through this connector"
        )));
    }
    let url = format!("{}/{}", base(), record_path(model, id)?);
    match http::json::<Value>(Request::new("DELETE", &url), None::<&()>) {
        // Already gone is what a delete wants.
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One page of `model`'s ids: the search without filter, asking Magento
/// for the id field alone (`fields=items[sku],total_count`).
pub fn list_ids(model: &str, cursor: Option<&str>, page_size: u32) -> Result<IdPage, Error> {
    let (page, page_size) = paging(cursor, page_size)?;
    let field = id_field(model)?;
    let url = format!(
        "{}/{}?{}&fields=items%5B{field}%5D%2Ctotal_count",
        base(),
        list_path(model)?,
        search_query(&json!({}), page, page_size)?
    );
    let found: Value = http::json(Request::get(&url), None::<&()>)?;
    let ids = found["items"]
        .as_array()
        .ok_or_else(|| Error::permanent(format!("the {model} search answered without items")))?
        .iter()
        .filter_map(|item| match &item[field] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    Ok(IdPage {
        ids,
        next_cursor: next_page(&found, page, page_size),
    })
}

/// The ids of `model` records whose match field is `value`: a product by
/// SKU (its id), a customer by email (`customers/search`).
pub fn find(model: &str, field: &str, value: &str) -> Result<Vec<String>, Error> {
    match (model, field) {
        ("product", "sku") => {
            let url = format!("{}/products/{}", base(), segment(value));
            match http::json::<Value>(Request::get(&url), None::<&()>) {
                Ok(p) => Ok(p["sku"].as_str().map(str::to_string).into_iter().collect()),
                Err(Error::NotFound(_)) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        }
        ("customer", "email") => {
            let f = "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D";
            let url = format!(
                "{}/customers/search?{f}%5Bfield%5D=email&{f}%5Bvalue%5D={}&{f}%5Bcondition_type%5D=eq&searchCriteria%5BpageSize%5D=20&fields=items%5Bid%5D",
                base(),
                segment(value)
            );
            let found: Value = http::json(Request::get(&url), None::<&()>)?;
            Ok(found["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_i64().map(|id| id.to_string()))
                .collect())
        }
        _ => Err(Error::permanent(format!(
            "{model} records cannot be found by {field} in Magento through this connector"
        ))),
    }
}

/// Ship an order with a tracking number (`POST /V1/order/{id}/ship`);
/// the shipment's id.
pub fn ship(
    order_id: &str,
    track_number: &str,
    carrier: &str,
    title: &str,
) -> Result<Value, Error> {
    let url = format!("{}/order/{}/ship", base(), segment(order_id));
    let body = json!({"tracks": [{"track_number": track_number, "carrier_code": carrier, "title": title}]});
    http::json(Request::new("POST", &url), Some(&body))
}

/// The adapter natively, against the SDK's fake host and scripted
/// transport: what it sends, and what it makes of Magento's answers.
#[cfg(test)]
mod tests {
    use junction_guest::testing::{FakeHost, ScriptedTransport};

    use super::*;

    fn shop(transport: ScriptedTransport) -> FakeHost {
        FakeHost::new("https://shop.test/").transport(transport)
    }

    #[test]
    fn search_pages_by_total_count_with_the_changed_since_filter() {
        let answer = json!({
            "items": [{"sku": "A-1", "updated_at": "2026-01-02 03:04:05"}],
            "total_count": 60,
        });
        let t = ScriptedTransport::new()
            .json(200, answer.clone())
            .json(200, answer);
        let since = json!({"updated-since": "2026-01-01T00:00:00Z"});
        let ((first, last), host) = shop(t).run(|| {
            (
                search("product", &since, None, 25),
                search("product", &since, Some("3"), 25),
            )
        });
        let first = first.unwrap();
        assert_eq!(first.items[0].external_id, "A-1");
        assert_eq!(
            first.items[0].updated_at.as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(first.next_cursor.as_deref(), Some("2"));
        // Page 3 of 25 reaches the 60th record: the last page.
        assert_eq!(last.unwrap().next_cursor, None);
        let url = &host.sent()[0].url;
        assert!(
            url.starts_with("https://shop.test/rest/V1/products?"),
            "{url}"
        );
        assert!(
            url.contains("%5Bfield%5D=updated_at") && url.contains("condition_type%5D=gteq"),
            "{url}"
        );
        assert!(
            url.contains("pageSize%5D=25") && url.contains("currentPage%5D=1"),
            "{url}"
        );
        assert!(host.sent()[1].url.contains("currentPage%5D=3"));
    }

    #[test]
    fn throttling_and_missing_records_become_the_contracts_errors() {
        let t = ScriptedTransport::new()
            .response(429, &[("retry-after", "7")], r#"{"message":"slow down"}"#)
            .json(404, json!({"message": "No such entity."}))
            .json(404, json!({"message": "No such entity."}));
        let ((throttled, missing, deleted), _) = shop(t).run(|| {
            (
                read("order", "5"),
                read("customer", "9"),
                delete("product", "gone sku"),
            )
        });
        assert!(
            matches!(
                throttled,
                Err(Error::RateLimited {
                    reset_seconds: 7,
                    ..
                })
            ),
            "{throttled:?}"
        );
        assert!(
            matches!(&missing, Err(Error::NotFound(m)) if m.contains("customer 9 is gone")),
            "{missing:?}"
        );
        assert!(deleted.is_ok(), "already gone is what a delete wants");
    }

    #[test]
    fn order_states_go_out_as_actions_and_others_are_refused() {
        let t = ScriptedTransport::new().json(200, json!(true));
        let ((held, bad), host) = shop(t).run(|| {
            (
                write("order", "12", &json!({"state": "holded"})),
                write("order", "12", &json!({"state": "complete"})),
            )
        });
        held.unwrap();
        assert!(matches!(bad, Err(Error::Permanent(_))), "{bad:?}");
        assert_eq!(host.sent().len(), 1, "the refused state sent nothing");
        assert_eq!(host.sent()[0].method, "POST");
        assert_eq!(
            host.sent()[0].url,
            "https://shop.test/rest/V1/orders/12/hold"
        );
    }
}
