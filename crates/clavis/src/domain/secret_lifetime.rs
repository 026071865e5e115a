//! When a new client secret starts and ends: the request's wishes checked
//! against the tenant policy (default lifetime, longest lifetime). The
//! longest lifetime counts from now, not from the start: a secret that
//! starts later ends no later than now + the longest lifetime (otherwise a
//! secret could be made to live up to twice the maximum).

use time::{Duration, OffsetDateTime};

/// How far an end may lie past now + the longest lifetime and still be
/// taken (it is then set to that limit): a client's clock running ahead.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The validity window of a new secret, or the rule the request breaks.
pub fn window(
    now: OffsetDateTime,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    default_lifetime: Duration,
    max_lifetime: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), String> {
    let start = start.unwrap_or(now);
    if start < now - CLOCK_SKEW {
        return Err("startDateTime must not be in the past.".into());
    }
    let latest_end = now
        .checked_add(max_lifetime)
        .ok_or("startDateTime is out of range.")?;
    if start >= latest_end {
        return Err(format!(
            "startDateTime is too far in the future: a secret must end within {} days of now \
             (this tenant's longest lifetime), so it must start well before that.",
            max_lifetime.whole_days()
        ));
    }
    let end = match end {
        Some(end) => end,
        None => start
            .checked_add(default_lifetime.min(max_lifetime))
            .ok_or("startDateTime is out of range.")?
            .min(latest_end),
    };
    if end <= start {
        return Err("endDateTime must be after startDateTime.".into());
    }
    if end - now > max_lifetime + CLOCK_SKEW {
        return Err(format!(
            "endDateTime is too far in the future: this tenant's policy allows client secrets to \
             live at most {} days from now, whenever they start. Choose an earlier endDateTime.",
            max_lifetime.whole_days()
        ));
    }
    Ok((start, end.min(latest_end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    #[test]
    fn defaults_and_limits() {
        let (s, e) = window(NOW, None, None, Duration::days(180), Duration::days(730)).unwrap();
        assert_eq!((s, e), (NOW, NOW + Duration::days(180)));
        assert!(window(
            NOW,
            None,
            Some(NOW + Duration::days(731)),
            Duration::days(180),
            Duration::days(730)
        )
        .unwrap_err()
        .contains("730 days"));
        assert!(window(
            NOW,
            None,
            Some(NOW - Duration::days(1)),
            Duration::days(180),
            Duration::days(730)
        )
        .is_err());
        assert!(window(
            NOW,
            Some(NOW - Duration::days(1)),
            None,
            Duration::days(180),
            Duration::days(730)
        )
        .is_err());
        let far = time::macros::datetime!(9999-12-31 0:00 UTC);
        assert!(window(
            NOW,
            Some(far),
            None,
            Duration::days(180),
            Duration::days(730)
        )
        .is_err());
        assert!(window(
            NOW,
            None,
            Some(far),
            Duration::days(180),
            Duration::days(730)
        )
        .is_err());
        let (_, e) = window(NOW, None, None, Duration::days(900), Duration::days(730)).unwrap();
        assert_eq!(e, NOW + Duration::days(730));
    }

    /// Found in a review: a secret could start up to the longest lifetime
    /// from now and then live that long again (up to twice the maximum).
    #[test]
    fn the_end_is_never_past_now_plus_the_longest_lifetime() {
        let max = Duration::days(730);
        let default = Duration::days(180);
        let late_start = NOW + Duration::days(700);
        let err = window(NOW, Some(late_start), Some(late_start + max), default, max).unwrap_err();
        assert!(err.contains("730 days from now"), "{err}");
        // Without an end, it ends at the limit.
        let (s, e) = window(NOW, Some(late_start), None, default, max).unwrap();
        assert_eq!((s, e), (late_start, NOW + max));
        // Starting at (or past) the limit leaves no time to live.
        assert!(window(NOW, Some(NOW + max), None, default, max).is_err());
        // A client clock a little ahead is forgiven, and the end capped.
        let (_, e) = window(
            NOW,
            Some(NOW + Duration::seconds(30)),
            Some(NOW + Duration::seconds(30) + max),
            default,
            max,
        )
        .unwrap();
        assert_eq!(e, NOW + max);
        assert!(window(
            NOW,
            None,
            Some(NOW + max + Duration::minutes(6)),
            default,
            max
        )
        .is_err());
    }
}
