//! Refused management calls by a caller that holds no management role (a
//! token for `api://clavis` and nothing more) cannot grow the audit log
//! without bound: the first [`ITEMISED_PER_MINUTE`] such refusals of each
//! caller a minute are itemised as usual; the rest are counted, and written
//! as one summary event per caller — "N more refused calls…" with the last
//! reason, address and credential — every minute (and at shutdown). A
//! caller that holds any management role has every refusal itemised.
//!
//! What is counted but not yet written is lost if the node crashes: at most
//! one minute of summaries; the itemised refusals are written at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clavis_store::{AuditEvent, Store};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

/// Refusals of one role-less caller itemised per minute.
pub const ITEMISED_PER_MINUTE: u32 = 10;
/// The activity of a summary event.
pub const SUMMARY_ACTIVITY: &str = "Refused management calls (summary)";

/// One caller's refusals in one minute.
#[derive(Debug)]
struct Tally {
    itemised: u32,
    /// Counted since the last summary.
    pending: u64,
    first: OffsetDateTime,
    /// The last counted refusal (who, from where, why).
    last: Option<AuditEvent>,
}

/// Tenant, caller (service principal) and minute.
type Key = (Uuid, Option<Uuid>, i64);

/// The refusals of role-less callers, per tenant, caller and minute.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    tallies: Mutex<HashMap<Key, Tally>>,
    /// Refusals counted in a summary rather than itemised (in /metrics).
    pub not_itemised: AtomicU64,
}

impl RefusalBudget {
    /// Whether to itemise `refusal` (an event about a call refused to a
    /// caller without any management role); if not, it is counted for the
    /// caller's next summary.
    pub fn admit(&self, refusal: &AuditEvent) -> bool {
        let key = (
            refusal.tenant_id,
            refusal.actor_service_principal_id,
            refusal.at.unix_timestamp().div_euclid(60),
        );
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let tally = tallies.entry(key).or_insert_with(|| Tally {
            itemised: 0,
            pending: 0,
            first: refusal.at,
            last: None,
        });
        if tally.itemised < ITEMISED_PER_MINUTE {
            tally.itemised += 1;
            return true;
        }
        if tally.pending == 0 {
            tally.first = refusal.at;
        }
        tally.pending += 1;
        tally.last = Some(refusal.clone());
        self.not_itemised.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The summary events of what was counted since the last call; forgets
    /// the minutes before `now`'s previous one.
    pub fn take_summaries(&self, now: OffsetDateTime) -> Vec<AuditEvent> {
        let this_minute = now.unix_timestamp().div_euclid(60);
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut summaries = Vec::new();
        for tally in tallies.values_mut() {
            let Some(last) = tally.last.take() else {
                continue;
            };
            summaries.push(summary(last, tally.pending, tally.first));
            tally.pending = 0;
        }
        tallies.retain(|(_, _, minute), _| *minute + 1 >= this_minute);
        summaries
    }

    /// Write the summaries now (every minute, at shutdown, in tests).
    /// Best effort, like the refusals themselves: a failed write is logged.
    pub async fn flush(&self, store: &dyn Store, now: OffsetDateTime) {
        let summaries = self.take_summaries(now);
        if summaries.is_empty() {
            return;
        }
        if let Err(e) = store.record_audit(&summaries).await {
            tracing::warn!(error = %e, events = summaries.len(),
                "could not record the summaries of refused management calls");
        }
    }
}

/// "`count` more refused calls" by the caller of `last`, since `first`.
fn summary(last: AuditEvent, count: u64, first: OffsetDateTime) -> AuditEvent {
    let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    AuditEvent {
        id: Uuid::new_v4(),
        activity: SUMMARY_ACTIVITY.into(),
        operation_type: "Other".into(),
        target_type: "Tenant".into(),
        target_id: last.tenant_id.to_string(),
        target_display_name: String::new(),
        target_key_id: None,
        result_reason: format!(
            "{count} more refused calls by this caller, which holds no management role, from {} \
             to {}; only the first {ITEMISED_PER_MINUTE} of each minute are itemised. The last \
             ('{}') was refused: {}",
            time(first),
            time(last.at),
            last.activity,
            last.result_reason
        ),
        correlation_id: Uuid::new_v4(),
        // A summary stands for many calls: no one caller's request id.
        client_request_id: None,
        ..last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clavis_store::AuditResult;
    use time::macros::datetime;

    fn refusal(caller: u128, secs: i64) -> AuditEvent {
        AuditEvent {
            id: Uuid::new_v4(),
            tenant_id: Uuid::from_u128(1),
            at: datetime!(2026-01-01 0:00 UTC) + time::Duration::seconds(secs),
            actor_app_id: Some(Uuid::from_u128(caller)),
            actor_service_principal_id: Some(Uuid::from_u128(caller + 100)),
            actor_display_name: "no role".into(),
            actor_key_id: Some(Uuid::from_u128(9)),
            client_ip: Some("192.0.2.9".into()),
            activity: "Add application".into(),
            category: "ApplicationManagement".into(),
            operation_type: "Add".into(),
            target_type: "Application".into(),
            target_id: String::new(),
            target_display_name: String::new(),
            target_key_id: None,
            result: AuditResult::Failure,
            result_reason: "Insufficient privileges".into(),
            correlation_id: Uuid::new_v4(),
            client_request_id: Some("caller-1".into()),
        }
    }

    #[test]
    fn past_ten_a_minute_refusals_are_counted_in_one_summary_per_caller() {
        let budget = RefusalBudget::default();
        let admitted = (0..25).filter(|i| budget.admit(&refusal(1, *i))).count();
        assert_eq!(admitted, 10);
        assert!(budget.admit(&refusal(2, 30)), "another caller has its own");
        assert!(budget.admit(&refusal(1, 61)), "and the next minute too");
        assert_eq!(budget.not_itemised.load(Ordering::Relaxed), 15);
        let summaries = budget.take_summaries(refusal(1, 62).at);
        assert_eq!(summaries.len(), 1);
        let s = &summaries[0];
        assert!(
            s.result_reason.starts_with("15 more refused calls"),
            "{}",
            s.result_reason
        );
        assert_eq!(
            (s.activity.as_str(), s.result, s.actor_app_id),
            (
                SUMMARY_ACTIVITY,
                AuditResult::Failure,
                Some(Uuid::from_u128(1))
            )
        );
        assert_eq!(s.at, refusal(1, 24).at, "the last refusal's time");
        assert!(
            budget.take_summaries(refusal(1, 62).at).is_empty(),
            "written once"
        );
        // Still over the budget in that minute: counted again.
        assert!(!budget.admit(&refusal(1, 50)));
        assert_eq!(budget.take_summaries(refusal(1, 62).at).len(), 1);
        // Old minutes are forgotten.
        budget.take_summaries(refusal(1, 600).at);
        assert!(budget.tallies.lock().unwrap().is_empty());
    }
}
