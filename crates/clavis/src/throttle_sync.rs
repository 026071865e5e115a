//! Shares the token endpoint's throttle between nodes through the store,
//! once a second: adds the failures this node counted since the last round
//! (failures only: a success never touches the database), reads back the
//! totals of every node for keys that reached a quarter of a limit, and
//! for applications over their limit loads the addresses that got a token
//! in the last ten minutes from the (shared) sign-in log, so the real
//! holder of the secret stays "known good" on every node. Limits are thus
//! shared within about a second (plus the sign-in log's one second for
//! known-good addresses). On SQLite (one node) the same rounds run; they
//! only keep the table tidy.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use clavis_store::{AuditResult, SignInQuery};
use uuid::Uuid;

use crate::app::AppState;
use crate::oauth::throttle::KNOWN_GOOD_FOR;

const EVERY: Duration = Duration::from_secs(1);
/// How often one application's known-good addresses are reloaded.
const RELOAD_GOOD_EVERY: i64 = 10;
/// Most applications whose known-good addresses are loaded per round.
const GOOD_LOADS_PER_ROUND: usize = 20;

/// Run rounds until the server's state is gone.
pub async fn follow(state: Weak<AppState>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loaded: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        if !state.throttle.enabled() {
            return;
        }
        round(&state, &mut loaded).await;
    }
}

/// One round (public so tests can run one without waiting).
pub async fn round(state: &Arc<AppState>, loaded: &mut HashMap<(Uuid, Uuid), i64>) {
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
    let now_s = now.unix_timestamp();
    loaded.retain(|_, at| now_s - *at < RELOAD_GOOD_EVERY);
    let due: Vec<_> = throttle
        .throttled_apps(now)
        .into_iter()
        .filter(|k| !loaded.contains_key(k))
        .take(GOOD_LOADS_PER_ROUND)
        .collect();
    for (tenant_id, app_id) in due {
        loaded.insert((tenant_id, app_id), now_s);
        let query = SignInQuery {
            tenant_id,
            app_id: Some(app_id),
            key_id: None,
            result: Some(AuditResult::Success),
            since: Some(now - time::Duration::seconds(KNOWN_GOOD_FOR)),
            until: None,
            before: None,
            limit: 0,
        };
        match store.sign_in_counts(&query).await {
            Ok(counts) => {
                let seen: Vec<_> = counts
                    .iter()
                    .filter_map(|c| {
                        Some((
                            c.client_ip.as_deref()?.parse().ok()?,
                            c.last.unix_timestamp(),
                        ))
                    })
                    .collect();
                throttle.remember_good(tenant_id, app_id, &seen, now_s);
            }
            Err(e) => tracing::warn!(error = %e, "throttle: cannot read known-good addresses"),
        }
    }
}
