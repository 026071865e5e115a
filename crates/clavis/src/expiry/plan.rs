//! What a credential near its end calls for, as plain data: which notices
//! to record and, for each, which subscriptions get a delivery; and the
//! JSON body of a delivery. No I/O.
//!
//! The rules:
//! - threshold `t` is meant only for credentials whose whole life (start to
//!   end) is longer than `t` days: a 7-day secret (an agent's healthy
//!   rotation) gets neither the 30-day nor the 7-day warning at creation,
//!   only the 1-day one if it is still there a day before its end;
//! - threshold `t` is crossed once `now >= end - t days`;
//! - every crossed threshold (of any of the tenant's subscriptions) is
//!   recorded as a notice, but a subscription is sent only its *most urgent*
//!   crossed threshold: a secret created 5 days before its end, or a server
//!   that was down for weeks, produces one `7` warning, not `30` and `7`;
//! - once the end has passed, the only delivery is `secret.expired`, to
//!   every subscription (thresholds crossed meanwhile are recorded unsent).

use clavis_store::{ExpiringCredential, NoticeKind, WebhookSubscription};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// One notice to record, and whom to tell if this node records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub kind: NoticeKind,
    /// Subscription ids that get a delivery.
    pub subscribers: Vec<Uuid>,
}

/// The notices a credential valid from `start` to `end` calls for at
/// `now`, given the tenant's subscriptions; the least urgent first.
pub fn notices(
    start: OffsetDateTime,
    end: OffsetDateTime,
    now: OffsetDateTime,
    subs: &[WebhookSubscription],
) -> Vec<Planned> {
    let crossed = |t: u32| {
        let t = Duration::days(i64::from(t));
        end - start > t && now >= end - t
    };
    let mut all: Vec<u32> = subs
        .iter()
        .flat_map(|s| s.threshold_days.iter().copied())
        .filter(|&t| crossed(t))
        .collect();
    all.sort_unstable_by(|a, b| b.cmp(a));
    all.dedup();
    let expired = now >= end;
    let mut out: Vec<Planned> = all
        .into_iter()
        .map(|t| Planned {
            kind: NoticeKind::Threshold(t),
            subscribers: if expired {
                Vec::new()
            } else {
                subs.iter()
                    .filter(|s| most_urgent_crossed(s, &crossed) == Some(t))
                    .map(|s| s.id)
                    .collect()
            },
        })
        .collect();
    if expired {
        out.push(Planned {
            kind: NoticeKind::Expired,
            subscribers: subs.iter().map(|s| s.id).collect(),
        });
    }
    out
}

fn most_urgent_crossed(sub: &WebhookSubscription, crossed: &impl Fn(u32) -> bool) -> Option<u32> {
    sub.threshold_days
        .iter()
        .copied()
        .filter(|&t| crossed(t))
        .min()
}

/// Event type of a test delivery (`POST /v1.0/webhooks/{id}/test`).
pub const PING: &str = "ping";

/// The JSON body of test delivery `id` to `webhook` (a `ping`: no
/// credential in it).
pub fn ping_payload(id: Uuid, tenant_id: Uuid, webhook: Uuid, now: OffsetDateTime) -> String {
    json!({
        "id": id,
        "type": PING,
        "tenantId": tenant_id,
        "webhookId": webhook,
        "occurredDateTime": crate::graph::shapes::rfc3339(now),
    })
    .to_string()
}

/// Event type of a notice's deliveries.
pub fn event_type(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Threshold(_) => "secret.expiring",
        NoticeKind::Expired => "secret.expired",
    }
}

/// The JSON body of delivery `id` (never a secret value). `daysRemaining`
/// is whole days left (0 once ended); `thresholdDays` is 0 for
/// `secret.expired`; `occurredDateTime` is when Clavis noticed.
pub fn payload(
    id: Uuid,
    kind: NoticeKind,
    cred: &ExpiringCredential,
    now: OffsetDateTime,
) -> String {
    let days_remaining = (cred.end_at - now).whole_days().max(0);
    json!({
        "id": id,
        "type": event_type(kind),
        "tenantId": cred.tenant_id,
        "applicationId": cred.application_id,
        "appId": cred.app_id,
        "displayName": cred.application_name,
        "keyId": cred.key_id,
        "credentialDisplayName": cred.display_name,
        "hint": cred.hint,
        "endDateTime": crate::graph::shapes::rfc3339(cred.end_at),
        "daysRemaining": days_remaining,
        "thresholdDays": kind.days(),
        "occurredDateTime": crate::graph::shapes::rfc3339(now),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sub(days: &[u32]) -> WebhookSubscription {
        WebhookSubscription {
            id: Uuid::new_v4(),
            tenant_id: Uuid::nil(),
            url: "https://x".into(),
            display_name: String::new(),
            threshold_days: days.to_vec(),
            sealed_secret: Vec::new(),
            kek_id: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            paused_at: None,
        }
    }

    const END: OffsetDateTime = datetime!(2030-01-31 00:00 UTC);
    /// A start long enough ago for every threshold to apply.
    const START: OffsetDateTime = datetime!(2029-01-01 00:00 UTC);

    fn at_days_left(days: i64) -> OffsetDateTime {
        END - Duration::days(days)
    }

    #[test]
    fn nothing_before_the_first_threshold() {
        let s = sub(&[30, 7, 1]);
        assert!(notices(START, END, at_days_left(31), &[s]).is_empty());
    }

    #[test]
    fn each_threshold_once_crossed_goes_to_its_subscribers() {
        let (a, b) = (sub(&[30, 7, 1]), sub(&[7]));
        let plan = notices(START, END, at_days_left(30), &[a.clone(), b.clone()]);
        assert_eq!(
            plan,
            vec![Planned {
                kind: NoticeKind::Threshold(30),
                subscribers: vec![a.id]
            }]
        );
        let plan = notices(START, END, at_days_left(6), &[a.clone(), b.clone()]);
        assert_eq!(
            plan,
            vec![
                Planned {
                    kind: NoticeKind::Threshold(30),
                    subscribers: vec![]
                },
                Planned {
                    kind: NoticeKind::Threshold(7),
                    subscribers: vec![a.id, b.id]
                },
            ]
        );
    }

    #[test]
    fn only_the_most_urgent_crossed_threshold_is_sent() {
        let a = sub(&[30, 7, 1]);
        let plan = notices(
            START,
            END,
            END - Duration::hours(12),
            std::slice::from_ref(&a),
        );
        let sent: Vec<_> = plan
            .iter()
            .filter(|p| !p.subscribers.is_empty())
            .map(|p| p.kind)
            .collect();
        assert_eq!(sent, vec![NoticeKind::Threshold(1)]);
        assert_eq!(plan.len(), 3, "30 and 7 are recorded unsent");
    }

    #[test]
    fn after_the_end_only_expired_is_sent_to_everyone() {
        let (a, b) = (sub(&[30]), sub(&[1]));
        let plan = notices(START, END, END, &[a.clone(), b.clone()]);
        assert_eq!(plan.last().unwrap().kind, NoticeKind::Expired);
        assert_eq!(plan.last().unwrap().subscribers, vec![a.id, b.id]);
        assert!(plan[..plan.len() - 1]
            .iter()
            .all(|p| p.subscribers.is_empty()));
        // With no subscription the expiry is still a notice (it is audited).
        assert_eq!(
            notices(START, END, END + Duration::days(3), &[]),
            vec![Planned {
                kind: NoticeKind::Expired,
                subscribers: vec![]
            }]
        );
    }

    #[test]
    fn thresholds_as_long_as_the_whole_life_are_not_meant_for_it() {
        let a = sub(&[30, 7, 1]);
        let subs = std::slice::from_ref(&a);
        // A 7-day secret, at creation: no 30-day and no 7-day warning.
        let start = END - Duration::days(7);
        assert!(notices(start, END, start, subs).is_empty());
        assert!(notices(start, END, at_days_left(2), subs).is_empty());
        // Still there a day before its end: the 1-day warning.
        assert_eq!(
            notices(start, END, at_days_left(1), subs),
            vec![Planned {
                kind: NoticeKind::Threshold(1),
                subscribers: vec![a.id]
            }]
        );
        // Its end is announced like any other.
        assert_eq!(
            notices(start, END, END, subs).last().unwrap().kind,
            NoticeKind::Expired
        );
        // A 31-day secret does get the 30-day warning, a day after it starts.
        let start = END - Duration::days(31);
        assert!(notices(start, END, start, subs).is_empty());
        assert_eq!(notices(start, END, at_days_left(30), subs).len(), 1);
    }

    #[test]
    fn payload_names_the_credential_never_a_secret() {
        let cred = ExpiringCredential {
            tenant_id: Uuid::new_v4(),
            application_id: Uuid::new_v4(),
            app_id: Uuid::new_v4(),
            application_name: "orders".into(),
            key_id: Uuid::new_v4(),
            display_name: "ci".into(),
            hint: "q7Z".into(),
            start_at: START,
            end_at: END,
            noticed: Vec::new(),
        };
        let id = Uuid::new_v4();
        let body: serde_json::Value = serde_json::from_str(&payload(
            id,
            NoticeKind::Threshold(7),
            &cred,
            at_days_left(7) + Duration::hours(1),
        ))
        .unwrap();
        assert_eq!(body["id"], id.to_string());
        assert_eq!(body["type"], "secret.expiring");
        assert_eq!(body["appId"], cred.app_id.to_string());
        assert_eq!(body["displayName"], "orders");
        assert_eq!(body["daysRemaining"], 6);
        assert_eq!(body["thresholdDays"], 7);
        assert_eq!(body["endDateTime"], "2030-01-31T00:00:00Z");
        let expired: serde_json::Value = serde_json::from_str(&payload(
            id,
            NoticeKind::Expired,
            &cred,
            END + Duration::days(2),
        ))
        .unwrap();
        assert_eq!(expired["type"], "secret.expired");
        assert_eq!(expired["daysRemaining"], 0);
        assert_eq!(expired["thresholdDays"], 0);
    }
}
