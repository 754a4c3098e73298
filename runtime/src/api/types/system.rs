//! Health, status, reload and the node registry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /health`: the process answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    pub node: String,
    pub version: String,
}

/// `GET /api/v1/status`: what the queue holds, read in constant time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub paused: Paused,
    /// Event deliveries that failed for good (`GET /api/v1/events/dead`).
    pub dead_events: u64,
    pub node: String,
    pub version: String,
    pub uptime_s: u64,
    /// Jobs by state (`pending`, `started`, `failed`, …).
    pub jobs: BTreeMap<String, i64>,
    /// The server's clock, Unix milliseconds.
    pub now: i64,
}

/// What operators paused, on every node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Paused {
    pub backends: Vec<String>,
    pub channels: Vec<String>,
}

/// `POST /api/v1/reload`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReloadAnswer {
    pub reloaded: bool,
    /// What changed, for the operator.
    pub summary: String,
}

/// A node of the database's node registry, and whether it is alive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: crate::storage::NodeInfo,
    pub status: NodeStatus,
}

/// `alive` while it beats, `lost` when its heartbeat is older than three
/// beats, `stopped` after a clean stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Alive,
    Lost,
    Stopped,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Alive => "alive",
            NodeStatus::Lost => "lost",
            NodeStatus::Stopped => "stopped",
        }
    }
}
