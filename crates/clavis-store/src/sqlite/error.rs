//! How sqlx and SQLite errors become [`StoreError`]s.
//!
//! SQLite error texts name tables and columns, never bound values, so they
//! are safe to keep as an error's source; the texts written here name a
//! column or a rule, never a stored value.

use sqlx::error::{DatabaseError, ErrorKind};

use crate::{DiskFull, StoreError};

/// A row or value the backend could not make sense of.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(String);

/// [`StoreError::Internal`] describing an undecodable row or value.
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Internal(Box::new(Corrupt(what.into())))
}

// Primary SQLite result codes (the low byte of an extended code) that mean
// "the database is busy or the disk is in trouble": worth retrying.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// The primary result code of a SQLite error.
fn primary(err: &dyn DatabaseError) -> Option<i64> {
    err.code()
        .and_then(|code| code.parse::<i64>().ok())
        .map(|code| code & 0xff)
}

fn is_transient(err: &dyn DatabaseError) -> bool {
    let primary = primary(err);
    matches!(
        primary,
        Some(SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN)
    )
}

/// Unreachable, closed, busy or failing-disk: worth retrying.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => is_transient(e.as_ref()),
        _ => false,
    }
}

/// Classify an error with no uniqueness rule in mind: unreachable or busy
/// database → `Unavailable` (its source a [`DiskFull`] for `SQLITE_FULL`),
/// a uniqueness violation → a generic `Conflict`, everything else →
/// `Internal`.
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    if matches!(&err, sqlx::Error::Database(e) if primary(e.as_ref()) == Some(SQLITE_FULL)) {
        return StoreError::Unavailable(Box::new(DiskFull(Box::new(err))));
    }
    if is_unavailable(&err) {
        return StoreError::Unavailable(Box::new(err));
    }
    match &err {
        sqlx::Error::Database(e) if e.kind() == ErrorKind::UniqueViolation => {
            // SQLite says which columns, e.g. "UNIQUE constraint failed: tenants.name".
            StoreError::Conflict(e.message().to_owned())
        }
        _ => StoreError::Internal(Box::new(err)),
    }
}

/// Like [`db`], but a uniqueness violation becomes `Conflict(rule(columns))`,
/// where `columns` is SQLite's list of the columns whose rule was broken
/// (`"tenants.name"`), so one statement guarding several rules can say which.
pub(crate) fn unique(err: sqlx::Error, rule: impl FnOnce(&str) -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(e) if e.kind() == ErrorKind::UniqueViolation => {
            let message = e.message();
            let columns = message
                .strip_prefix("UNIQUE constraint failed: ")
                .unwrap_or(message);
            StoreError::Conflict(rule(columns))
        }
        _ => db(err),
    }
}

/// Migration failures are never the caller's fault and rarely transient.
pub(crate) fn migrate(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(inner) if is_unavailable(&inner) => {
            StoreError::Unavailable(Box::new(inner))
        }
        other => StoreError::Internal(Box::new(other)),
    }
}
