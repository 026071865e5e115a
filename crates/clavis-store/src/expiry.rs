//! Records of expiry warnings: webhook subscriptions (their signing secret
//! only sealed), the notices already given (one per credential and
//! threshold, the idempotence of the scheduler) and webhook deliveries (the
//! delivery log and retry queue).

use time::OffsetDateTime;
use uuid::Uuid;

/// A tenant's webhook for secret expiry warnings.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `https://…`, or `http://` to a loopback address.
    pub url: String,
    pub display_name: String,
    /// Days before a secret's end at which to warn; distinct, largest first.
    pub threshold_days: Vec<u32>,
    /// The signing secret, AEAD ciphertext under the key-encryption key.
    pub sealed_secret: Vec<u8>,
    /// Which key-encryption key sealed it.
    pub kek_id: String,
    pub created_at: OffsetDateTime,
    /// When it was paused (`None`: active). A paused subscription gets no
    /// deliveries: warnings due meanwhile are recorded unsent, and pending
    /// deliveries wait until it is resumed.
    pub paused_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for WebhookSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSubscription")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("url", &self.url)
            .field("display_name", &self.display_name)
            .field("threshold_days", &self.threshold_days)
            .field("sealed_secret", &"[redacted]")
            .field("kek_id", &self.kek_id)
            .field("created_at", &self.created_at)
            .field("paused_at", &self.paused_at)
            .finish()
    }
}

/// A password credential whose end is near or past, with what a warning
/// names about its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCredential {
    pub tenant_id: Uuid,
    /// The application's object id.
    pub application_id: Uuid,
    /// The application's client id.
    pub app_id: Uuid,
    pub application_name: String,
    pub key_id: Uuid,
    pub display_name: String,
    pub hint: String,
    /// When it started to be valid: a warning threshold at least as long
    /// as its whole life is not meant for it.
    pub start_at: OffsetDateTime,
    pub end_at: OffsetDateTime,
    /// Thresholds (in days) already announced for it, by any node: a run
    /// skips them without a write.
    pub noticed: Vec<u32>,
}

/// When one password credential ends: what `/metrics` exports for every
/// secret (ids only, never a value or a hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialEnd {
    pub tenant_id: Uuid,
    /// The application's client id.
    pub app_id: Uuid,
    pub key_id: Uuid,
    pub end_at: OffsetDateTime,
}

/// What a notice announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// The credential ends within this many days.
    Threshold(u32),
    /// The credential has ended.
    Expired,
}

impl NoticeKind {
    /// As stored: the threshold in days, 0 for expired.
    pub fn days(self) -> u32 {
        match self {
            NoticeKind::Threshold(days) => days,
            NoticeKind::Expired => 0,
        }
    }
}

/// "This threshold of this credential was announced." The store keeps one
/// per (tenant, application, key id, kind): the first writer wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryNotice {
    pub tenant_id: Uuid,
    pub application_id: Uuid,
    pub key_id: Uuid,
    pub kind: NoticeKind,
    pub at: OffsetDateTime,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One webhook POST to one subscription, and how its attempts went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    /// `secret.expiring` or `secret.expired`.
    pub event_type: String,
    pub key_id: Uuid,
    /// The JSON body sent, byte for byte (no secret in it).
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// HTTP status of the last attempt, if it got one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, when it got no status (no secret in it).
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the next attempt is due; `None` once delivered or failed.
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// A delivery taken for sending, with where to send it and the sealed key
/// to sign it with.
#[derive(Clone)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub sealed_secret: Vec<u8>,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("delivery", &self.delivery)
            .field("url", &self.url)
            .field("sealed_secret", &"[redacted]")
            .finish()
    }
}

/// How one attempt ended, to record on its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The attempt's number (1 for the first).
    pub attempt: u32,
    /// `Delivered`, `Failed` (no more attempts) or `Pending` (retry at `next_attempt_at`).
    pub status: DeliveryStatus,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub at: OffsetDateTime,
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// Which deliveries a read returns (newest first).
#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    /// Keyset pagination: older than this `(created_at, id)`.
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// Thresholds as stored: `30,7,1`.
pub(crate) fn thresholds_text(days: &[u32]) -> String {
    days.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored thresholds; `None` if the text is malformed.
pub(crate) fn parse_thresholds(text: &str) -> Option<Vec<u32>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|d| d.parse().ok()).collect()
}
