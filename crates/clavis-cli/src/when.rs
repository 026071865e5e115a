//! Times typed by people: a duration (`30m`, `12h`, `90d`, `2w`, `1y`)
//! counted from now, or an RFC 3339 timestamp. `now` is a parameter so tests
//! need no clock.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::error::Error;

/// What a duration looks like, for error hints.
const FORMS: &str = "use a duration such as 30m, 12h, 90d, 2w or 1y, or an RFC 3339 time such as 2027-01-31T00:00:00Z";

/// Parse `30m` (minutes, never months) / `12h` / `90d` / `2w` / `1y` (365
/// days); `None` if `text` is not a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(unit_at);
    let n: i64 = digits.parse().ok()?;
    let minutes = match unit {
        "m" | "min" => 1,
        "h" => 60,
        "d" => 60 * 24,
        "w" => 60 * 24 * 7,
        "y" => 60 * 24 * 365,
        _ => return None,
    };
    // Anything beyond a thousand years is a typo, and would overflow below.
    (n <= 60 * 24 * 365 * 1000 / minutes).then(|| Duration::minutes(n * minutes))
}

/// A span for `clavis agent`'s flags: a [`parse_duration`] or a shorter one,
/// `500ms`, `30s`, `10m` (`m` is minutes here, never months). Not zero.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let usage = || format!("'{text}' is not a duration: use e.g. 500ms, 30s, 10m, 12h or 90d");
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (digits, unit) = text.split_at(unit_at);
    let n: i64 = digits.parse().map_err(|_| usage())?;
    let span = match unit {
        "ms" => Duration::milliseconds(n),
        "s" => Duration::seconds(n),
        "m" if n <= i64::MAX / 60 => Duration::minutes(n),
        _ => parse_duration(text).ok_or_else(usage)?,
    };
    if span.is_zero() {
        return Err(format!("'{text}' is an empty duration"));
    }
    Ok(span)
}

/// `--expires`: a duration from now, or an RFC 3339 time, which must be in the future.
pub fn parse_expiry(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Error> {
    let at = parse_point(text, |d| now + d)?;
    if at <= now {
        return Err(Error::new(format!("--expires {text} is not in the future")).hint(FORMS));
    }
    Ok(at)
}

/// `--since`: a duration before now (`24h` = the last day), or an RFC 3339 time.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Error> {
    parse_point(text, |d| now - d)
}

fn parse_point(
    text: &str,
    from_duration: impl Fn(Duration) -> OffsetDateTime,
) -> Result<OffsetDateTime, Error> {
    let text = text.trim();
    if let Some(d) = parse_duration(text) {
        if d.is_zero() {
            return Err(Error::new(format!("'{text}' is an empty duration")).hint(FORMS));
        }
        return Ok(from_duration(d));
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        Error::new(format!(
            "'{text}' is neither a duration nor an RFC 3339 time"
        ))
        .hint(FORMS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-10 12:00 UTC);

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Some(Duration::days(90)));
        assert_eq!(parse_duration("12h"), Some(Duration::hours(12)));
        assert_eq!(parse_duration("2w"), Some(Duration::days(14)));
        assert_eq!(parse_duration("1y"), Some(Duration::days(365)));
        assert_eq!(parse_duration("30m"), Some(Duration::minutes(30)));
        assert_eq!(parse_duration("90min"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("1000y"), Some(Duration::days(365_000)));
        for bad in [
            "",
            "d",
            "90",
            "90mo",
            "-1d",
            "1.5d",
            "99999999999d",
            "1001y",
            "3 d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn intervals_add_milliseconds_seconds_and_minutes() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::milliseconds(500)));
        assert_eq!(parse_interval("30s"), Ok(Duration::seconds(30)));
        assert_eq!(parse_interval("10m"), Ok(Duration::minutes(10)));
        assert_eq!(parse_interval("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_interval("90d"), Ok(Duration::days(90)));
        for bad in ["", "0s", "s", "10", "1.5s", "-1s", "10 s", "5mo"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_from_duration_or_rfc3339() {
        assert_eq!(
            parse_expiry("90d", NOW).unwrap(),
            datetime!(2026-04-10 12:00 UTC)
        );
        assert_eq!(
            parse_expiry("12h", NOW).unwrap(),
            datetime!(2026-01-11 00:00 UTC)
        );
        assert_eq!(
            parse_expiry("30m", NOW).unwrap(),
            datetime!(2026-01-10 12:30 UTC)
        );
        assert_eq!(
            parse_expiry("2027-01-31T00:00:00+01:00", NOW).unwrap(),
            datetime!(2027-01-30 23:00 UTC)
        );
        let past = parse_expiry("2025-01-01T00:00:00Z", NOW).unwrap_err();
        assert!(past.reason().contains("not in the future"));
        let junk = parse_expiry("soon", NOW).unwrap_err();
        assert!(junk.hint_text().unwrap().contains("90d"));
        assert!(parse_expiry("0d", NOW).is_err());
    }

    #[test]
    fn since_counts_back() {
        assert_eq!(
            parse_since("24h", NOW).unwrap(),
            datetime!(2026-01-09 12:00 UTC)
        );
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z", NOW).unwrap(),
            datetime!(2026-01-01 00:00 UTC)
        );
    }
}
