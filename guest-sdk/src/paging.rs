//! Search helpers for cursor-paged APIs: the host calls `search` once per
//! page and passes back the cursor the previous page returned, as in the
//! Python and JavaScript SDKs.
//!
//! ```
//! use junction_guest::paging::{cursor_page, page_size};
//! use junction_guest::RemoteRecord;
//! let answer = serde_json::json!({"results": [{"id": 1}], "paging": {"next": {"after": "1"}}});
//! let page = cursor_page(&answer, |o| Ok(RemoteRecord {
//!     external_id: o["id"].to_string(), updated_at: None, data: o.clone(),
//! }), "results", &["paging", "next", "after"]).unwrap();
//! assert_eq!(page.next_cursor.as_deref(), Some("1"));
//! assert_eq!(page_size(500, 200), 200);
//! ```

use serde_json::Value;

use crate::{Error, Page, RemoteRecord};

/// The host's page size, within 1 and the backend's `maximum`.
pub fn page_size(wanted: u32, maximum: u32) -> u32 {
    wanted.min(maximum).max(1)
}

/// One page of a cursor-paged answer: its `items` made records by
/// `record`, and the cursor at the `next_cursor` path (`None` on the last
/// page). An answer of another shape is a permanent error naming it.
pub fn cursor_page(
    answer: &Value,
    record: impl Fn(&Value) -> Result<RemoteRecord, Error>,
    items: &str,
    next_cursor: &[&str],
) -> Result<Page, Error> {
    let Value::Object(object) = answer else {
        return Err(Error::permanent(format!(
            "the search answered {}, not an object with {items:?}",
            kind(answer)
        )));
    };
    let found = match object.get(items) {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(found)) => found.as_slice(),
        Some(_) => {
            return Err(Error::permanent(format!(
                "the search answer's {items:?} is not a list"
            )));
        }
    };
    let mut cursor = answer;
    for key in next_cursor {
        cursor = cursor.get(key).unwrap_or(&Value::Null);
    }
    let next_cursor = match cursor {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    Ok(Page {
        items: found.iter().map(record).collect::<Result<_, _>>()?,
        next_cursor,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(o: &Value) -> Result<RemoteRecord, Error> {
        Ok(RemoteRecord {
            external_id: o["id"].to_string(),
            updated_at: None,
            data: o.clone(),
        })
    }

    const NEXT: &[&str] = &["paging", "next", "after"];

    #[test]
    fn the_last_page_has_no_cursor_and_numbers_become_text() {
        let last = cursor_page(
            &json!({"results": [{"id": 1}, {"id": 2}]}),
            record,
            "results",
            NEXT,
        );
        assert_eq!(last.unwrap().items.len(), 2);
        let page = cursor_page(
            &json!({"paging": {"next": {"after": 40}}}),
            record,
            "results",
            NEXT,
        )
        .unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next_cursor.as_deref(), Some("40"));
    }

    #[test]
    fn another_shape_is_a_permanent_error_naming_it() {
        let e = cursor_page(&json!([1]), record, "results", NEXT).unwrap_err();
        assert!(matches!(e, Error::Permanent(m) if m.contains("answered a list")));
        let e = cursor_page(&json!({"results": 3}), record, "results", NEXT).unwrap_err();
        assert!(matches!(e, Error::Permanent(m) if m.contains("not a list")));
        assert_eq!(page_size(0, 200), 1);
    }
}
