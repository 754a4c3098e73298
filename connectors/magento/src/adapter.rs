//! Magento's REST API: paths, `searchCriteria` queries and paging, and the
//! calls that write prices, stock and order states back. Every failure is
//! already the contract's error (the SDK's HTTP client maps statuses,
//! `Retry-After` and denied hosts).

use junction_guest::http::{self, Request};
use junction_guest::serde_json::{Value, json};
use junction_guest::{Error, Page, RemoteRecord, host};

use crate::mapping::{magento_time, remote, unknown};

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

pub fn search(
    model: &str,
    filter: &Value,
    cursor: Option<&str>,
    page_size: u32,
) -> Result<Page, Error> {
    let page = match cursor {
        None => 1,
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| Error::permanent(format!("cursor {c:?} is not a page number")))?,
    };
    let page_size = page_size.clamp(1, 1000);
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
    let total = found["total_count"].as_u64().unwrap_or(0);
    // Magento answers a page past the end with the last page again, so the
    // end is known only from the total count.
    let next_cursor =
        (u64::from(page) * u64::from(page_size) < total).then(|| (page + 1).to_string());
    Ok(Page { items, next_cursor })
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
