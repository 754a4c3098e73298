//! Tryton's REST API (`/<database>/rest/model/<model>`, Tryton 8): one
//! client per call that names the backend's company in `X-Tryton-Context`
//! (company-dependent fields such as prices answer only then, and records
//! are created in that company), searches with a base64url domain and
//! order, and reads Tryton's errors (`{"status", "message",
//! "description"}`) through the SDK, so a validation error reaches the job
//! with Tryton's own words.

use junction_guest::http::{self, Request};
use junction_guest::serde_json::{Map, Value, json};
use junction_guest::{Error, host};

use crate::values::base64url;

/// A REST client for the backend this call runs for.
pub struct Rest {
    base: String,
    context: Map<String, Value>,
    /// The backend's `warehouse` setting, if set.
    pub warehouse: Option<i64>,
}

impl Rest {
    /// The client with the company from the backend's settings.
    pub fn new() -> Result<Rest, Error> {
        let settings = host::settings()?;
        let company = settings["company"].as_i64().ok_or_else(|| {
            Error::Config(String::from(
                "the backend's settings need \"company\": the id of the Tryton company Junction works in (Tryton's Company menu shows it)",
            ))
        })?;
        let mut context = Map::new();
        context.insert("company".into(), json!(company));
        Ok(Rest {
            base: format!(
                "{}/rest/model",
                host::backend().base_url.trim_end_matches('/')
            ),
            context,
            warehouse: settings["warehouse"].as_i64(),
        })
    }

    /// The same client with stock quantities counted in `warehouse` (its
    /// storage zone), as Tryton's own sale lines count them.
    pub fn in_warehouse(mut self, warehouse: i64) -> Rest {
        self.context.insert("locations".into(), json!([warehouse]));
        self.context
            .insert("stock_skip_warehouse".into(), Value::Bool(true));
        self
    }

    fn request(&self, method: &str, path: &str) -> Request {
        let context = Value::Object(self.context.clone()).to_string();
        Request::new(method, &format!("{}/{path}", self.base))
            .header("x-tryton-context", &base64url(context.as_bytes()))
            .header("accept", "application/json")
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = http::send(&request)?.error_for_status()?;
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        response.json()
    }

    /// `GET model/...`.
    pub fn get(&self, path: &str) -> Result<Value, Error> {
        self.send("GET", path, None)
    }

    /// `POST model?f=...`: creates one record (or runs an action) and
    /// answers it.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.send("POST", path, Some(body))
    }

    /// `PUT model/id`: writes the values given.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.send("PUT", path, Some(body))
    }

    /// `DELETE model/id`.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.send("DELETE", path, None).map(|_| ())
    }

    /// Records of `model` in `domain`, in `order`, `limit` from `offset`,
    /// with `fields` (dotted paths read through relations).
    pub fn search(
        &self,
        model: &str,
        domain: &Value,
        order: &Value,
        fields: &[&str],
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Value>, Error> {
        let query = format!(
            "{model}?d={}&o={}&s={limit}&p={offset}{}",
            base64url(domain.to_string().as_bytes()),
            base64url(order.to_string().as_bytes()),
            field_query(fields)
        );
        match self.get(&query)? {
            Value::Array(items) => Ok(items),
            other => Err(Error::permanent(format!(
                "Tryton's search of {model} answered {} instead of a list",
                kind(&other)
            ))),
        }
    }

    /// Record `id` of `model` with `fields`.
    pub fn read(&self, model: &str, id: i64, fields: &[&str]) -> Result<Value, Error> {
        self.get(&format!(
            "{model}/{id}?{}",
            field_query(fields).trim_start_matches('&')
        ))
    }

    /// The ids of `model` in `domain` (at most `limit`).
    pub fn ids(&self, model: &str, domain: &Value, limit: u32) -> Result<Vec<i64>, Error> {
        self.search(model, domain, &json!([["id", "ASC"]]), &[], limit, 0)?
            .iter()
            .map(id_of)
            .collect()
    }
}

/// `&f=a&f=b…`: the fields a GET reads (dotted paths through relations).
fn field_query(fields: &[&str]) -> String {
    fields.iter().map(|f| format!("&f={f}")).collect()
}

/// A record's `id`.
pub fn id_of(v: &Value) -> Result<i64, Error> {
    v["id"]
        .as_i64()
        .ok_or_else(|| Error::permanent(format!("Tryton answered a record without an id: {v}")))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        _ => "a scalar",
    }
}

/// `value` escaped for a `like`/`ilike` pattern: Tryton reads `%` and `_`
/// as wildcards and `\` as their escape.
pub fn like_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_literal("a_b%c\\d@x.io"), "a\\_b\\%c\\\\d@x.io");
    }
}
