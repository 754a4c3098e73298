//! `POST /crm/v3/objects/{type}/search`: HubSpot's search request —
//! `filterGroups` (groups OR-ed, filters in a group AND-ed), `sorts`,
//! `limit` and the `after` cursor — applied to the stored objects.

use serde_json::{Value, json};

use crate::data::{Object, parse_time};

/// At most this many results a page, as HubSpot's search allows.
pub const MAX_LIMIT: u64 = 200;

#[derive(Debug)]
struct Filter {
    property: String,
    operator: String,
    value: Option<String>,
}

/// A parsed search request.
#[derive(Debug)]
pub struct Search {
    groups: Vec<Vec<Filter>>,
    sort: Option<(String, bool)>,
    limit: usize,
    after: usize,
}

const OPERATORS: [&str; 8] = [
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
];

impl Search {
    /// The request body, or what is wrong with it.
    pub fn parse(body: &Value) -> Result<Search, String> {
        let mut groups = Vec::new();
        for group in body["filterGroups"].as_array().into_iter().flatten() {
            let mut filters = Vec::new();
            for f in group["filters"].as_array().into_iter().flatten() {
                let property = f["propertyName"]
                    .as_str()
                    .ok_or("a filter needs a propertyName")?
                    .to_string();
                let operator = f["operator"].as_str().unwrap_or("EQ").to_string();
                if !OPERATORS.contains(&operator.as_str()) {
                    return Err(format!(
                        "operator {operator:?} is not one of {}",
                        OPERATORS.join(", ")
                    ));
                }
                let value = match &f["value"] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                };
                if value.is_none() && !operator.ends_with("HAS_PROPERTY") {
                    return Err(format!(
                        "filter on {property:?} with {operator} needs a value"
                    ));
                }
                filters.push(Filter {
                    property,
                    operator,
                    value,
                });
            }
            groups.push(filters);
        }
        let sort = match body["sorts"].as_array().and_then(|s| s.first()) {
            None => None,
            Some(Value::String(s)) => Some(match s.strip_prefix('-') {
                Some(p) => (p.to_string(), true),
                None => (s.clone(), false),
            }),
            Some(s) => Some((
                s["propertyName"]
                    .as_str()
                    .ok_or("a sort needs a propertyName")?
                    .to_string(),
                s["direction"] == "DESCENDING",
            )),
        };
        let limit = match &body["limit"] {
            Value::Null => 10,
            v => v
                .as_u64()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or(format!("limit must be from 1 to {MAX_LIMIT}"))?,
        } as usize;
        let after = match &body["after"] {
            Value::Null => 0,
            Value::String(s) => s
                .parse()
                .map_err(|_| format!("after {s:?} is not a cursor this search gave"))?,
            v => v
                .as_u64()
                .ok_or("after must be a cursor this search gave")? as usize,
        };
        Ok(Search {
            groups,
            sort,
            limit,
            after,
        })
    }

    /// One page of results, with `paging.next.after` when there are more.
    pub fn apply<'a>(&self, objects: impl Iterator<Item = &'a Object>) -> Value {
        let mut hits: Vec<&Object> = objects
            .filter(|o| {
                self.groups.is_empty() || self.groups.iter().any(|g| g.iter().all(|f| f.matches(o)))
            })
            .collect();
        if let Some((property, descending)) = &self.sort {
            hits.sort_by(|a, b| {
                let order = compare(
                    a.property(property).as_deref(),
                    b.property(property).as_deref(),
                )
                .then(a.id.cmp(&b.id));
                if *descending { order.reverse() } else { order }
            });
        }
        let total = hits.len();
        let page: Vec<Value> = hits
            .iter()
            .skip(self.after)
            .take(self.limit)
            .map(|o| o.to_json())
            .collect();
        let next = self.after + page.len();
        let mut out = json!({ "total": total, "results": page });
        if next < total {
            out["paging"] = json!({ "next": { "after": next.to_string() } });
        }
        out
    }
}

/// Numbers (and times) compare as numbers, the rest as text.
fn compare(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a.cmp(b),
        },
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

fn as_number(s: &str) -> Option<f64> {
    s.parse::<f64>()
        .ok()
        .or_else(|| parse_time(s).map(|ms| ms as f64))
}

impl Filter {
    fn matches(&self, object: &Object) -> bool {
        let actual = object.property(&self.property);
        let wanted = self.value.as_deref();
        use std::cmp::Ordering::*;
        match self.operator.as_str() {
            "HAS_PROPERTY" => actual.is_some(),
            "NOT_HAS_PROPERTY" => actual.is_none(),
            "EQ" => actual.is_some_and(|a| {
                compare(Some(&a), wanted) == Equal || a.eq_ignore_ascii_case(wanted.unwrap_or(""))
            }),
            "NEQ" => actual.is_none_or(|a| compare(Some(&a), wanted) != Equal),
            op => actual.is_some_and(|a| {
                let o = compare(Some(&a), wanted);
                match op {
                    "LT" => o == Less,
                    "LTE" => o != Greater,
                    "GT" => o == Greater,
                    _ => o != Less,
                }
            }),
        }
    }
}
