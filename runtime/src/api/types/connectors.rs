//! Installed connectors and component uploads.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// An installed connector version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectorView {
    /// `sha256:` and the component's hex digest: its identity.
    pub digest: String,
    pub name: String,
    pub version: String,
    pub backend_kind: String,
    /// The semver range of backend versions it serves.
    pub backend_versions: String,
    /// Whether new calls of its connector use this version.
    pub active: bool,
    /// Unix milliseconds.
    pub installed_at: i64,
    /// The manifest its `describe` returned (see `wit/connector.wit`).
    #[schema(value_type = Object)]
    pub manifest: Value,
    /// What its manifest requests: models with operations, events, hosts,
    /// secrets.
    pub requests: Vec<String>,
    /// What it requests beyond the active version of its connector
    /// (activating it needs `approve=true`).
    pub beyond_active: Vec<String>,
}

/// The body of `POST /api/v1/connectors` and `POST /api/v1/inspect`: a
/// WebAssembly component's bytes (`Content-Type: application/wasm`).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Component(pub Vec<u8>);

/// Query of `POST /api/v1/connectors`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InstallQuery {
    /// Make it the active version (default true).
    pub activate: Option<bool>,
    /// Refuse the upload unless its sha256 is this (hex, with or without
    /// `sha256:`).
    pub sha256: Option<String>,
    /// Approve what it requests beyond the active version (see
    /// `beyond_active`); without it such a version is installed inactive
    /// and the answer is 409 `needs_approval`.
    pub approve: Option<bool>,
}

/// Query of `POST /api/v1/connectors/{digest}/activate`.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivateQuery {
    /// Approve what the version requests beyond the active one.
    pub approve: Option<bool>,
}

/// Body of `POST /api/v1/connectors/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The connector whose previous version becomes active again.
    pub name: String,
}

/// What `POST /api/v1/inspect` found in an upload (installs nothing).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Inspected {
    pub file: String,
    pub digest: String,
    pub size_bytes: u64,
    /// The WIT world it targets.
    pub world: String,
    pub compile_ms: u64,
    pub compile_cached: bool,
    #[schema(value_type = Object)]
    pub manifest: Value,
}
