//! Why a store could not be opened, in the terms an operator acts on (a
//! database to create, a server to start, a password or URL to correct),
//! read from the driver's error so callers need not know sqlx.

use crate::StoreError;

/// What stopped a store from opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// The PostgreSQL server has no database of that name (SQLSTATE 3D000).
    NoDatabase,
    /// Nothing answered at the URL's host and port (refused, unknown host,
    /// timed out, TLS failed).
    Unreachable,
    /// The server refused the user or its password (SQLSTATE 28P01, 28000).
    Authentication,
    /// The URL itself is not one the store takes.
    BadUrl,
}

impl StoreError {
    /// Why opening the store failed, when it is one of the causes an
    /// operator can fix; `None` for anything else.
    pub fn open_failure(&self) -> Option<OpenFailure> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = next {
            if let Some(sqlx) = e.downcast_ref::<sqlx::Error>() {
                return match sqlx {
                    sqlx::Error::Database(db) => match db.code().as_deref() {
                        Some("3D000") => Some(OpenFailure::NoDatabase),
                        Some("28P01" | "28000") => Some(OpenFailure::Authentication),
                        _ => None,
                    },
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                        Some(OpenFailure::Unreachable)
                    }
                    sqlx::Error::Configuration(_) => Some(OpenFailure::BadUrl),
                    _ => None,
                };
            }
            match crate::postgres::sqlstate(e) {
                Some("3D000") => return Some(OpenFailure::NoDatabase),
                Some("28P01" | "28000") => return Some(OpenFailure::Authentication),
                Some(code) if code.starts_with("08") => return Some(OpenFailure::Unreachable),
                _ => {}
            }
            if e.to_string().starts_with("unsupported database URL") {
                return Some(OpenFailure::BadUrl);
            }
            next = e.source();
        }
        None
    }
}
