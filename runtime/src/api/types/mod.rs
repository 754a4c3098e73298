//! The admin API's wire types: every body, query and answer of `/api/v1`.
//! The handlers build them, `utoipa` reads them (with their doc comments)
//! to generate the OpenAPI document, and the CLI sends and reads the same
//! structs, so the three cannot drift apart. They hold no logic beyond
//! the conversions from stored domain types.

mod backends;
mod connectors;
mod data;
mod events;
mod hooks;
mod jobs;
mod system;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use backends::*;
pub use connectors::*;
pub use data::*;
pub use events::*;
pub use hooks::*;
pub use jobs::*;
pub use system::*;

/// A page of a list: pass `next` back as `cursor` for the following page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// Every failure's body, whatever refused the request (a handler, an
/// extractor, the router or the authentication).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What failed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine name, such as `not_found`, `bad_request`,
    /// `invalid_body`, `unauthorized`, `wrong_state` or `needs_approval`.
    pub code: String,
    /// For a person: what failed and what to do.
    pub message: String,
}
