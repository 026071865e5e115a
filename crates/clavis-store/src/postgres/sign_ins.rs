//! The sign-in log in PostgreSQL: batched appends and filtered, paged reads.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::codec::{id, time, PgTime, PgUuid};
use super::error::db;
use crate::model::{AuditResult, SignIn, SignInCount, SignInQuery};
use crate::{from_unix_micros, StoreError, StoreResult};

/// Rows per INSERT (10 parameters each, well under the bind limits).
const ROWS_PER_STATEMENT: usize = 200;

/// Append a batch in one transaction (in its own task: a caller that stops
/// waiting cannot leave it half done).
pub(crate) async fn record(pool: &PgPool, batch: &[SignIn]) -> StoreResult<()> {
    let pool = pool.clone();
    let batch = batch.to_vec();
    tokio::spawn(async move {
        let mut tx = pool.begin().await.map_err(db)?;
        // Many rows per statement: one statement per sign-in cost as much
        // as the token it records.
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut rows = Vec::with_capacity(chunk.len());
            for s in chunk {
                let last_at = (s.last_at != s.at).then(|| time(s.last_at)).transpose()?;
                rows.push((s, time(s.at)?, last_at));
            }
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO sign_ins (id, tenant_id, at, app_id, key_id, resource, client_ip, \
                 user_agent, result, error_code, count, last_at) ",
            );
            insert.push_values(rows, |mut row, (s, at, last_at)| {
                row.push_bind(id(s.id))
                    .push_bind(id(s.tenant_id))
                    .push_bind(at)
                    .push_bind(s.app_id.map(id))
                    .push_bind(s.key_id.map(id))
                    .push_bind(s.resource.map(id))
                    .push_bind(s.client_ip.clone())
                    .push_bind(s.user_agent.clone())
                    .push_bind(s.result.as_str())
                    .push_bind(s.error_code.and_then(|c| i32::try_from(c).ok()))
                    .push_bind(i32::try_from(s.count.max(1)).unwrap_or(i32::MAX))
                    .push_bind(last_at);
            });
            // A failure's id names its bucket: more of the same add to the row.
            insert.push(
                " ON CONFLICT (id) WHERE result = 'failure' DO UPDATE SET \
                   count = LEAST(sign_ins.count::BIGINT + excluded.count, 2147483647)::INTEGER, \
                   at = LEAST(sign_ins.at, excluded.at), \
                   last_at = GREATEST(COALESCE(sign_ins.last_at, sign_ins.at), \
                                      COALESCE(excluded.last_at, excluded.at)), \
                   user_agent = excluded.user_agent",
            );
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        for (key_id, at) in crate::last_uses(&batch) {
            sqlx::query(
                "UPDATE password_credentials SET last_used_at = $1 \
                 WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(time(at)?)
            .bind(id(key_id))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    })
    .await
    .map_err(|e| StoreError::Internal(Box::new(e)))?
}

pub(crate) async fn read(pool: &PgPool, q: &SignInQuery) -> StoreResult<Vec<SignIn>> {
    let (before_at, before_id) = match q.before {
        Some((at, bid)) => (Some(time(at)?), Some(id(bid))),
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT id::text AS id, tenant_id::text AS tenant_id, \
                (EXTRACT(EPOCH FROM at) * 1000000)::BIGINT AS at, \
                app_id::text AS app_id, key_id::text AS key_id, resource::text AS resource, \
                client_ip, user_agent, result, error_code, count, \
                (EXTRACT(EPOCH FROM last_at) * 1000000)::BIGINT AS last_at \
         FROM sign_ins WHERE tenant_id = $1 \
           AND ($2::uuid IS NULL OR app_id = $2) AND ($3::uuid IS NULL OR key_id = $3) \
           AND ($4::text IS NULL OR result = $4) AND ($5::timestamptz IS NULL OR at >= $5) \
           AND ($6::timestamptz IS NULL OR at < $6) \
           AND ($7::timestamptz IS NULL OR at < $7 OR (at = $7 AND id < $8)) \
         ORDER BY at DESC, id DESC LIMIT $9",
    )
    .bind(id(q.tenant_id))
    .bind(q.app_id.map(id))
    .bind(q.key_id.map(id))
    .bind(q.result.map(|r| r.as_str()))
    .bind(q.since.map(time).transpose()?)
    .bind(q.until.map(time).transpose()?)
    .bind(before_at)
    .bind(before_id)
    .bind(i64::from(q.limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter().map(|row| decode(&row)).collect()
}

/// Per source address: how many, first, last (the filters of [`read`]).
pub(crate) async fn counts(pool: &PgPool, q: &SignInQuery) -> StoreResult<Vec<SignInCount>> {
    let rows = sqlx::query(
        "SELECT client_ip, SUM(count)::BIGINT AS n, \
                (EXTRACT(EPOCH FROM MIN(at)) * 1000000)::BIGINT AS first, \
                (EXTRACT(EPOCH FROM MAX(COALESCE(last_at, at))) * 1000000)::BIGINT AS last \
         FROM sign_ins WHERE tenant_id = $1 \
           AND ($2::uuid IS NULL OR app_id = $2) AND ($3::uuid IS NULL OR key_id = $3) \
           AND ($4::text IS NULL OR result = $4) AND ($5::timestamptz IS NULL OR at >= $5) \
           AND ($6::timestamptz IS NULL OR at < $6) \
         GROUP BY client_ip ORDER BY n DESC, client_ip IS NULL, client_ip COLLATE \"C\"",
    )
    .bind(id(q.tenant_id))
    .bind(q.app_id.map(id))
    .bind(q.key_id.map(id))
    .bind(q.result.map(|r| r.as_str()))
    .bind(q.since.map(time).transpose()?)
    .bind(q.until.map(time).transpose()?)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.into_iter()
        .map(|row| {
            Ok(SignInCount {
                client_ip: row.try_get("client_ip").map_err(db)?,
                count: u64::try_from(row.try_get::<i64, _>("n").map_err(db)?).unwrap_or(0),
                first: from_unix_micros(row.try_get("first").map_err(db)?)?,
                last: from_unix_micros(row.try_get("last").map_err(db)?)?,
            })
        })
        .collect()
}

fn uuid(text: Option<String>) -> StoreResult<Option<Uuid>> {
    text.map(|t| Uuid::try_parse(&t).map_err(|_| super::error::corrupt("sign_ins holds a bad id")))
        .transpose()
}

fn decode(row: &sqlx::postgres::PgRow) -> StoreResult<SignIn> {
    let get = |e: sqlx::Error| db(e);
    let at = from_unix_micros(row.try_get("at").map_err(get)?)?;
    Ok(SignIn {
        id: uuid(Some(row.try_get("id").map_err(get)?))?.unwrap_or_default(),
        tenant_id: uuid(Some(row.try_get("tenant_id").map_err(get)?))?.unwrap_or_default(),
        at,
        last_at: match row.try_get::<Option<i64>, _>("last_at").map_err(get)? {
            Some(last) => from_unix_micros(last)?,
            None => at,
        },
        count: u32::try_from(row.try_get::<i32, _>("count").map_err(get)?).unwrap_or(1),
        app_id: uuid(row.try_get("app_id").map_err(get)?)?,
        key_id: uuid(row.try_get("key_id").map_err(get)?)?,
        resource: uuid(row.try_get("resource").map_err(get)?)?,
        client_ip: row.try_get("client_ip").map_err(get)?,
        user_agent: row.try_get("user_agent").map_err(get)?,
        result: if row.try_get::<String, _>("result").map_err(get)? == "success" {
            AuditResult::Success
        } else {
            AuditResult::Failure
        },
        error_code: row
            .try_get::<Option<i32>, _>("error_code")
            .map_err(get)?
            .and_then(|c| u32::try_from(c).ok()),
    })
}

pub(crate) async fn purge(
    pool: &PgPool,
    tenant_id: Uuid,
    before: time::OffsetDateTime,
) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM sign_ins WHERE tenant_id = $1 AND at < $2")
        .bind(id(tenant_id))
        .bind(time(before)?)
        .execute(pool)
        .await
        .map_err(db)?;
    Ok(done.rows_affected())
}

/// Delete the tenant's oldest rows beyond the newest `keep` (by `(at, id)`,
/// the order reads page in).
pub(crate) async fn trim(pool: &PgPool, tenant_id: Uuid, keep: u64) -> StoreResult<u64> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let newest_gone: Option<(PgTime, PgUuid)> = sqlx::query_as(
        "SELECT at, id FROM sign_ins WHERE tenant_id = $1 \
         ORDER BY at DESC, id DESC LIMIT 1 OFFSET $2",
    )
    .bind(id(tenant_id))
    .bind(keep)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    let Some((at, row_id)) = newest_gone else {
        return Ok(0);
    };
    let done = sqlx::query(
        "DELETE FROM sign_ins WHERE tenant_id = $1 AND (at < $2 OR (at = $2 AND id <= $3))",
    )
    .bind(id(tenant_id))
    .bind(at)
    .bind(row_id)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected())
}
