//! How sqlx and PostgreSQL errors become [`StoreError`]s.
//!
//! A PostgreSQL error report can quote stored values: the `DETAIL` of a
//! unique or check violation spells out the offending key or the whole row
//! (a secret hash, a wrapped key). So a database error is never kept as it
//! is: only its SQLSTATE, its message (which names constraints, tables and
//! columns) and its constraint name survive, in [`PgFailure`]. Uniqueness
//! rules are told apart by constraint name (they are all named in
//! `migrations/postgres`), and the texts written here name a rule, never a
//! stored value.

use sqlx::error::{DatabaseError, ErrorKind};

use crate::{DiskFull, StoreError};

/// SQLSTATE `disk_full`.
const DISK_FULL: &str = "53100";

/// A row or value the backend could not make sense of.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(String);

/// [`StoreError::Internal`] describing an undecodable row or value.
pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Internal(Box::new(Corrupt(what.into())))
}

/// What is kept of a PostgreSQL error report: no `DETAIL`, `HINT` or
/// `WHERE`, which may quote values.
#[derive(Debug, thiserror::Error)]
#[error("{message} (SQLSTATE {code}{})", constraint_suffix(.constraint))]
pub(crate) struct PgFailure {
    code: String,
    message: String,
    constraint: Option<String>,
}

fn constraint_suffix(constraint: &Option<String>) -> String {
    constraint
        .as_deref()
        .map(|name| format!(", constraint {name}"))
        .unwrap_or_default()
}

/// The SQLSTATE of a PostgreSQL error kept as a [`PgFailure`], if `err`
/// is one.
pub(crate) fn sqlstate<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a str> {
    err.downcast_ref::<PgFailure>().map(|f| f.code.as_str())
}

impl PgFailure {
    fn of(err: &dyn DatabaseError) -> PgFailure {
        PgFailure {
            code: err.code().map(|c| c.into_owned()).unwrap_or_default(),
            message: err.message().to_owned(),
            constraint: err.constraint().map(str::to_owned),
        }
    }
}

/// SQLSTATEs worth retrying: the connection or the server is in trouble
/// (classes 08, 53, 57, 58), or the transaction lost a race it can win on
/// a second try (40001 serialization failure, 40P01 deadlock, 55P03 lock
/// not available).
fn is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "53" | "57" | "58"))
        || matches!(code, "40001" | "40P01" | "55P03")
}

/// Classify an error with no rule in mind: unreachable or overloaded
/// database → `Unavailable` (its source a [`DiskFull`] for SQLSTATE 53100);
/// a uniqueness violation → a `Conflict` naming the constraint; everything
/// else → `Internal`.
pub(crate) fn db(err: sqlx::Error) -> StoreError {
    match err {
        // `Protocol`: the peer spoke no PostgreSQL (e.g. a proxy in front of
        // a stopped database accepted the connection and closed it).
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
        sqlx::Error::Database(e) => {
            let failure = PgFailure::of(e.as_ref());
            if e.kind() == ErrorKind::UniqueViolation {
                // "duplicate key value violates unique constraint \"...\"":
                // the message names the constraint only.
                StoreError::Conflict(failure.message)
            } else if failure.code == DISK_FULL {
                StoreError::Unavailable(Box::new(DiskFull(Box::new(failure))))
            } else if is_transient(&failure.code) {
                StoreError::Unavailable(Box::new(failure))
            } else {
                StoreError::Internal(Box::new(failure))
            }
        }
        other => StoreError::Internal(Box::new(other)),
    }
}

/// Like [`db`], but a uniqueness violation becomes
/// `Conflict(rule(constraint))`, so one statement guarding several rules
/// can say which.
pub(crate) fn unique(err: sqlx::Error, rule: impl FnOnce(&str) -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(e) if e.kind() == ErrorKind::UniqueViolation => {
            StoreError::Conflict(rule(e.constraint().unwrap_or_default()))
        }
        _ => db(err),
    }
}

/// Like [`unique`], but a foreign key violation (what a statement pointed
/// at was deleted by a concurrent transaction after this one looked) is
/// `NotFound(what)`, as if it had been gone from the start.
pub(crate) fn unique_or_gone(
    err: sqlx::Error,
    what: &'static str,
    rule: impl FnOnce(&str) -> String,
) -> StoreError {
    match &err {
        sqlx::Error::Database(e) if e.kind() == ErrorKind::ForeignKeyViolation => {
            StoreError::NotFound(what)
        }
        _ => unique(err, rule),
    }
}

/// Migration failures are never the caller's fault and rarely transient.
pub(crate) fn migrate(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(inner)
        | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => match db(inner) {
            StoreError::Conflict(message) => {
                StoreError::Internal(Box::new(std::io::Error::other(message)))
            }
            other => other,
        },
        other => StoreError::Internal(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_states() {
        for code in [
            "08006", "53300", "57P01", "57P03", "58030", "40001", "40P01",
        ] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "28P01", "3D000", ""] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn failure_text_names_code_and_constraint() {
        let failure = PgFailure {
            code: "23514".to_owned(),
            message: "new row violates check constraint".to_owned(),
            constraint: Some("c".to_owned()),
        };
        assert_eq!(
            failure.to_string(),
            "new row violates check constraint (SQLSTATE 23514, constraint c)"
        );
    }
}
