//! Failed client authentications per throttle key and minute, summed over
//! nodes (the token endpoint's throttling): batched additions, reads of the
//! keys near a limit.

use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use super::error::db;
use crate::model::AuthFailureCount;
use crate::StoreResult;

/// Rows per INSERT (3 parameters each, well under the bind limits).
const ROWS_PER_STATEMENT: usize = 500;

/// Add `counts` and forget windows before `forget_before`, in one
/// transaction (in its own task: a caller that stops waiting cannot leave
/// it half done).
pub(crate) async fn add(
    pool: &SqlitePool,
    counts: &[AuthFailureCount],
    forget_before: i64,
) -> StoreResult<()> {
    let pool = pool.clone();
    let counts = counts.to_vec();
    tokio::spawn(async move {
        let mut conn = pool.acquire().await.map_err(db)?;
        let outcome = add_on(&mut conn, &counts, forget_before).await;
        super::discard_if_failed(&mut conn, &outcome);
        outcome
    })
    .await
    .map_err(|e| crate::StoreError::Internal(Box::new(e)))?
}

async fn add_on(
    conn: &mut SqliteConnection,
    counts: &[AuthFailureCount],
    forget_before: i64,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db)?;
    for chunk in counts.chunks(ROWS_PER_STATEMENT) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT INTO auth_failures (key, window_start, count) ");
        insert.push_values(chunk, |mut row, c| {
            row.push_bind(c.key.clone())
                .push_bind(c.window)
                .push_bind(i64::try_from(c.count).unwrap_or(i64::MAX));
        });
        insert.push(
            " ON CONFLICT (key, window_start) \
                 DO UPDATE SET count = auth_failures.count + excluded.count",
        );
        insert.build().execute(&mut *tx).await.map_err(db)?;
    }
    sqlx::query("DELETE FROM auth_failures WHERE window_start < ?")
        .bind(forget_before)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Totals of windows from `since` on that reached `at_least`.
pub(crate) async fn read(
    pool: &SqlitePool,
    since: i64,
    at_least: u64,
) -> StoreResult<Vec<AuthFailureCount>> {
    let rows = sqlx::query(
        "SELECT key, window_start, count FROM auth_failures \
         WHERE window_start >= ? AND count >= ?",
    )
    .bind(since)
    .bind(i64::try_from(at_least).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(AuthFailureCount {
                key: r.try_get("key").map_err(db)?,
                window: r.try_get("window_start").map_err(db)?,
                count: u64::try_from(r.try_get::<i64, _>("count").map_err(db)?).unwrap_or(0),
            })
        })
        .collect()
}
