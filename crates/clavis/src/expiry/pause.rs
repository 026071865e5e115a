//! Pausing every webhook of an installation at once, audited: what
//! `clavis restore` does (and `clavis store copy --pause-webhooks`), so a
//! second copy of an installation does not send the expiry warnings that
//! the original sends too. An operator resumes them (`clavis webhook resume
//! --all`, or `PATCH /v1.0/webhooks/{id} {"paused": false}`) once the copy
//! is the one in service.

use clavis_store::{Mutation, Store, StoreError};
use time::OffsetDateTime;

use crate::audit::{Action, Actor};

/// Pause every active webhook of every tenant of `store` at `now`; how
/// many were paused.
pub async fn pause_all(store: &dyn Store, now: OffsetDateTime) -> Result<usize, StoreError> {
    let mut paused = 0;
    for tenant in store.tenants().await? {
        let active: Vec<_> = store
            .webhooks(tenant.id)
            .await?
            .into_iter()
            .filter(|w| w.paused_at.is_none())
            .collect();
        if active.is_empty() {
            continue;
        }
        let mutations: Vec<Mutation> = active
            .iter()
            .map(|w| Mutation::SetWebhookPaused {
                tenant_id: tenant.id,
                id: w.id,
                paused_at: Some(now),
            })
            .collect();
        let events: Vec<_> = active
            .iter()
            .map(|w| {
                Actor::system().succeeded(
                    tenant.id,
                    now,
                    Action {
                        activity: crate::graph::webhooks::pause_activity(true),
                        category: "ApplicationManagement",
                        operation: "Update",
                        target_type: "Webhook",
                        target_id: w.id.to_string(),
                        target_name: w.display_name.clone(),
                        target_key_id: None,
                    },
                )
            })
            .collect();
        store.commit(&mutations, &events).await?;
        paused += active.len();
    }
    Ok(paused)
}
