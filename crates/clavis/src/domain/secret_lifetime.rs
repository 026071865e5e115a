//! When a new client secret starts and ends: the request's wishes checked
//! against the tenant policy (default lifetime, longest lifetime).

use time::{Duration, OffsetDateTime};

/// The validity window of a new secret, or the rule the request breaks.
pub fn window(
    now: OffsetDateTime,
    start: Option<OffsetDateTime>,
    end: Option<OffsetDateTime>,
    default_lifetime: Duration,
    max_lifetime: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), String> {
    let start = start.unwrap_or(now);
    if start < now - Duration::minutes(5) {
        return Err("startDateTime must not be in the past.".into());
    }
    if start - now > max_lifetime {
        return Err(format!(
            "startDateTime is too far in the future: a secret must end within {} days of now.",
            max_lifetime.whole_days()
        ));
    }
    let end = match end {
        Some(end) => end,
        None => start
            .checked_add(default_lifetime.min(max_lifetime))
            .ok_or("startDateTime is out of range.")?,
    };
    if end <= start {
        return Err("endDateTime must be after startDateTime.".into());
    }
    if end - start > max_lifetime {
        return Err(format!(
            "endDateTime is too far in the future: this tenant's policy allows client secrets to live at most {} days. Choose an earlier endDateTime.",
            max_lifetime.whole_days()
        ));
    }
    Ok((start, end))
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
}
