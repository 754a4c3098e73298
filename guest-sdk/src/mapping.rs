//! Mapping helpers in the spirit of OCA's `Mapper`: declare how fields go
//! from one record to another — direct copies, converters, relations
//! through the binder, children (order lines), fields only on create, and
//! on export only the fields that changed (OCA's `@changed_by`).
//!
//! Records are `serde_json` objects, so mappers run and are unit-tested
//! natively with `cargo test`; inside a component the binder is the host's.

use serde_json::{Map, Value};

use crate::Error;

/// External id ↔ local id, as the host's `binder` import provides it. A
/// test can implement it with a `HashMap`.
pub trait Binder {
    fn to_local(&self, model: &str, external_id: &str) -> Option<String>;
    fn to_external(&self, model: &str, local_id: &str) -> Option<String>;
}

/// Which way a relation is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Backend → local (import): external ids become local ids.
    Import,
    /// Local → backend (export): local ids become external ids.
    Export,
}

/// Builds one output record from one source record.
pub struct Mapping<'a> {
    source: &'a Map<String, Value>,
    out: Map<String, Value>,
    creating: bool,
    /// Fields changed on the local record (export of an update); `None`
    /// maps everything.
    changed: Option<&'a [String]>,
    binder: Option<(&'a dyn Binder, Direction)>,
    /// The first thing that went wrong; `finish` returns it.
    problem: Option<Error>,
}

impl<'a> Mapping<'a> {
    /// Map from `source`, which must be a JSON object.
    pub fn new(source: &'a Value) -> Result<Self, Error> {
        let source = source
            .as_object()
            .ok_or_else(|| Error::permanent("a record to map must be a JSON object"))?;
        Ok(Mapping {
            source,
            out: Map::new(),
            creating: true,
            changed: None,
            binder: None,
            problem: None,
        })
    }

    /// An update rather than a create: `on_create` fields are skipped, and
    /// when `changed` is given, only fields whose source changed are mapped.
    pub fn update(mut self, changed: Option<&'a [String]>) -> Self {
        self.creating = false;
        self.changed = changed;
        self
    }

    /// Resolve relations with this binder.
    pub fn binder(mut self, binder: &'a dyn Binder, direction: Direction) -> Self {
        self.binder = Some((binder, direction));
        self
    }

    fn fail(&mut self, e: Error) {
        self.problem.get_or_insert(e);
    }

    fn wanted(&self, from: &str) -> bool {
        self.changed
            .is_none_or(|fields| fields.iter().any(|f| f == from))
    }

    /// Copy `from` to `to` as it is (absent stays absent).
    pub fn direct(self, from: &str, to: &str) -> Self {
        self.convert(from, to, |v| Ok(v.clone()))
    }

    /// Copy `from` to `to` through `f`.
    pub fn convert(
        mut self,
        from: &str,
        to: &str,
        f: impl Fn(&Value) -> Result<Value, Error>,
    ) -> Self {
        if self.wanted(from)
            && let Some(v) = self.source.get(from)
        {
            match f(v) {
                Ok(v) => {
                    self.out.insert(to.to_string(), v);
                }
                Err(e) => self.fail(e),
            }
        }
        self
    }

    /// Like [`Mapping::direct`], but only when creating.
    pub fn on_create(self, from: &str, to: &str) -> Self {
        if self.creating {
            self.direct(from, to)
        } else {
            self
        }
    }

    /// Map an id of a `model` record through the binder. A missing binding
    /// is a retryable error: the related record is not synced yet.
    pub fn relation(mut self, from: &str, to: &str, model: &str) -> Self {
        if !self.wanted(from) {
            return self;
        }
        let Some(id) = self.source.get(from).filter(|v| !v.is_null()) else {
            return self;
        };
        let id = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let Some((binder, direction)) = self.binder else {
            self.fail(Error::permanent(format!(
                "relation {from}: no binder given to the mapping"
            )));
            return self;
        };
        let found = match direction {
            Direction::Import => binder.to_local(model, &id),
            Direction::Export => binder.to_external(model, &id),
        };
        match found {
            Some(v) => {
                self.out.insert(to.to_string(), Value::String(v));
            }
            // The related record is not synced yet: try again later.
            None => self.fail(Error::retryable(format!("{model} {id} is not bound yet"))),
        }
        self
    }

    /// Map each element of the array `from` with `child` into `to`.
    pub fn children(
        mut self,
        from: &str,
        to: &str,
        child: impl Fn(Mapping<'_>) -> Mapping<'_>,
    ) -> Self {
        if !self.wanted(from) {
            return self;
        }
        let Some(items) = self.source.get(from).and_then(Value::as_array) else {
            return self;
        };
        let mut mapped = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Ok(inner) = Mapping::new(item) else {
                self.fail(Error::permanent(format!("{from}[{i}] is not an object")));
                return self;
            };
            let mut inner = if self.creating {
                inner
            } else {
                inner.update(None)
            };
            if let Some((b, d)) = self.binder {
                inner = inner.binder(b, d);
            }
            match child(inner).finish() {
                Ok(v) => mapped.push(v),
                Err(e) => {
                    self.fail(match e {
                        Error::Retryable {
                            after_seconds,
                            message,
                        } => Error::Retryable {
                            after_seconds,
                            message: format!("{from}[{i}]: {message}"),
                        },
                        Error::Permanent(m) => Error::Permanent(format!("{from}[{i}]: {m}")),
                        other => other,
                    });
                    return self;
                }
            }
        }
        self.out.insert(to.to_string(), Value::Array(mapped));
        self
    }

    /// Set a constant.
    pub fn constant(mut self, to: &str, value: Value) -> Self {
        self.out.insert(to.to_string(), value);
        self
    }

    /// The mapped record, or the first problem: a converter's error is
    /// permanent, a relation not bound yet is retryable.
    pub fn finish(self) -> Result<Value, Error> {
        match self.problem {
            Some(e) => Err(e),
            None => Ok(Value::Object(self.out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    struct Bindings(HashMap<(String, String), String>);

    impl Binder for Bindings {
        fn to_local(&self, model: &str, external_id: &str) -> Option<String> {
            self.0
                .get(&(model.to_string(), external_id.to_string()))
                .cloned()
        }
        fn to_external(&self, model: &str, local_id: &str) -> Option<String> {
            self.0
                .iter()
                .find(|((m, _), l)| m == model && l.as_str() == local_id)
                .map(|((_, e), _)| e.clone())
        }
    }

    fn binder() -> Bindings {
        let mut m = HashMap::new();
        m.insert(("customer".to_string(), "7".to_string()), "c-1".to_string());
        m.insert(
            ("product".to_string(), "SKU1".to_string()),
            "p-1".to_string(),
        );
        Bindings(m)
    }

    fn order() -> Value {
        json!({
            "increment_id": "000000042", "customer_id": 7, "grand_total": "19.90", "state": "new",
            "items": [{"sku": "SKU1", "qty_ordered": 2}]
        })
    }

    fn map_order<'a>(m: Mapping<'a>) -> Mapping<'a> {
        m.direct("increment_id", "name")
            .convert("grand_total", "amount", |v| {
                v.as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(Value::from)
                    .ok_or_else(|| Error::permanent("grand_total is not a number"))
            })
            .relation("customer_id", "partner_id", "customer")
            .on_create("state", "initial_state")
            .children("items", "lines", |line| {
                line.relation("sku", "product_id", "product")
                    .direct("qty_ordered", "quantity")
            })
    }

    #[test]
    fn an_order_maps_with_relations_and_lines() {
        let source = order();
        let b = binder();
        let out = map_order(Mapping::new(&source).unwrap().binder(&b, Direction::Import))
            .finish()
            .unwrap();
        assert_eq!(
            out,
            json!({
                "name": "000000042", "amount": 19.9, "partner_id": "c-1", "initial_state": "new",
                "lines": [{"product_id": "p-1", "quantity": 2}]
            })
        );
    }

    #[test]
    fn a_missing_relation_is_retryable_and_a_bad_value_permanent() {
        let mut source = order();
        source["customer_id"] = json!(99);
        let b = binder();
        let err = map_order(Mapping::new(&source).unwrap().binder(&b, Direction::Import))
            .finish()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Retryable { message, .. } if message.contains("customer 99")),
            "{err}"
        );
        let mut source = order();
        source["grand_total"] = json!("lots");
        let err = map_order(Mapping::new(&source).unwrap().binder(&b, Direction::Import))
            .finish()
            .unwrap_err();
        assert!(matches!(err, Error::Permanent(m) if m.contains("grand_total")));
        let mut source = order();
        source["items"][0]["sku"] = json!("NOPE");
        let err = map_order(Mapping::new(&source).unwrap().binder(&b, Direction::Import))
            .finish()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Retryable { message, .. } if message.contains("items[0]")),
            "{err}"
        );
    }

    #[test]
    fn an_update_maps_only_changed_fields_and_skips_create_only_ones() {
        let source = order();
        let b = binder();
        let changed = vec!["grand_total".to_string()];
        let out = map_order(
            Mapping::new(&source)
                .unwrap()
                .update(Some(&changed))
                .binder(&b, Direction::Import),
        )
        .finish()
        .unwrap();
        assert_eq!(out, json!({"amount": 19.9}));
    }

    #[test]
    fn export_looks_relations_up_the_other_way() {
        let local = json!({"partner_id": "c-1"});
        let b = binder();
        let out = Mapping::new(&local)
            .unwrap()
            .binder(&b, Direction::Export)
            .relation("partner_id", "customer_id", "customer")
            .finish()
            .unwrap();
        assert_eq!(out, json!({"customer_id": "7"}));
        assert!(Mapping::new(&json!([1])).is_err());
    }
}
