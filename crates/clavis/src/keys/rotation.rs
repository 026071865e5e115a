//! Scheduled signing-key rotation: every few minutes each node asks whether
//! a tenant's current key is near its rotation age and, if so, publishes its
//! successor a pre-publication period before it signs (one node wins the
//! compare-and-set; the others see its key through the change feed).

use std::time::Duration;

use crate::app::AppState;

/// How often the schedule is looked at. Far shorter than the
/// pre-publication period, so a successor is never late by much.
const CHECK_EVERY: Duration = Duration::from_secs(600);

/// Publish every tenant's due successor key now; the kids made. Tests call
/// this after moving the manual clock.
pub async fn rotate_due_keys(state: &AppState) -> Vec<String> {
    let tenants = match state.directory.store().tenants().await {
        Ok(tenants) => tenants,
        Err(e) => {
            tracing::warn!(error = %e, "could not list tenants for key rotation; will retry");
            return Vec::new();
        }
    };
    let mut made = Vec::new();
    for tenant in tenants {
        match state.keyring.rotate_due(&tenant).await {
            Ok(Some(kid)) => {
                tracing::info!(tenant = %tenant.id, %kid, "published the next signing key");
                made.push(kid);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, error = %e, "scheduled key rotation failed; will retry")
            }
        }
    }
    made
}

/// Run [`rotate_due_keys`] every [`CHECK_EVERY`] until the server is gone
/// (started by `App::run` when rotation is scheduled).
pub async fn keep_rotating(state: std::sync::Weak<AppState>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        rotate_due_keys(&state).await;
    }
}
