//! Consistent snapshots of a SQLite store (`VACUUM INTO`: one read
//! transaction, safe while a server writes) and the checks a restore runs on
//! one. The server's `clavis backup` / `clavis restore` build on these.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::{StoreError, StoreResult};

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub tenants: i64,
    pub applications: i64,
    pub bytes: u64,
}

impl std::fmt::Display for SnapshotInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tenant(s), {} application(s), {} bytes",
            self.tenants, self.applications, self.bytes
        )
    }
}

fn failed(what: String) -> StoreError {
    StoreError::Internal(Box::new(std::io::Error::other(what)))
}

async fn open_existing(path: &Path, read_only: bool) -> StoreResult<SqliteConnection> {
    if !path.is_file() {
        return Err(failed(format!("{} is not a database file", path.display())));
    }
    SqliteConnectOptions::from_str(&format!("sqlite:{}", path.display()))
        .map_err(|e| StoreError::Internal(Box::new(e)))?
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))
}

/// Check that `path` is a sound Clavis store (SQLite's integrity check, the
/// tables there) and count what it holds.
pub async fn inspect(path: &Path) -> StoreResult<SnapshotInfo> {
    let mut conn = open_existing(path, true).await?;
    let not_clavis = |_| failed(format!("{} is not a Clavis store", path.display()));
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(not_clavis)?;
    if check != "ok" {
        return Err(failed(format!(
            "{} fails SQLite's integrity check: {check}",
            path.display()
        )));
    }
    let tenants = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(&mut conn)
        .await
        .map_err(not_clavis)?;
    let applications = sqlx::query_scalar("SELECT COUNT(*) FROM applications")
        .fetch_one(&mut conn)
        .await
        .map_err(not_clavis)?;
    conn.close().await.ok();
    let bytes = std::fs::metadata(path)
        .map_err(|e| StoreError::Internal(Box::new(e)))?
        .len();
    Ok(SnapshotInfo {
        tenants,
        applications,
        bytes,
    })
}

/// Write a consistent copy of the store file `source` into `to`, which must
/// exist and be empty (the caller creates it with the permissions it wants).
pub async fn snapshot(source: &Path, to: &Path) -> StoreResult<SnapshotInfo> {
    let mut conn = open_existing(source, false).await?;
    let written = sqlx::query("VACUUM INTO ?")
        .bind(to.display().to_string())
        .execute(&mut conn)
        .await;
    conn.close().await.ok();
    written.map_err(|e| StoreError::Internal(Box::new(e)))?;
    inspect(to).await
}
