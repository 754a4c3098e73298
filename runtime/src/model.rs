//! The contract's records as plain host types, independent of the generated
//! bindings (conversions live in `host::convert`). JSON fields are kept as
//! validated JSON text.

use serde::{Deserialize, Serialize};

/// Unix milliseconds of an RFC 3339 timestamp (the contract's time
/// format); the error names the text.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| {
            format!(
                "{:?} is not an RFC 3339 timestamp ({e})",
                crate::text::truncate(text, 64)
            )
        })
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn format_timestamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Whether two JSON values hold the same data: numbers compare by value,
/// so `23` and `23.0` are one stock level. Backends and connectors write
/// numbers as they like (Tryton answers every quantity as a float, the
/// shop an integer), and a representation alone must not count as a
/// change, or each import would write, emit an event and export the same
/// number back.
pub fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Why JSON text was refused, naming the host's limit where one was hit
/// (nesting depth, a number too large) rather than only "not valid".
pub fn json_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.contains("recursion limit exceeded") {
        format!("is nested deeper than 128 levels, the limit of JSON the host accepts ({text})")
    } else if text.contains("number out of range") {
        format!("has a number beyond what the host accepts (a 64-bit float; {text})")
    } else if text.contains("surrogate") || text.contains("hex escape") {
        format!(
            "has an invalid \\u escape, such as a UTF-16 surrogate without its pair, which is not text ({text})"
        )
    } else {
        format!("is not valid JSON: {text}")
    }
}

/// A record as the backend has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    pub external_id: String,
    pub updated_at: Option<String>,
    /// JSON text.
    pub data: String,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<RemoteRecord>,
    pub next_cursor: Option<String>,
}

/// A record as Junction stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecord {
    pub model: String,
    pub id: String,
    /// JSON text.
    pub data: String,
    pub version: u64,
    pub updated_at: String,
}

/// A record that must be imported before another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub model: String,
    pub external_id: String,
}

/// A local record that must be exported before another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDependency {
    pub model: String,
    pub local_id: String,
}

/// Work for the job queue, as a guest asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobRequest {
    pub function: String,
    /// JSON text of an object.
    pub args: String,
    pub priority: Option<u32>,
    pub eta: Option<String>,
    pub channel: Option<String>,
    pub identity_key: Option<String>,
    pub max_retries: Option<u32>,
    pub description: Option<String>,
}

/// Operations a manifest may declare on a model.
pub const OPERATIONS: [&str; 7] = [
    "search", "read", "create", "write", "delete", "import", "export",
];

/// The job functions of the synchronizer that a guest may enqueue (for
/// its own backend), named here because the jobs capability checks a
/// guest's request against them and must not depend on the synchronizer.
pub mod functions {
    pub const IMPORT_RECORD: &str = "junction.import-record";
    pub const IMPORT_BATCH: &str = "junction.import-batch";
    pub const EXPORT_RECORD: &str = "junction.export-record";
    pub const DELETE_REMOTE: &str = "junction.delete-remote";
    pub const DELETE_LOCAL: &str = "junction.delete-local";
}

/// Arguments larger than this are refused: jobs carry ids, not payloads.
pub const MAX_ARGS_BYTES: usize = 256 * 1024;

/// Descriptions are shown to operators on one line.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

impl JobRequest {
    /// Validate a job request (from a guest or from the API); the message
    /// names the field.
    pub fn validate(&self) -> Result<(), String> {
        let request = self;
        let f = &request.function;
        if f.is_empty()
            || f.len() > 128
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "job function {f:?} must be 1 to 128 letters, digits, '-', '_' or '.'"
            ));
        }
        if request.args.len() > MAX_ARGS_BYTES {
            return Err(format!(
                "job args are {} bytes, over the limit of {MAX_ARGS_BYTES}",
                request.args.len()
            ));
        }
        match serde_json::from_str::<serde_json::Value>(&request.args) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Err("job args must be a JSON object".to_string()),
            Err(e) => return Err(format!("job args are not JSON: {e}")),
        }
        if let Some(eta) = &request.eta {
            parse_timestamp(eta).map_err(|r| format!("job eta {r}"))?;
        }
        if let Some(d) = &request.description
            && d.len() > MAX_DESCRIPTION_BYTES
        {
            return Err(format!(
                "job description is {} bytes, over the limit of {MAX_DESCRIPTION_BYTES}",
                d.len()
            ));
        }
        if let Some(channel) = &request.channel
            && (channel.is_empty() || channel.split('.').any(str::is_empty))
        {
            return Err(format!(
                "job channel {:?} must be dot-separated names such as root.shop",
                crate::text::truncate(channel, 128)
            ));
        }
        Ok(())
    }
}

/// A local or custom event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    pub model: String,
    pub local_id: Option<String>,
    pub changed_fields: Vec<String>,
    /// JSON text.
    pub payload: String,
    pub origin_backend: Option<String>,
}

/// What a unit can do with a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSupport {
    pub name: String,
    /// Among `search`, `read`, `create`, `write`, `delete`, `import`, `export`.
    pub operations: Vec<String>,
}

/// What a component says it is, from its `describe` export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub backend_kind: String,
    pub backend_versions: String,
    pub models: Vec<ModelSupport>,
    pub events: Vec<String>,
    pub hosts: Vec<String>,
    /// JSON Schema, as JSON text.
    pub settings_schema: String,
    pub secrets: Vec<String>,
}

/// A manifest that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest field {field} is invalid: {reason}")]
pub struct ManifestError {
    pub field: String,
    pub reason: String,
}

impl Manifest {
    /// Check what the host relies on: semver version and range, the hosts
    /// as allowlist entries, the settings schema as a JSON object.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad = |field: &str, reason: String| ManifestError {
            field: field.to_string(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        // What a manifest requests is listed to operators: bounded counts.
        for (field, n, max) in [
            ("models", self.models.len(), 256),
            ("events", self.events.len(), 256),
            ("hosts", self.hosts.len(), 64),
            ("secrets", self.secrets.len(), 32),
        ] {
            if n > max {
                return Err(bad(field, format!("has {n} entries; at most {max}")));
            }
        }
        // Names are shown to operators and matched by the host: no control
        // or bidi characters, and a sane length.
        let mut names: Vec<(&str, &str)> = vec![
            ("name", &self.name),
            ("version", &self.version),
            ("backend-kind", &self.backend_kind),
            ("backend-versions", &self.backend_versions),
        ];
        names.extend(self.models.iter().map(|m| ("models", m.name.as_str())));
        names.extend(self.events.iter().map(|e| ("events", e.as_str())));
        names.extend(self.secrets.iter().map(|s| ("secrets", s.as_str())));
        for (field, value) in names {
            if value.len() > 256 {
                return Err(bad(
                    field,
                    format!("an entry is {} bytes; at most 256", value.len()),
                ));
            }
            if value.chars().any(crate::text::is_hazard) {
                return Err(bad(
                    field,
                    format!(
                        "{} contains control or bidi characters",
                        crate::text::clean(value)
                    ),
                ));
            }
        }
        for m in &self.models {
            if m.name.trim().is_empty() {
                return Err(bad("models", "a model has no name".into()));
            }
            if let Some(op) = m
                .operations
                .iter()
                .find(|o| !OPERATIONS.contains(&o.as_str()))
            {
                return Err(bad(
                    "models",
                    format!("{}: unknown operation {}", m.name, crate::text::clean(op)),
                ));
            }
        }
        if self.backend_kind.trim().is_empty() {
            return Err(bad("backend-kind", "must not be empty".into()));
        }
        semver::Version::parse(&self.version).map_err(|e| {
            bad(
                "version",
                format!("{:?} is not a semver version: {e}", self.version),
            )
        })?;
        semver::VersionReq::parse(&self.backend_versions).map_err(|e| {
            bad(
                "backend-versions",
                format!(
                    "{:?} is not a semver range such as \">=2.4, <3\": {e}",
                    self.backend_versions
                ),
            )
        })?;
        crate::allowlist::Allowlist::parse(&self.hosts).map_err(|e| bad("hosts", e.to_string()))?;
        match serde_json::from_str::<serde_json::Value>(&self.settings_schema) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Err(bad("settings-schema", "must be a JSON object".into())),
            Err(e) => return Err(bad("settings-schema", format!("is not JSON: {e}"))),
        }
        Ok(())
    }

    /// Whether this manifest's range covers a backend version.
    pub fn supports_backend_version(&self, version: &str) -> Result<bool, ManifestError> {
        let req = semver::VersionReq::parse(&self.backend_versions).map_err(|e| ManifestError {
            field: "backend-versions".into(),
            reason: e.to_string(),
        })?;
        let v = semver::Version::parse(version).map_err(|e| ManifestError {
            field: "backend version".into(),
            reason: format!("{version:?} is not a semver version: {e}"),
        })?;
        Ok(req.matches(&v))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn numbers_are_the_same_by_value_at_any_depth() {
        use serde_json::json;
        assert!(super::same_value(&json!(23), &json!(23.0)));
        assert!(super::same_value(
            &json!({"lines": [{"quantity": 2, "price": 12.5}]}),
            &json!({"lines": [{"quantity": 2.0, "price": 12.5}]})
        ));
        assert!(!super::same_value(&json!(23), &json!(23.5)));
        assert!(!super::same_value(&json!(23), &json!("23")));
        assert!(!super::same_value(
            &json!({"a": 1}),
            &json!({"a": 1, "b": 2})
        ));
        assert!(!super::same_value(&json!([1]), &json!([1, 1])));
    }

    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "c".into(),
            version: "1.0.0".into(),
            backend_kind: "k".into(),
            backend_versions: ">=1.0.0".into(),
            models: vec![ModelSupport {
                name: "product".into(),
                operations: vec!["read".into()],
            }],
            events: vec![],
            hosts: vec![],
            settings_schema: "{}".into(),
            secrets: vec![],
        }
    }

    #[test]
    fn pathological_json_names_the_limit() {
        let problem = |text: &str| {
            json_problem(&serde_json::from_str::<serde_json::Value>(text).unwrap_err())
        };
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(
            problem(&deep).contains("deeper than 128 levels"),
            "{}",
            problem(&deep)
        );
        let big = format!("1{}", "0".repeat(1_000_000));
        let err = serde_json::from_str::<serde_json::Value>(&big).unwrap_err();
        assert!(
            json_problem(&err).contains("number beyond"),
            "{}",
            json_problem(&err)
        );
        // Decoding the string finds it (the import's parse names it).
        let err = serde_json::from_str::<serde_json::Value>(r#""\ud800""#).unwrap_err();
        assert!(
            json_problem(&err).contains("surrogate"),
            "{}",
            json_problem(&err)
        );
        assert!(problem("{").contains("not valid JSON"));
    }

    #[test]
    fn names_operators_read_are_inert_and_bounded() {
        assert!(manifest().validate().is_ok());
        let mut m = manifest();
        m.name = "magento\n  try 1 GET https://x".into();
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("name") && e.contains("control or bidi"), "{e}");
        assert!(!e.contains('\n'), "the error shows the name inert: {e}");
        let mut m = manifest();
        m.models[0].operations = vec!["steal".into()];
        assert!(m.validate().unwrap_err().to_string().contains("steal"));
        let mut m = manifest();
        m.events = (0..300).map(|i| format!("record-written:m{i}")).collect();
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("events") && e.contains("at most 256"), "{e}");
    }
}
