//! Shares the throttle of failed client authentication between nodes
//! through the store, once a second: adds the failures this node counted
//! since the last round (failures only: a success never touches the
//! database or the throttle), and reads back the totals of every node for
//! keys that reached a quarter of a limit. Limits are thus shared within
//! about a second. On SQLite (one node) the same rounds run; they only keep
//! the table tidy.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::app::AppState;

const EVERY: Duration = Duration::from_secs(1);

/// Run rounds until the server's state is gone.
pub async fn follow(state: Weak<AppState>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        if !state.throttle.enabled() {
            return;
        }
        round(&state).await;
    }
}

/// One round (public so tests can run one without waiting).
pub async fn round(state: &Arc<AppState>) {
    let throttle = &state.throttle;
    let store = state.directory.store();
    let now = state.clock.now();
    let minute = now.unix_timestamp().div_euclid(60);
    let pending = throttle.take_pending(now);
    if !pending.is_empty() {
        if let Err(e) = store.add_auth_failures(&pending, minute - 2).await {
            tracing::warn!(error = %e, "throttle: cannot share failure counts; retrying");
            throttle.restore_pending(&pending, now);
        }
    }
    match store
        .auth_failures(minute - 1, throttle.share_threshold())
        .await
    {
        Ok(totals) => throttle.absorb(&totals, now),
        Err(e) => tracing::warn!(error = %e, "throttle: cannot read shared failure counts"),
    }
}
