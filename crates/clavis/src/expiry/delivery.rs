//! Sending one webhook attempt: sign the stored body, POST it (10 s
//! timeout, no redirects), and decide what happens next — delivered on any
//! 2xx, otherwise a retry after exponential backoff (1, 2, 4 … minutes,
//! capped at an hour) until the eighth attempt, then failed.

use std::time::Duration as StdDuration;

use clavis_store::{DeliveryAttempt, DeliveryStatus, DueDelivery};
use time::{Duration, OffsetDateTime};

use super::egress::{Egress, Failure};
use super::signature::WebhookSecret;
use crate::keys::KeyProvider;

/// Time allowed for one attempt (connect, send, answer).
pub const TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Attempts before a delivery is marked failed.
pub const MAX_ATTEMPTS: u32 = 8;
/// Wait before the first retry; doubles after each failure.
pub const FIRST_BACKOFF: Duration = Duration::minutes(1);
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::hours(1);

/// The AEAD context a subscription's signing secret is sealed under.
pub fn seal_context(subscription: uuid::Uuid) -> String {
    crate::keys::provider::webhook_secret_context(&subscription.to_string())
}

/// The HTTP client for webhooks: no redirects (a receiver cannot bounce
/// the signed body elsewhere), 10 s per attempt, and internal targets only
/// when `allow_internal` (see [`super::egress`]).
pub fn client(allow_internal: bool) -> Egress {
    Egress::new(TIMEOUT, allow_internal)
}

/// Wait before the attempt after `failed` failed attempts.
pub fn backoff(failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(10);
    (FIRST_BACKOFF * 2i32.pow(doublings)).min(MAX_BACKOFF)
}

/// Make one attempt of `due` at `now`, and say how it ended.
pub async fn attempt(
    http: &Egress,
    kek: &KeyProvider,
    due: &DueDelivery,
    now: OffsetDateTime,
) -> DeliveryAttempt {
    let attempt = due.delivery.attempts + 1;
    let sent = send(http, kek, due, now).await;
    let (http_status, error) = match sent {
        Ok(status) if (200..300).contains(&status) => (Some(status), None),
        Ok(status) => (Some(status), Some(format!("HTTP {status}"))),
        Err(why) => {
            tracing::info!(delivery = %due.delivery.id, attempt, detail = %why.detail, "webhook delivery got no answer");
            (None, Some(why.shown.to_owned()))
        }
    };
    let delivered = error.is_none();
    let (status, next_attempt_at) = if delivered {
        (DeliveryStatus::Delivered, None)
    } else if attempt >= MAX_ATTEMPTS {
        (DeliveryStatus::Failed, None)
    } else {
        (DeliveryStatus::Pending, Some(now + backoff(attempt)))
    };
    DeliveryAttempt {
        attempt,
        status,
        http_status,
        error,
        at: now,
        next_attempt_at,
    }
}

/// POST the body; the HTTP status, or why there is none (no secret, no URL
/// and no network details in the text: a webhook URL may carry a token, and
/// the delivery log is read through the API).
async fn send(
    http: &Egress,
    kek: &KeyProvider,
    due: &DueDelivery,
    now: OffsetDateTime,
) -> Result<u16, Failure> {
    let d = &due.delivery;
    let secret = kek
        .open(&seal_context(d.subscription_id), &due.sealed_secret)
        .ok()
        .and_then(|bytes| WebhookSecret::from_bytes(&bytes))
        .ok_or_else(|| Failure {
            shown:
                "the signing secret cannot be opened: is this node using the database's kek.key?",
            detail: String::new(),
        })?;
    let signature = secret.header(now.unix_timestamp(), &d.payload);
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("clavis-signature", signature),
        ("clavis-delivery", d.id.to_string()),
    ];
    http.post(&due.url, &headers, d.payload.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_up_to_an_hour() {
        let waits: Vec<i64> = (1..MAX_ATTEMPTS)
            .map(|n| backoff(n).whole_minutes())
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60]);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }
}
