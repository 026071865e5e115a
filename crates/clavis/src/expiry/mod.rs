//! Secret expiry warnings: a scheduler that, every `--expiry-check-interval`,
//! finds credentials near or past their end, records each (credential,
//! threshold) notice once — across restarts and across nodes sharing a
//! PostgreSQL database — audits each expiry, and sends signed webhooks with
//! retries.
//!
//! # Layout
//! - [`plan`]: which notices a credential calls for, and the payload (pure).
//! - [`signature`]: signing secrets and the `Clavis-Signature` header.
//! - [`delivery`]: one HTTP attempt and the backoff that follows a failure.
//! - [`egress`]: where a delivery may connect (no internal addresses unless
//!   allowed) and the fixed texts a failed attempt shows.
//! - [`pause`]: pausing every webhook at once (`clavis restore`); a paused
//!   subscription's warnings are recorded with their notice, never sent.
//!
//! Everything goes through the store, so a restart or another node picks
//! up where this one left off: notices are rows with a uniqueness key (the
//! node whose insert wins enqueues the deliveries, in the same
//! transaction), and deliveries are rows with a `next_attempt_at`, leased
//! while a node sends them.

pub mod delivery;
pub mod egress;
pub mod pause;
pub mod plan;
pub mod signature;

use std::sync::{Arc, Weak};

use clavis_store::{
    DeliveryStatus, ExpiringCredential, ExpiryNotice, NoticeKind, Store, StoreError,
    WebhookDelivery, WebhookSubscription,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{Action, Actor};
use crate::clock::Clock;
use crate::keys::KeyProvider;

pub use signature::WebhookSecret;

/// Audit activity written once when a credential's end has passed.
pub const EXPIRED_ACTIVITY: &str = "Password credential expired";
/// How long a node holds the deliveries it took before another may retry
/// them (well beyond one attempt's timeout).
const LEASE: Duration = Duration::minutes(5);
/// Deliveries taken (and sent concurrently) at a time.
const BATCH: u32 = 50;

/// What one [`ExpiryNotifier::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Notices this node recorded (others found them recorded already).
    pub notices: usize,
    /// Deliveries enqueued with those notices.
    pub enqueued: usize,
    /// Attempts made, and how they ended.
    pub attempts: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// The expiry scheduler of one node.
#[derive(Debug)]
pub struct ExpiryNotifier {
    store: Arc<dyn Store>,
    kek: Arc<KeyProvider>,
    clock: Arc<dyn Clock>,
    http: egress::Egress,
    /// How often the background task runs; `None`: never (tests call
    /// [`run_once`](Self::run_once) themselves).
    pub check_interval: Option<std::time::Duration>,
}

impl ExpiryNotifier {
    pub fn new(
        store: Arc<dyn Store>,
        kek: Arc<KeyProvider>,
        clock: Arc<dyn Clock>,
        check_interval: Option<std::time::Duration>,
        allow_internal_targets: bool,
    ) -> Self {
        Self {
            store,
            kek,
            clock,
            http: delivery::client(allow_internal_targets),
            check_interval,
        }
    }

    /// Whether webhooks may point at internal addresses
    /// (`--allow-internal-webhooks`).
    pub fn allows_internal_targets(&self) -> bool {
        self.http.allows_internal()
    }

    /// Seal a new subscription's signing secret for the store: the
    /// ciphertext and the id of the key-encryption key that sealed it.
    pub fn seal(
        &self,
        subscription: Uuid,
        secret: &WebhookSecret,
    ) -> Result<crate::keys::envelope::Sealed, crate::keys::ProviderError> {
        self.kek.seal(
            &delivery::seal_context(subscription),
            secret.expose().as_bytes(),
        )
    }

    /// Send `sub` a signed `ping` now, once (no retries: whoever asked is
    /// waiting for the answer), and say how it went, as a delivery to
    /// record: `delivered` on a 2xx, else `failed` with the status or the
    /// reason (the egress rules' refusal included).
    pub async fn ping(&self, sub: &WebhookSubscription) -> WebhookDelivery {
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let delivery = WebhookDelivery {
            id,
            tenant_id: sub.tenant_id,
            subscription_id: sub.id,
            event_type: plan::PING.to_owned(),
            key_id: Uuid::nil(),
            payload: plan::ping_payload(id, sub.tenant_id, sub.id, now),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at: now,
            last_attempt_at: None,
            next_attempt_at: None,
        };
        let due = clavis_store::DueDelivery {
            delivery,
            url: sub.url.clone(),
            sealed_secret: sub.sealed_secret.clone(),
        };
        let outcome = delivery::attempt(&self.http, &self.kek, &due, now).await;
        let delivered = outcome.status == DeliveryStatus::Delivered;
        WebhookDelivery {
            status: if delivered {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Failed
            },
            attempts: outcome.attempt,
            last_status: outcome.http_status,
            last_error: outcome.error,
            last_attempt_at: Some(outcome.at),
            next_attempt_at: None,
            ..due.delivery
        }
    }

    /// One pass: record and enqueue what has become due, then send every
    /// delivery that is due (first attempts and retries). Safe to run at
    /// the same time on several nodes, or twice on one.
    pub async fn run_once(&self) -> Result<RunReport, StoreError> {
        let mut report = RunReport::default();
        self.notice(&mut report).await?;
        self.deliver(&mut report).await?;
        Ok(report)
    }

    async fn notice(&self, report: &mut RunReport) -> Result<(), StoreError> {
        let now = self.clock.now();
        for tenant in self.store.tenants().await? {
            let subs = self.store.webhooks(tenant.id).await?;
            let paused: Vec<Uuid> = subs
                .iter()
                .filter(|s| s.paused_at.is_some())
                .map(|s| s.id)
                .collect();
            let horizon = subs
                .iter()
                .flat_map(|s| s.threshold_days.iter().copied())
                .max()
                .unwrap_or(0);
            let until = now + Duration::days(i64::from(horizon));
            for cred in self.store.expiring_credentials(tenant.id, until).await? {
                let fresh = plan::notices(cred.start_at, cred.end_at, now, &subs)
                    .into_iter()
                    .filter(|p| !cred.noticed.contains(&p.kind.days()));
                for planned in fresh {
                    // A paused subscription's warning is recorded with the
                    // notice but never sent (it is not sent on resume either).
                    let deliveries: Vec<WebhookDelivery> = planned
                        .subscribers
                        .iter()
                        .filter(|&&sub| !paused.contains(&sub))
                        .map(|&sub| new_delivery(sub, planned.kind, &cred, now))
                        .collect();
                    let audit = match planned.kind {
                        NoticeKind::Expired => vec![expired_event(&cred, now)],
                        NoticeKind::Threshold(_) => Vec::new(),
                    };
                    let notice = ExpiryNotice {
                        tenant_id: cred.tenant_id,
                        application_id: cred.application_id,
                        key_id: cred.key_id,
                        kind: planned.kind,
                        at: now,
                    };
                    if self
                        .store
                        .record_expiry_notice(&notice, &deliveries, &audit)
                        .await?
                    {
                        tracing::info!(
                            tenant = %cred.tenant_id, app_id = %cred.app_id, key_id = %cred.key_id,
                            notice = ?planned.kind, deliveries = deliveries.len(),
                            "secret expiry notice"
                        );
                        report.notices += 1;
                        report.enqueued += deliveries.len();
                    }
                }
            }
        }
        Ok(())
    }

    async fn deliver(&self, report: &mut RunReport) -> Result<(), StoreError> {
        loop {
            let now = self.clock.now();
            let due = self
                .store
                .claim_webhook_deliveries(now, now + LEASE, BATCH)
                .await?;
            let taken = due.len();
            let mut attempts = tokio::task::JoinSet::new();
            for d in due {
                let (http, kek) = (self.http.clone(), self.kek.clone());
                attempts.spawn(async move {
                    let outcome = delivery::attempt(&http, &kek, &d, now).await;
                    (d.delivery.id, outcome)
                });
            }
            while let Some(joined) = attempts.join_next().await {
                let (id, outcome) = joined.map_err(|e| StoreError::Internal(Box::new(e)))?;
                report.attempts += 1;
                match outcome.status {
                    DeliveryStatus::Delivered => report.delivered += 1,
                    DeliveryStatus::Pending => report.retrying += 1,
                    DeliveryStatus::Failed => report.failed += 1,
                }
                if outcome.status != DeliveryStatus::Delivered {
                    tracing::warn!(
                        delivery = %id, attempt = outcome.attempt, status = ?outcome.http_status,
                        error = outcome.error.as_deref().unwrap_or(""),
                        "webhook delivery attempt failed"
                    );
                }
                self.store.finish_webhook_delivery(id, &outcome).await?;
            }
            if taken < BATCH as usize {
                return Ok(());
            }
        }
    }

    /// Run [`run_once`](Self::run_once) every `every` until the server's
    /// state is gone. Errors are logged; the next pass tries again.
    pub async fn follow(state: Weak<crate::app::AppState>, every: std::time::Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else {
                return;
            };
            match state.expiry.run_once().await {
                Ok(report) if report != RunReport::default() => {
                    tracing::debug!(?report, "expiry check")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expiry check failed; retrying next interval"),
            }
        }
    }
}

fn new_delivery(
    subscription: Uuid,
    kind: NoticeKind,
    cred: &ExpiringCredential,
    now: OffsetDateTime,
) -> WebhookDelivery {
    let id = Uuid::new_v4();
    WebhookDelivery {
        id,
        tenant_id: cred.tenant_id,
        subscription_id: subscription,
        event_type: plan::event_type(kind).to_owned(),
        key_id: cred.key_id,
        payload: plan::payload(id, kind, cred, now),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_status: None,
        last_error: None,
        created_at: now,
        last_attempt_at: None,
        next_attempt_at: Some(now),
    }
}

/// "Password credential expired", by Clavis itself, about the application.
fn expired_event(cred: &ExpiringCredential, now: OffsetDateTime) -> clavis_store::AuditEvent {
    Actor::system().succeeded(
        cred.tenant_id,
        now,
        Action {
            activity: EXPIRED_ACTIVITY,
            category: "ApplicationManagement",
            operation: "Update",
            target_type: "Application",
            target_id: cred.application_id.to_string(),
            target_name: cred.application_name.clone(),
            target_key_id: Some(cred.key_id),
        },
    )
}
