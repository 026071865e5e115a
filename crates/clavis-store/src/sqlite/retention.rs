//! Retention in SQLite: old audit events and expired revoked tokens deleted,
//! the logs' rows counted (for the size budgets and `/metrics`).

use sqlx::SqlitePool;
use uuid::Uuid;

use super::codec::{id, micros};
use super::error::db;
use crate::model::LogRows;
use crate::StoreResult;

pub(crate) async fn purge_audit_events(
    pool: &SqlitePool,
    tenant_id: Uuid,
    before: time::OffsetDateTime,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM audit_events WHERE tenant_id = ? AND at < ?")
        .bind(id(tenant_id))
        .bind(micros(before)?)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(done.rows_affected())
}

pub(crate) async fn log_rows(pool: &SqlitePool, tenant_id: Uuid) -> StoreResult<LogRows> {
    let (sign_ins, audit_events): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM sign_ins WHERE tenant_id = ?1), \
                (SELECT COUNT(*) FROM audit_events WHERE tenant_id = ?1)",
    )
    .bind(id(tenant_id))
    .fetch_one(pool)
    .await
    .map_err(db)?;
    Ok(LogRows {
        sign_ins: u64::try_from(sign_ins).unwrap_or(0),
        audit_events: u64::try_from(audit_events).unwrap_or(0),
    })
}

pub(crate) async fn purge_revoked_tokens(
    pool: &SqlitePool,
    before: time::OffsetDateTime,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
        .bind(micros(before)?)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(done.rows_affected())
}
