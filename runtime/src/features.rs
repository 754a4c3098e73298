//! The optional capabilities of contract 0.1.2 in the host's plain types:
//! what a component declares it offers ([`Features`]), the natural keys
//! of a record ([`MatchKey`], read by the host from the declared match
//! fields), a page of ids ([`IdPage`]) and a webhook call handed to a
//! connector ([`Webhook`]); each with the checks the host makes before it
//! uses a guest's answer.

use serde::{Deserialize, Serialize};

/// Longest match field name, in bytes.
pub const MAX_KEY_NAME: usize = 64;
/// Key values longer than this are stored as their SHA-256, like long
/// record keys: an index row must stay under PostgreSQL's B-tree limit.
pub const MAX_KEY_VALUE: usize = 256;
/// Declared entries per list at most (models, webhooks, tasks).
const MAX_DECLARED: usize = 256;

/// A job function a connector runs itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskSpec {
    pub name: String,
    pub description: String,
}

/// A field of a model's local data that is a natural key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MatchField {
    pub model: String,
    pub field: String,
}

/// What a component declares it offers beyond the 0.1.1 contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Features {
    /// Models whose ids `lookup.list-ids` pages.
    pub list_ids: Vec<String>,
    /// Models the backend can be searched by match key.
    pub find: Vec<String>,
    /// Natural keys: fields of local data.
    pub match_keys: Vec<MatchField>,
    /// Webhook names it accepts.
    pub webhooks: Vec<String>,
    /// Job functions it runs.
    pub tasks: Vec<TaskSpec>,
}

impl Features {
    pub fn lists_ids(&self, model: &str) -> bool {
        self.list_ids.iter().any(|m| m == model)
    }

    pub fn finds(&self, model: &str) -> bool {
        self.find.iter().any(|m| m == model)
    }

    /// The match fields of `model`, in declared order.
    pub fn match_fields(&self, model: &str) -> Vec<&str> {
        self.match_keys
            .iter()
            .filter(|m| m.model == model)
            .map(|m| m.field.as_str())
            .collect()
    }

    pub fn accepts_webhook(&self, name: &str) -> bool {
        self.webhooks.iter().any(|w| w == name)
    }

    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self == &Features::default()
    }

    /// Names are matched by the host and shown to operators: bounded,
    /// inert, and task and webhook names usable in a URL and a job
    /// function.
    pub fn validate(&self) -> Result<(), String> {
        let lists: [(&str, Vec<&str>); 5] = [
            (
                "list-ids",
                self.list_ids.iter().map(String::as_str).collect(),
            ),
            ("find", self.find.iter().map(String::as_str).collect()),
            (
                "match-keys",
                self.match_keys
                    .iter()
                    .flat_map(|m| [m.model.as_str(), m.field.as_str()])
                    .collect(),
            ),
            (
                "webhooks",
                self.webhooks.iter().map(String::as_str).collect(),
            ),
            (
                "tasks",
                self.tasks.iter().map(|t| t.name.as_str()).collect(),
            ),
        ];
        for (field, names) in lists {
            if names.len() > MAX_DECLARED {
                return Err(format!(
                    "features field {field} has {} entries; at most {MAX_DECLARED}",
                    names.len()
                ));
            }
            for name in names {
                let slug = matches!(field, "webhooks" | "tasks");
                if slug && !is_slug(name) {
                    return Err(format!(
                        "features field {field}: {:?} is not a name of lowercase letters, digits and '-' (1 to 64 bytes)",
                        crate::text::truncate(&crate::text::clean(name), 80)
                    ));
                }
                if name.is_empty() || name.len() > 256 || name.chars().any(crate::text::is_hazard) {
                    return Err(format!(
                        "features field {field}: {:?} is empty, over 256 bytes or holds control or bidi characters",
                        crate::text::truncate(&crate::text::clean(name), 80)
                    ));
                }
            }
        }
        if let Some(m) = self
            .match_keys
            .iter()
            .find(|m| m.field.len() > MAX_KEY_NAME)
        {
            return Err(format!(
                "features field match-keys: field {:?} is over {MAX_KEY_NAME} bytes",
                crate::text::truncate(&crate::text::clean(&m.field), 80)
            ));
        }
        for t in &self.tasks {
            if t.description.len() > 1024 || t.description.chars().any(crate::text::is_hazard) {
                return Err(format!(
                    "features field tasks: the description of {} is over 1,024 bytes or holds control or bidi characters",
                    t.name
                ));
            }
        }
        Ok(())
    }
}

/// `[a-z0-9-]{1,64}`, not starting with `-`.
pub fn is_slug(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A natural key of a record: two records of a model with equal keys are
/// the same record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MatchKey {
    pub name: String,
    pub value: String,
}

impl MatchKey {
    /// The value as stored and looked up: itself, or `sha256:<hex>` when
    /// longer than [`MAX_KEY_VALUE`].
    pub fn stored_value(&self) -> String {
        if self.value.len() <= MAX_KEY_VALUE {
            self.value.clone()
        } else {
            use sha2::{Digest, Sha256};
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(self.value.as_bytes()))
            )
        }
    }

    /// `name=value`, value cut and cleaned, for messages.
    pub fn label(&self) -> String {
        format!(
            "{}={}",
            crate::text::clean(&self.name),
            crate::text::truncate(&crate::text::clean(&self.value), 80)
        )
    }
}

/// The natural keys of local data `data` for match fields `fields`: each
/// field whose value is a non-empty string (or a number), trimmed and
/// lowercased so that `Ada@Example.com ` and `ada@example.com` are one
/// key. A field missing, null, empty or of another type gives no key.
pub fn keys_of(
    fields: &[&str],
    data: &serde_json::Map<String, serde_json::Value>,
) -> Vec<MatchKey> {
    let mut keys: Vec<MatchKey> = fields
        .iter()
        .filter_map(|f| {
            let value = match data.get(*f)? {
                serde_json::Value::String(s) => s.trim().to_lowercase(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (!value.is_empty()).then(|| MatchKey {
                name: f.to_string(),
                value,
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The value of match field `field` in `data` as the record holds it
/// (trimmed, not lowercased): what a backend is searched for, since it
/// compares values its own way (a SKU case-sensitively, say).
pub fn raw_value(data: &serde_json::Map<String, serde_json::Value>, field: &str) -> Option<String> {
    match data.get(field)? {
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One page of a backend's ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdPage {
    pub ids: Vec<String>,
    pub next_cursor: Option<String>,
}

/// A verified webhook call, as handed to the connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, value: &str) -> MatchKey {
        MatchKey {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn keys_are_read_from_the_match_fields_normalised() {
        let data = serde_json::json!({
            "email": "  Ada@Example.COM ", "sku": 42, "name": "", "tags": ["x"], "note": null
        });
        let data = data.as_object().unwrap();
        let keys = keys_of(&["email", "sku", "name", "tags", "note", "missing"], data);
        assert_eq!(
            keys,
            vec![key("email", "ada@example.com"), key("sku", "42")]
        );
        let long = key("note", &"x".repeat(5000));
        assert!(long.stored_value().starts_with("sha256:"));
        assert_eq!(key("sku", "a").stored_value(), "a");
    }

    #[test]
    fn declared_names_are_slugs_and_bounded() {
        let mut f = Features {
            webhooks: vec!["changes".into()],
            tasks: vec![TaskSpec {
                name: "export-tracking".into(),
                description: "Send a tracking number".into(),
            }],
            ..Features::default()
        };
        assert!(f.validate().is_ok());
        f.webhooks = vec!["../admin".into()];
        assert!(f.validate().unwrap_err().contains("webhooks"));
        f.webhooks = vec![];
        f.tasks[0].name = "Export Tracking".into();
        assert!(f.validate().unwrap_err().contains("tasks"));
        f.tasks.clear();
        f.list_ids = vec!["prod\u{202e}uct".into()];
        assert!(f.validate().unwrap_err().contains("bidi"));
    }
}
