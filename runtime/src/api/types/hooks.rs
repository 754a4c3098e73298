//! Webhook intake (`POST /hooks/{backend}/{name}`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::queue::job::Enqueued;

/// What a backend sends: any body its connector reads (usually JSON),
/// signed with the backend's webhook secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object)]
pub struct WebhookPayload(pub serde_json::Value);

/// The call was verified and handed to the connector.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookTaken {
    pub backend: String,
    pub webhook: String,
    /// The jobs the connector asked for (none: it ignored the call).
    pub jobs: Vec<Enqueued>,
}
