//! The nodes sharing a store, and the installation's key-encryption key.
//! Every running server writes a heartbeat row naming the key-encryption
//! keys it holds (ids only, never key material), so that a node about to
//! rewrap under a key can first check that every live node holds it, and
//! `clavis store copy` can tell that a server still uses its source.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How often a running server rewrites its row.
pub const HEARTBEAT_EVERY: Duration = Duration::seconds(5);
/// A node whose row was written within this window is live (six missed
/// heartbeats: a slow database or a short pause does not make a node look
/// gone; clocks of nodes are assumed to agree within a few seconds).
pub const LIVE_WITHIN: Duration = Duration::seconds(30);
/// Rows of nodes not seen for this long are deleted by the others.
pub const FORGET_AFTER: Duration = Duration::hours(1);

/// One running (or recently seen) server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Random per process start.
    pub node_id: Uuid,
    /// The machine's host name, for people.
    pub host: String,
    /// The address the node listens on.
    pub listen: String,
    pub public_url: String,
    /// The key-encryption keys the node holds, in its configured order.
    pub kek_ids: Vec<String>,
    /// The key it seals new records under.
    pub sealing_kek_id: String,
    pub started_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

impl NodeRecord {
    /// Whether the node wrote its row within [`LIVE_WITHIN`] of `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now - self.last_seen_at <= LIVE_WITHIN
    }

    /// Whether the node holds the key-encryption key `kek_id`.
    pub fn holds(&self, kek_id: &str) -> bool {
        self.kek_ids.iter().any(|id| id == kek_id)
    }
}

/// `kek_ids` as stored: a JSON array of strings.
pub(crate) fn kek_ids_text(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// `kek_ids` back from its column.
pub(crate) fn kek_ids_parse(text: &str) -> crate::StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| {
        crate::StoreError::Internal(Box::new(std::io::Error::other(
            "column kek_ids of cluster_nodes holds no JSON array of key ids",
        )))
    })
}
