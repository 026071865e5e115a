//! Where each signing key stands in its life (pending → current → retired,
//! or revoked), which keys the JWKS publishes, and when the schedule wants
//! the next key: plain functions of the stored records and the time, so the
//! rotation timeline is tested without a server.

use clavis_store::SigningKeyRecord;
use time::{Duration, OffsetDateTime};

/// A signing key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet (clients' JWKS caches learn it first).
    Pending,
    /// Signs every new token of the tenant.
    Current,
    /// Replaced; published until the last token it signed has expired.
    Retired,
    /// Removed in an emergency: neither published nor trusted.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }
}

/// One key's place in the timeline.
#[derive(Debug, Clone)]
pub struct KeyStatus<'a> {
    pub record: &'a SigningKeyRecord,
    pub state: KeyState,
    /// When a newer key took over from it (retired keys only).
    pub retired_at: Option<OffsetDateTime>,
    /// Whether the JWKS lists it (and tokens it signed verify).
    pub published: bool,
    /// When it leaves the JWKS without anyone acting (retired keys: the
    /// retirement plus the longest token lifetime).
    pub published_until: Option<OffsetDateTime>,
}

/// Rotation settings of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A key signs this long before the next one takes over; `None`: only on demand.
    pub rotate_after: Option<Duration>,
    /// A new key is published this long before it signs.
    pub prepublish: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            rotate_after: Some(Duration::days(90)),
            prepublish: Duration::hours(24),
        }
    }
}

/// Keys newest first by activation (then creation, then kid): the order in
/// which they take over from each other.
fn by_activation(records: &[SigningKeyRecord]) -> Vec<&SigningKeyRecord> {
    let mut sorted: Vec<&SigningKeyRecord> = records.iter().collect();
    sorted.sort_by(|a, b| {
        (b.activates_at, b.created_at, &b.kid).cmp(&(a.activates_at, a.created_at, &a.kid))
    });
    sorted
}

/// Whether a key ever signed: activated by `now` and not revoked before it did.
fn signed(record: &SigningKeyRecord, now: OffsetDateTime) -> bool {
    record.activates_at <= now && record.revoked_at.is_none_or(|r| r > record.activates_at)
}

/// Every key's state at `now`, newest first by activation. A retired key
/// stays published for `retain_for` (token lifetime plus skew) after its
/// successor took over.
pub fn classify(
    records: &[SigningKeyRecord],
    now: OffsetDateTime,
    retain_for: Duration,
) -> Vec<KeyStatus<'_>> {
    let sorted = by_activation(records);
    let current = sorted
        .iter()
        .position(|r| r.revoked_at.is_none() && r.activates_at <= now);
    sorted
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let mut status = KeyStatus {
                record,
                state: KeyState::Retired,
                retired_at: None,
                published: false,
                published_until: None,
            };
            if record.revoked_at.is_some() {
                status.state = KeyState::Revoked;
            } else if record.activates_at > now {
                status.state = KeyState::Pending;
                status.published = true;
            } else if Some(i) == current {
                status.state = KeyState::Current;
                status.published = true;
            } else {
                // Took over by the earliest newer key that signed.
                let retired_at = sorted[..i]
                    .iter()
                    .filter(|newer| signed(newer, now))
                    .map(|newer| newer.activates_at)
                    .min()
                    .unwrap_or(record.activates_at);
                let until = retired_at + retain_for;
                status.retired_at = Some(retired_at);
                status.published = now < until;
                status.published_until = Some(until);
            }
            status
        })
        .collect()
}

/// The creation time of a key made at `now`: `now`, or just after the
/// newest key's. Among keys that activate at the same instant the one made
/// last takes over, so this keeps a new key ahead even when the clock has
/// not moved since (or this node's clock lags another's).
pub fn created_after(records: &[SigningKeyRecord], now: OffsetDateTime) -> OffsetDateTime {
    records
        .iter()
        .map(|r| r.created_at)
        .max()
        .map_or(now, |newest| now.max(newest + Duration::microseconds(1)))
}

/// The next moment `classify` would answer differently without anyone
/// acting: a pending key activates, or a retired key leaves the JWKS.
pub fn next_change(statuses: &[KeyStatus<'_>], now: OffsetDateTime) -> Option<OffsetDateTime> {
    statuses
        .iter()
        .filter_map(|s| match s.state {
            KeyState::Pending => Some(s.record.activates_at),
            KeyState::Retired if s.published => s.published_until,
            _ => None,
        })
        .filter(|t| *t > now)
        .min()
}

/// When the scheduled successor of the current key should activate, if it
/// is time to publish it now: no key is pending and the current key is
/// within `prepublish` of its rotation age. A late successor (the server
/// was down) still gets the full pre-publication period.
pub fn due_successor(
    statuses: &[KeyStatus<'_>],
    now: OffsetDateTime,
    schedule: Schedule,
) -> Option<OffsetDateTime> {
    let rotate_after = schedule.rotate_after?;
    if statuses.iter().any(|s| s.state == KeyState::Pending) {
        return None;
    }
    let current = statuses.iter().find(|s| s.state == KeyState::Current)?;
    let due = current.record.activates_at + rotate_after;
    (now >= due - schedule.prepublish).then(|| due.max(now + schedule.prepublish))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    fn key(kid: &str, created_h: i64, activates_h: i64) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            tenant_id: uuid::Uuid::nil(),
            alg: "ES256".into(),
            public_jwk: "{}".into(),
            encrypted_private_key: vec![],
            kek_id: "k".into(),
            created_at: T0 + Duration::hours(created_h),
            activates_at: T0 + Duration::hours(activates_h),
            revoked_at: None,
            certificate: None,
        }
    }

    fn states(records: &[SigningKeyRecord], at_h: i64) -> Vec<(String, KeyState, bool)> {
        classify(records, T0 + Duration::hours(at_h), Duration::hours(1))
            .into_iter()
            .map(|s| (s.record.kid.clone(), s.state, s.published))
            .collect()
    }

    fn st(kid: &str, state: KeyState, published: bool) -> (String, KeyState, bool) {
        (kid.into(), state, published)
    }

    #[test]
    fn a_rotation_runs_pending_current_retired_gone() {
        let keys = [key("old", 0, 0), key("new", 10, 34)];
        use KeyState::*;
        assert_eq!(
            states(&keys, 11),
            [st("new", Pending, true), st("old", Current, true)]
        );
        assert_eq!(
            states(&keys, 34),
            [st("new", Current, true), st("old", Retired, true)]
        );
        assert_eq!(
            states(&keys, 35),
            [st("new", Current, true), st("old", Retired, false)],
            "gone once its last token expired"
        );
        let s = classify(&keys, T0 + Duration::hours(20), Duration::hours(1));
        assert_eq!(
            next_change(&s, T0 + Duration::hours(20)),
            Some(T0 + Duration::hours(34))
        );
    }

    #[test]
    fn revoked_keys_are_never_published_and_never_current() {
        use KeyState::*;
        // b signed from 3 until it was revoked at 4 and replaced by c.
        let mut keys = [key("a", 0, 0), key("b", 3, 3), key("c", 4, 4)];
        keys[1].revoked_at = Some(T0 + Duration::hours(4));
        let at = |h: i64| {
            classify(&keys, T0 + Duration::hours(h), Duration::hours(2))
                .into_iter()
                .map(|s| (s.record.kid.clone(), s.state, s.published))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            at(4),
            [
                st("c", Current, true),
                st("b", Revoked, false),
                st("a", Retired, true)
            ],
            "a retired when b took over at 3 and is kept two hours"
        );
        assert_eq!(at(5)[2], st("a", Retired, false));
        // A pending key revoked before it signed retires nothing.
        let mut keys = [key("a", 0, 0), key("p", 5, 30)];
        keys[1].revoked_at = Some(T0 + Duration::hours(6));
        assert_eq!(
            states(&keys, 40),
            [st("p", Revoked, false), st("a", Current, true)]
        );
    }

    #[test]
    fn a_key_made_at_the_same_instant_still_takes_over() {
        let keys = [key("zz", 0, 0), key("p", 0, 50)];
        let made = created_after(&keys, T0);
        assert_eq!(made, T0 + Duration::microseconds(1));
        let later = T0 + Duration::hours(1);
        assert_eq!(created_after(&keys, later), later);
        let mut all = keys.to_vec();
        let mut new = key("aa", 0, 0);
        new.created_at = made;
        all.push(new);
        let s = classify(&all, T0, Duration::hours(1));
        assert_eq!(s[1].record.kid, "aa");
        assert_eq!(s[1].state, KeyState::Current);
        assert_eq!(s[2].state, KeyState::Retired);
    }

    #[test]
    fn the_schedule_prepublishes_before_the_rotation_age() {
        let schedule = Schedule {
            rotate_after: Some(Duration::days(90)),
            prepublish: Duration::hours(24),
        };
        let keys = [key("a", 0, 0)];
        let at = |h: i64| T0 + Duration::hours(h);
        let due =
            |h: i64| due_successor(&classify(&keys, at(h), Duration::hours(1)), at(h), schedule);
        assert_eq!(due(89 * 24 - 1), None);
        assert_eq!(due(89 * 24), Some(at(90 * 24)));
        assert_eq!(due(100 * 24), Some(at(101 * 24)), "late: still a full day");
        let off = Schedule {
            rotate_after: None,
            ..schedule
        };
        assert_eq!(
            due_successor(
                &classify(&keys, at(9999), Duration::hours(1)),
                at(9999),
                off
            ),
            None
        );
        let with_pending = [key("a", 0, 0), key("b", 2000, 2200)];
        let s = classify(&with_pending, at(2100), Duration::hours(1));
        assert_eq!(due_successor(&s, at(2100), schedule), None);
    }
}
