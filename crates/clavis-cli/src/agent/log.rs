//! The agent's log: one line per step on stderr, with the time and a level;
//! key ids, never secret values.

use std::io::Write as _;

fn line(level: &str, message: &str) {
    let at = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default();
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{at} {level} clavis agent: {message}");
}

pub fn info(message: impl AsRef<str>) {
    line("INFO", message.as_ref());
}

pub fn warn(message: impl AsRef<str>) {
    line("WARN", message.as_ref());
}
