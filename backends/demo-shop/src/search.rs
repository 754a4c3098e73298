//! Magento's `searchCriteria` query syntax: filter groups (AND) of filters
//! (OR) with `field`, `value`, `condition_type`; `sortOrders`; `pageSize`
//! and `currentPage` (1-based).

use std::collections::BTreeMap;

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: String,
    pub value: String,
    pub condition: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Criteria {
    pub groups: Vec<Vec<Filter>>,
    pub sort: Option<(String, bool)>,
    pub page_size: Option<usize>,
    pub current_page: usize,
}

/// The item fields `fields=items[a,b],total_count` asks for, if it does.
pub fn item_fields(query: &str) -> Option<Vec<String>> {
    let raw = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "fields")
        .map(|(_, v)| percent_decode(v))?;
    let inner = raw.split_once("items[")?.1.split_once(']')?.0;
    Some(
        inner
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect(),
    )
}

/// Decode `%XX` escapes and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a query string; an error names the parameter.
pub fn parse(query: &str) -> Result<Criteria, String> {
    // searchCriteria[filter_groups][0][filters][1][field] -> path parts
    let mut filters: BTreeMap<(usize, usize), BTreeMap<String, String>> = BTreeMap::new();
    let mut sorts: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut criteria = Criteria {
        current_page: 1,
        ..Criteria::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        let Some(rest) = k.strip_prefix("searchCriteria") else {
            continue;
        };
        let parts: Vec<&str> = rest.split(['[', ']']).filter(|p| !p.is_empty()).collect();
        let number = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{k}: {s:?} is not an index"))
        };
        match parts.as_slice() {
            ["filter_groups", g, "filters", f, attr] | ["filterGroups", g, "filters", f, attr] => {
                filters
                    .entry((number(g)?, number(f)?))
                    .or_default()
                    .insert(attr.to_string(), v);
            }
            ["sortOrders", i, attr] | ["sort_orders", i, attr] => {
                sorts
                    .entry(number(i)?)
                    .or_default()
                    .insert(attr.to_string(), v);
            }
            ["pageSize"] | ["page_size"] => {
                criteria.page_size = Some(
                    v.parse()
                        .map_err(|_| format!("{k}: {v:?} is not a number"))?,
                );
            }
            ["currentPage"] | ["current_page"] => {
                criteria.current_page = v
                    .parse::<usize>()
                    .map_err(|_| format!("{k}: {v:?} is not a number"))?
                    .max(1);
            }
            _ => return Err(format!("unknown search parameter {k}")),
        }
    }
    let mut groups: BTreeMap<usize, Vec<Filter>> = BTreeMap::new();
    for ((g, _), attrs) in filters {
        let field = attrs
            .get("field")
            .cloned()
            .ok_or("a filter needs a field")?;
        let condition = attrs
            .get("condition_type")
            .cloned()
            .unwrap_or_else(|| "eq".into());
        if !["eq", "neq", "gt", "gteq", "lt", "lteq", "like", "in", "nin"]
            .contains(&condition.as_str())
        {
            return Err(format!("condition_type {condition:?} is not supported"));
        }
        groups.entry(g).or_default().push(Filter {
            field,
            value: attrs.get("value").cloned().unwrap_or_default(),
            condition,
        });
    }
    criteria.groups = groups.into_values().collect();
    if let Some(first) = sorts.into_values().next() {
        let field = first
            .get("field")
            .cloned()
            .ok_or("a sort order needs a field")?;
        let desc = first
            .get("direction")
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        criteria.sort = Some((field, desc));
    }
    Ok(criteria)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compare(a: &Value, b: &str) -> std::cmp::Ordering {
    compare_text(&text(a), b)
}

/// Numbers as numbers, anything else as text.
fn compare_text(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn like(value: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    if parts.len() == 1 {
        return value == pattern;
    }
    let mut rest = value;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(p) => rest = &rest[p + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl Filter {
    pub fn matches(&self, item: &Value) -> bool {
        let v = item.get(&self.field).unwrap_or(&Value::Null);
        use std::cmp::Ordering::*;
        match self.condition.as_str() {
            "eq" => compare(v, &self.value) == Equal,
            "neq" => compare(v, &self.value) != Equal,
            "gt" => compare(v, &self.value) == Greater,
            "gteq" => compare(v, &self.value) != Less,
            "lt" => compare(v, &self.value) == Less,
            "lteq" => compare(v, &self.value) != Greater,
            "like" => like(&text(v), &self.value),
            "in" => self.value.split(',').any(|x| compare(v, x.trim()) == Equal),
            "nin" => !self.value.split(',').any(|x| compare(v, x.trim()) == Equal),
            _ => false,
        }
    }
}

impl Criteria {
    /// Filter, sort and page `items` into Magento's search result shape.
    /// Like Magento, a page past the end returns the last page again:
    /// clients must stop on `total_count`.
    /// Filter, sort and page `items`; only the page is copied.
    pub fn apply<'a>(
        &self,
        items: impl Iterator<Item = &'a Value>,
        shape: impl Fn(&Value) -> Value,
        query_echo: Value,
    ) -> Value {
        let hits: Vec<&Value> = items
            .filter(|item| {
                self.groups
                    .iter()
                    .all(|g| g.iter().any(|f| f.matches(item)))
            })
            .collect();
        let mut hits: Vec<(String, &Value)> = match &self.sort {
            // Each sort key is rendered once, not once per comparison.
            Some((field, _)) => hits
                .into_iter()
                .map(|v| (text(v.get(field).unwrap_or(&Value::Null)), v))
                .collect(),
            None => hits.into_iter().map(|v| (String::new(), v)).collect(),
        };
        if let Some((_, desc)) = &self.sort {
            hits.sort_by(|(a, _), (b, _)| {
                let o = compare_text(a, b);
                if *desc { o.reverse() } else { o }
            });
        }
        let total = hits.len();
        let page: Vec<Value> = match self.page_size {
            Some(size) if size > 0 => {
                let last_page = total.div_ceil(size).max(1);
                let page = self.current_page.min(last_page);
                hits.into_iter()
                    .skip((page - 1) * size)
                    .take(size)
                    .map(|(_, v)| shape(v))
                    .collect()
            }
            _ => hits.into_iter().map(|(_, v)| shape(v)).collect(),
        };
        json!({ "items": page, "search_criteria": query_echo, "total_count": total })
    }
}
