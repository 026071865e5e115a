//! Refused requests cannot fill the disk: failed sign-ins are aggregated
//! into one entry per bucket — tenant, minute, source address, client id
//! presented (unknown ones, AADSTS700016, pooled into one bucket per
//! address) and error code — whatever user agent each one sent (the entry
//! keeps the latest, cut to 128 characters). Other refusals keep the
//! client id presented (a throttled request's, AADSTS90055, was not looked
//! up: random ones are bounded by the budget below, not pooled). An entry's id is derived from
//! its bucket, so every batch of this node and every other node sharing the
//! database adds to the same stored row.
//!
//! Each tenant may open at most `per_minute` buckets a minute on this node;
//! further failures of new buckets are folded into one overflow entry per
//! tenant and minute (no address, client or code: "N refusals not
//! itemised") and counted in `clavis_sign_in_failures_not_itemised_total`.
//! So one tenant's flood writes at most `per_minute + 1` rows a minute per
//! node, however many addresses, client ids and user agents it uses.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clavis_store::{AuditResult, SignIn};
use time::OffsetDateTime;
use uuid::Uuid;

/// AADSTS700016 (no such application): the client id presented names
/// nothing, so it is not worth a bucket of its own.
const UNKNOWN_CLIENT: u32 = 700_016;
/// How much of a user agent a failure entry keeps.
const USER_AGENT_CHARS: usize = 128;

/// The buckets each tenant opened in the minutes still being written.
#[derive(Debug)]
pub(crate) struct FailureBudget {
    per_minute: usize,
    open: HashMap<(Uuid, i64), HashSet<Uuid>>,
    not_itemised: Arc<AtomicU64>,
}

impl FailureBudget {
    /// At most `per_minute` itemised failure entries per tenant and minute;
    /// failures beyond it are added to `not_itemised`.
    pub(crate) fn new(per_minute: u32, not_itemised: Arc<AtomicU64>) -> Self {
        Self {
            per_minute: per_minute as usize,
            open: HashMap::new(),
            not_itemised,
        }
    }

    /// Give every failure of `batch` its bucket's id (pooling unknown
    /// clients, trimming the user agent), or fold it into its tenant's
    /// overflow entry for that minute when the tenant's budget is spent.
    /// Idempotent: a batch kept after a failed write may pass again.
    pub(crate) fn assign(&mut self, batch: &mut [SignIn]) {
        let mut newest = None;
        for s in batch.iter_mut() {
            if s.result != AuditResult::Failure {
                continue;
            }
            let minute = minute_of(s.at);
            newest = newest.max(Some(minute));
            if s.error_code == Some(UNKNOWN_CLIENT) {
                s.app_id = None;
            }
            if let Some(agent) = &mut s.user_agent {
                if let Some((cut, _)) = agent.char_indices().nth(USER_AGENT_CHARS) {
                    agent.truncate(cut);
                }
            }
            if is_overflow(s) {
                s.id = bucket_id(s, minute);
                continue;
            }
            let bucket = bucket_id(s, minute);
            let open = self.open.entry((s.tenant_id, minute)).or_default();
            if open.contains(&bucket) || open.len() < self.per_minute {
                open.insert(bucket);
                s.id = bucket;
            } else {
                self.not_itemised
                    .fetch_add(u64::from(s.count.max(1)), Ordering::Relaxed);
                s.app_id = None;
                s.key_id = None;
                s.resource = None;
                s.client_ip = None;
                s.user_agent = None;
                s.error_code = None;
                s.id = bucket_id(s, minute);
            }
        }
        // Forget minutes that no longer receive sign-ins.
        if let Some(newest) = newest {
            self.open.retain(|(_, minute), _| *minute + 2 >= newest);
        }
    }
}

/// The overflow entry of a tenant and minute: a failure with no code.
pub(crate) fn is_overflow(s: &SignIn) -> bool {
    s.result == AuditResult::Failure && s.error_code.is_none()
}

fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

/// A stable id for a failure's bucket: the first 16 bytes of SHA-256 over
/// its key, as a version-8 (custom) UUID. The same on every node.
fn bucket_id(s: &SignIn, minute: i64) -> Uuid {
    let mut key = Vec::with_capacity(96);
    key.extend_from_slice(b"clavis sign-in failure bucket v1\0");
    key.extend_from_slice(s.tenant_id.as_bytes());
    key.extend_from_slice(&minute.to_be_bytes());
    match s.app_id {
        Some(app) => {
            key.push(1);
            key.extend_from_slice(app.as_bytes());
        }
        None => key.push(0),
    }
    match s.error_code {
        Some(code) => {
            key.push(1);
            key.extend_from_slice(&code.to_be_bytes());
        }
        None => key.push(0),
    }
    if let Some(ip) = &s.client_ip {
        key.push(1);
        key.extend_from_slice(ip.as_bytes());
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn failure(secs: i64, ip: &str, app: u128, code: u32, agent: &str) -> SignIn {
        let at = datetime!(2026-01-01 0:00 UTC) + time::Duration::seconds(secs);
        SignIn {
            id: Uuid::new_v4(),
            tenant_id: Uuid::from_u128(7),
            at,
            last_at: at,
            count: 1,
            app_id: Some(Uuid::from_u128(app)),
            key_id: None,
            resource: None,
            client_ip: Some(ip.into()),
            user_agent: Some(agent.into()),
            result: AuditResult::Failure,
            error_code: Some(code),
        }
    }

    #[test]
    fn a_bucket_ignores_the_user_agent_and_pools_unknown_clients() {
        let counter = Arc::new(AtomicU64::new(0));
        let mut budget = FailureBudget::new(10, counter.clone());
        let mut batch = vec![
            failure(1, "192.0.2.1", 1, 7000215, "a"),
            failure(2, "192.0.2.1", 1, 7000215, &"b".repeat(500)),
            failure(3, "192.0.2.1", 2, 700016, "c"),
            failure(4, "192.0.2.1", 3, 700016, "d"),
            failure(5, "192.0.2.2", 3, 700016, "d"),
            failure(65, "192.0.2.1", 1, 7000215, "a"),
        ];
        budget.assign(&mut batch);
        let ids: Vec<Uuid> = batch.iter().map(|s| s.id).collect();
        assert_eq!(ids[0], ids[1], "the user agent is not part of the bucket");
        assert_eq!(ids[2], ids[3], "unknown client ids share a bucket");
        assert_eq!(batch[2].app_id, None);
        assert_ne!(ids[3], ids[4], "per address");
        assert_ne!(ids[0], ids[5], "per minute");
        assert_ne!(ids[0], ids[2], "per client and code");
        assert_eq!(batch[1].user_agent.as_ref().map(String::len), Some(128));
        // The same key gives the same id on another node.
        let mut again = vec![failure(9, "192.0.2.1", 1, 7000215, "z")];
        FailureBudget::new(10, Arc::default()).assign(&mut again);
        assert_eq!(again[0].id, ids[0]);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn past_the_budget_new_buckets_fold_into_the_overflow_entry() {
        let counter = Arc::new(AtomicU64::new(0));
        let mut budget = FailureBudget::new(2, counter.clone());
        let mut batch: Vec<SignIn> = (0..5)
            .map(|i| failure(1, &format!("192.0.2.{i}"), 1, 7000215, "x"))
            .collect();
        batch.push(failure(2, "192.0.2.0", 1, 7000215, "x"));
        budget.assign(&mut batch);
        assert_eq!(counter.load(Ordering::Relaxed), 3);
        let overflow: Vec<&SignIn> = batch.iter().filter(|s| is_overflow(s)).collect();
        assert_eq!(overflow.len(), 3);
        assert!(overflow.iter().all(|s| s.id == overflow[0].id
            && s.client_ip.is_none()
            && s.app_id.is_none()
            && s.user_agent.is_none()));
        assert!(!is_overflow(&batch[5]), "an open bucket takes more");
        // A kept batch passing again is not counted twice.
        budget.assign(&mut batch);
        assert_eq!(counter.load(Ordering::Relaxed), 3);
        // The next minute has a budget of its own.
        let mut next = vec![failure(61, "192.0.2.4", 1, 7000215, "x")];
        budget.assign(&mut next);
        assert!(!is_overflow(&next[0]));
    }
}
