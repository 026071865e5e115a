//! This server as one node of an installation. It writes a heartbeat row
//! (which key-encryption keys it holds, which one it seals under) when it
//! starts and every few seconds, and deletes it when it shuts down cleanly;
//! each heartbeat also follows the installation's key-encryption key, so
//! every node seals new records under a key every node holds. Before a
//! rewrap, the rows tell which live nodes lack the target key.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clavis_store::nodes::{FORGET_AFTER, HEARTBEAT_EVERY, LIVE_WITHIN};
use clavis_store::{NodeRecord, Store, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::keys::KeyProvider;

/// Who this node is, for its row and for people reading the list.
#[derive(Debug)]
pub struct Node {
    /// Random per process start.
    pub id: Uuid,
    host: String,
    listen: String,
    public_url: String,
    started_at: OffsetDateTime,
    /// The installation's key last followed (to log changes once).
    followed: Mutex<Option<String>>,
}

impl Node {
    pub fn new(listen: SocketAddr, public_url: &str, now: OffsetDateTime) -> Self {
        Self {
            id: Uuid::new_v4(),
            host: host_name(),
            listen: listen.to_string(),
            public_url: public_url.to_owned(),
            started_at: now,
            followed: Mutex::new(None),
        }
    }

    /// This node's row as of `now`.
    pub fn record(&self, provider: &KeyProvider, now: OffsetDateTime) -> NodeRecord {
        NodeRecord {
            node_id: self.id,
            host: self.host.clone(),
            listen: self.listen.clone(),
            public_url: self.public_url.clone(),
            kek_ids: provider.kek_ids(),
            sealing_kek_id: provider.active_kek_id(),
            started_at: self.started_at,
            last_seen_at: now,
        }
    }

    /// Follow the installation's key-encryption key (choosing this node's
    /// first key if the installation has none yet), then write the row.
    pub async fn beat(
        &self,
        store: &dyn Store,
        provider: &KeyProvider,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let chosen = store
            .installation_kek_or_insert(&provider.configured_active_kek_id(), now)
            .await?;
        let held = provider.follow_installation_kek(&chosen);
        self.log_if_changed(&chosen, held, provider);
        store
            .record_node(&self.record(provider, now), now - FORGET_AFTER)
            .await
    }
}

impl Node {
    /// Say once (per change) which key this node seals under.
    fn log_if_changed(&self, chosen: &str, held: bool, provider: &KeyProvider) {
        let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
        if followed.as_deref() == Some(chosen) {
            return;
        }
        if held {
            tracing::info!(kek_id = %chosen, "sealing new records under the installation's key-encryption key");
        } else {
            tracing::error!(kek_id = %chosen, sealing_kek_id = %provider.active_kek_id(),
                "this node does not hold the installation's key-encryption key: it cannot open records sealed under it and seals new ones under its own first key; add the key to kek.key (any line) or CLAVIS_KEK_PREVIOUS and restart");
        }
        *followed = Some(chosen.to_owned());
    }
}

/// Heartbeats every [`HEARTBEAT_EVERY`] until the task is aborted (the
/// server keeps it in its task set and aborts it at shutdown).
pub async fn keep_beating(state: Arc<AppState>) {
    let every = std::time::Duration::try_from(HEARTBEAT_EVERY).unwrap_or_default();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = state.directory.store();
        if let Err(e) = state
            .node
            .beat(store.as_ref(), &state.key_provider, state.clock.now())
            .await
        {
            tracing::warn!(error = %e, "node heartbeat failed; retrying");
        }
    }
}

/// The other nodes that were live at `now` (seen within [`LIVE_WITHIN`]).
pub fn live_others(nodes: &[NodeRecord], me: Uuid, now: OffsetDateTime) -> Vec<&NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.node_id != me && n.is_live(now))
        .collect()
}

/// One node for people: `node 1b2c3d4e (host web-2, listening on
/// 10.0.0.2:8443, last seen 3 s ago)`.
pub fn describe(node: &NodeRecord, now: OffsetDateTime) -> String {
    let ago = (now - node.last_seen_at).whole_seconds().max(0);
    format!(
        "node {} (host {}, listening on {}, last seen {ago} s ago)",
        &node.node_id.simple().to_string()[..8],
        node.host,
        node.listen
    )
}

/// The live-window, for messages.
pub fn live_window_seconds() -> i64 {
    LIVE_WITHIN.whole_seconds()
}

/// The machine's host name (Linux), or the `HOSTNAME` variable, or `unknown`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seen_ago: i64, now: OffsetDateTime) -> NodeRecord {
        NodeRecord {
            node_id: Uuid::new_v4(),
            host: "web-2".into(),
            listen: "10.0.0.2:8443".into(),
            public_url: "https://id.example".into(),
            kek_ids: vec!["kek-a".into()],
            sealing_kek_id: "kek-a".into(),
            started_at: now - time::Duration::hours(1),
            last_seen_at: now - time::Duration::seconds(seen_ago),
        }
    }

    #[test]
    fn live_others_leaves_out_this_node_and_stale_rows() {
        let now = OffsetDateTime::now_utc();
        let (me, fresh, edge, stale) = (row(0, now), row(3, now), row(30, now), row(31, now));
        let all = [me.clone(), fresh.clone(), edge.clone(), stale];
        let live: Vec<Uuid> = live_others(&all, me.node_id, now)
            .iter()
            .map(|n| n.node_id)
            .collect();
        assert_eq!(live, [fresh.node_id, edge.node_id]);
        let text = describe(&fresh, now);
        assert!(
            text.contains("host web-2")
                && text.contains("10.0.0.2:8443")
                && text.contains("3 s ago"),
            "{text}"
        );
    }
}
