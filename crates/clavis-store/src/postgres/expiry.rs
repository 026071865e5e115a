//! Secret expiry warnings in PostgreSQL: webhook subscriptions (mutations
//! and reads), credentials near their end, notices recorded once across
//! nodes, and the delivery queue and log.
//!
//! Several nodes run the scheduler at once. A notice is recorded with
//! `INSERT ... ON CONFLICT DO NOTHING` on its primary key: a racing insert
//! waits for the winner to commit and then inserts nothing, so exactly one
//! node enqueues the deliveries. Due deliveries are taken with
//! `FOR UPDATE SKIP LOCKED` and leased (their `next_attempt_at` pushed
//! forward) in one transaction, so exactly one node sends each attempt.

use sqlx::postgres::PgRow;
use sqlx::{query, PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{id, time, PgUuid};
use super::error::{corrupt, db, unique};
use super::mutate::{found, insert_audit};
use crate::expiry::{
    parse_thresholds, thresholds_text, CredentialEnd, DeliveryAttempt, DeliveryQuery,
    DeliveryStatus, DueDelivery, ExpiringCredential, ExpiryNotice, WebhookDelivery,
    WebhookSubscription,
};
use crate::model::AuditEvent;
use crate::{from_unix_micros, StoreError, StoreResult};

pub(crate) async fn insert_webhook(
    conn: &mut PgConnection,
    sub: &WebhookSubscription,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO webhook_subscriptions (id, tenant_id, url, display_name, threshold_days, \
         sealed_secret, kek_id, created_at, paused_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
         WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2)",
    )
    .bind(id(sub.id))
    .bind(id(sub.tenant_id))
    .bind(&sub.url)
    .bind(&sub.display_name)
    .bind(thresholds_text(&sub.threshold_days))
    .bind(sub.sealed_secret.as_slice())
    .bind(&sub.kek_id)
    .bind(time(sub.created_at)?)
    .bind(sub.paused_at.map(time).transpose()?)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        unique(e, |_| {
            format!("a webhook with id {} already exists", sub.id)
        })
    })?;
    found(done.rows_affected(), "tenant")
}

pub(crate) async fn delete_webhook(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    webhook: Uuid,
) -> StoreResult<()> {
    let done = query("DELETE FROM webhook_subscriptions WHERE id = $1 AND tenant_id = $2")
        .bind(id(webhook))
        .bind(id(tenant_id))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    found(done.rows_affected(), "webhook")
}

pub(crate) async fn set_webhook_paused(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    webhook: Uuid,
    paused_at: Option<OffsetDateTime>,
) -> StoreResult<()> {
    let done = query(
        "UPDATE webhook_subscriptions SET paused_at = CASE WHEN $1::timestamptz IS NULL \
         THEN NULL ELSE coalesce(paused_at, $1) END WHERE id = $2 AND tenant_id = $3",
    )
    .bind(paused_at.map(time).transpose()?)
    .bind(id(webhook))
    .bind(id(tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    found(done.rows_affected(), "webhook")
}

/// Microseconds since the Unix epoch, as the row decoders read times.
fn micros_of(column: &str) -> String {
    format!("(EXTRACT(EPOCH FROM {column}) * 1000000)::BIGINT")
}

pub(crate) async fn webhooks(
    pool: &PgPool,
    tenant_id: Uuid,
    only: Option<Uuid>,
) -> StoreResult<Vec<WebhookSubscription>> {
    let rows = sqlx::query(&format!(
        "SELECT id::text AS id, tenant_id::text AS tenant_id, url, display_name, threshold_days, \
                sealed_secret, kek_id, {} AS created_at, {} AS paused_at \
         FROM webhook_subscriptions WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2) \
         ORDER BY created_at, id",
        micros_of("created_at"),
        micros_of("paused_at")
    ))
    .bind(id(tenant_id))
    .bind(only.map(id))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(WebhookSubscription {
                id: uuid(row, "id")?,
                tenant_id: uuid(row, "tenant_id")?,
                url: get(row, "url")?,
                display_name: get(row, "display_name")?,
                threshold_days: parse_thresholds(&get::<String>(row, "threshold_days")?)
                    .ok_or_else(|| corrupt("threshold_days is malformed"))?,
                sealed_secret: get(row, "sealed_secret")?,
                kek_id: get(row, "kek_id")?,
                created_at: from_unix_micros(get(row, "created_at")?)?,
                paused_at: get::<Option<i64>>(row, "paused_at")?
                    .map(from_unix_micros)
                    .transpose()?,
            })
        })
        .collect()
}

pub(crate) async fn expiring_credentials(
    pool: &PgPool,
    tenant_id: Uuid,
    until: OffsetDateTime,
) -> StoreResult<Vec<ExpiringCredential>> {
    let rows = sqlx::query(&format!(
        "SELECT a.tenant_id::text AS tenant_id, a.id::text AS application_id, \
                a.app_id::text AS app_id, a.display_name AS application_name, \
                c.key_id::text AS key_id, c.display_name, c.hint, {} AS start_at, {} AS end_at, \
                (SELECT string_agg(n.threshold_days::text, ',') FROM expiry_notices n \
                 WHERE n.key_id = c.key_id) AS noticed \
         FROM password_credentials c JOIN applications a ON a.id = c.application_id \
         WHERE a.tenant_id = $1 AND c.end_at <= $2 AND NOT EXISTS \
           (SELECT 1 FROM expiry_notices n WHERE n.key_id = c.key_id AND n.threshold_days = 0) \
         ORDER BY c.end_at, c.key_id",
        micros_of("c.start_at"),
        micros_of("c.end_at")
    ))
    .bind(id(tenant_id))
    .bind(time(until)?)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(ExpiringCredential {
                tenant_id: uuid(row, "tenant_id")?,
                application_id: uuid(row, "application_id")?,
                app_id: uuid(row, "app_id")?,
                application_name: get(row, "application_name")?,
                key_id: uuid(row, "key_id")?,
                display_name: get(row, "display_name")?,
                hint: get(row, "hint")?,
                start_at: from_unix_micros(get(row, "start_at")?)?,
                end_at: from_unix_micros(get(row, "end_at")?)?,
                noticed: parse_thresholds(
                    &get::<Option<String>>(row, "noticed")?.unwrap_or_default(),
                )
                .ok_or_else(|| corrupt("expiry_notices holds a bad threshold"))?,
            })
        })
        .collect()
}

pub(crate) async fn credential_ends(pool: &PgPool) -> StoreResult<Vec<CredentialEnd>> {
    let rows = sqlx::query(&format!(
        "SELECT a.tenant_id::text AS tenant_id, a.app_id::text AS app_id, \
                c.key_id::text AS key_id, {} AS end_at \
         FROM password_credentials c JOIN applications a ON a.id = c.application_id \
         ORDER BY a.tenant_id, a.app_id, c.key_id",
        micros_of("c.end_at")
    ))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(CredentialEnd {
                tenant_id: uuid(row, "tenant_id")?,
                app_id: uuid(row, "app_id")?,
                key_id: uuid(row, "key_id")?,
                end_at: from_unix_micros(get(row, "end_at")?)?,
            })
        })
        .collect()
}

/// In a task of its own: a caller that stops waiting cannot leave the
/// transaction half done.
pub(crate) async fn record_notice(
    pool: &PgPool,
    notice: &ExpiryNotice,
    deliveries: &[WebhookDelivery],
    audit: &[AuditEvent],
) -> StoreResult<bool> {
    let (pool, notice, deliveries, audit) = (
        pool.clone(),
        notice.clone(),
        deliveries.to_vec(),
        audit.to_vec(),
    );
    tokio::spawn(async move {
        let mut tx = pool.begin().await.map_err(db)?;
        let done = query(
            "INSERT INTO expiry_notices (tenant_id, application_id, key_id, threshold_days, \
             noticed_at) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM \
             password_credentials c JOIN applications a ON a.id = c.application_id \
             WHERE c.key_id = $3 AND a.id = $2 AND a.tenant_id = $1) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id(notice.tenant_id))
        .bind(id(notice.application_id))
        .bind(id(notice.key_id))
        .bind(i32::try_from(notice.kind.days()).map_err(|_| corrupt("threshold out of range"))?)
        .bind(time(notice.at)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(db)?;
            return Ok(false);
        }
        for d in &deliveries {
            insert_delivery(&mut tx, d).await?;
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    })
    .await
    .map_err(|e| StoreError::Internal(Box::new(e)))?
}

/// [`Mutation::InsertWebhookDelivery`](crate::Mutation::InsertWebhookDelivery).
pub(crate) async fn record_delivery(
    conn: &mut PgConnection,
    d: &WebhookDelivery,
) -> StoreResult<()> {
    let subscribed = query("SELECT 1 FROM webhook_subscriptions WHERE id = $1 AND tenant_id = $2")
        .bind(id(d.subscription_id))
        .bind(id(d.tenant_id))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if subscribed.is_none() {
        return Err(StoreError::NotFound("webhook"));
    }
    insert_delivery(conn, d).await
}

async fn insert_delivery(conn: &mut PgConnection, d: &WebhookDelivery) -> StoreResult<()> {
    query(
        "INSERT INTO webhook_deliveries (id, tenant_id, subscription_id, event_type, key_id, \
         payload, status, attempts, last_status, last_error, created_at, last_attempt_at, \
         next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id(d.id))
    .bind(id(d.tenant_id))
    .bind(id(d.subscription_id))
    .bind(&d.event_type)
    .bind(id(d.key_id))
    .bind(&d.payload)
    .bind(d.status.as_str())
    .bind(count(d.attempts)?)
    .bind(d.last_status.map(i32::from))
    .bind(&d.last_error)
    .bind(time(d.created_at)?)
    .bind(d.last_attempt_at.map(time).transpose()?)
    .bind(d.next_attempt_at.map(time).transpose()?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

fn count(n: u32) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| corrupt("attempt count out of range"))
}

fn delivery_columns() -> String {
    format!(
        "d.id::text AS id, d.tenant_id::text AS tenant_id, \
         d.subscription_id::text AS subscription_id, d.event_type, d.key_id::text AS key_id, \
         d.payload, d.status, d.attempts, d.last_status, d.last_error, {} AS created_at, \
         {} AS last_attempt_at, {} AS next_attempt_at",
        micros_of("d.created_at"),
        micros_of("d.last_attempt_at"),
        micros_of("d.next_attempt_at")
    )
}

pub(crate) async fn claim(
    pool: &PgPool,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let pool = pool.clone();
    let (now_at, lease_at) = (time(now)?, time(lease_until)?);
    tokio::spawn(async move {
        let mut tx = pool.begin().await.map_err(db)?;
        let rows = sqlx::query(&format!(
            "SELECT {}, s.url, s.sealed_secret FROM webhook_deliveries d \
             JOIN webhook_subscriptions s ON s.id = d.subscription_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND s.paused_at IS NULL \
             ORDER BY d.next_attempt_at, d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED",
            delivery_columns()
        ))
        .bind(now_at)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut delivery = delivery(row)?;
            delivery.next_attempt_at = Some(lease_until);
            due.push(DueDelivery {
                delivery,
                url: get(row, "url")?,
                sealed_secret: get(row, "sealed_secret")?,
            });
        }
        let ids: Vec<PgUuid> = due.iter().map(|d| id(d.delivery.id)).collect();
        query("UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id = ANY($2)")
            .bind(lease_at)
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(due)
    })
    .await
    .map_err(|e| StoreError::Internal(Box::new(e)))?
}

pub(crate) async fn finish(
    pool: &PgPool,
    delivery: Uuid,
    a: &DeliveryAttempt,
) -> StoreResult<bool> {
    let done = query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, \
         last_error = $4, last_attempt_at = $5, next_attempt_at = $6 \
         WHERE id = $7 AND status = 'pending' AND attempts = $8",
    )
    .bind(a.status.as_str())
    .bind(count(a.attempt)?)
    .bind(a.http_status.map(i32::from))
    .bind(&a.error)
    .bind(time(a.at)?)
    .bind(a.next_attempt_at.map(time).transpose()?)
    .bind(id(delivery))
    .bind(count(a.attempt.saturating_sub(1))?)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn deliveries(
    pool: &PgPool,
    q: &DeliveryQuery,
) -> StoreResult<Vec<WebhookDelivery>> {
    let (before_at, before_id) = match q.before {
        Some((at, bid)) => (Some(time(at)?), Some(id(bid))),
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {} FROM webhook_deliveries d \
         WHERE d.tenant_id = $1 AND d.subscription_id = $2 \
           AND ($3::timestamptz IS NULL OR d.created_at < $3 \
                OR (d.created_at = $3 AND d.id < $4)) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT $5",
        delivery_columns()
    ))
    .bind(id(q.tenant_id))
    .bind(id(q.subscription_id))
    .bind(before_at)
    .bind(before_id)
    .bind(i64::from(q.limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(delivery).collect()
}

fn delivery(row: &PgRow) -> StoreResult<WebhookDelivery> {
    let status: String = get(row, "status")?;
    let time = |column| {
        get::<Option<i64>>(row, column)?
            .map(from_unix_micros)
            .transpose()
    };
    Ok(WebhookDelivery {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        subscription_id: uuid(row, "subscription_id")?,
        event_type: get(row, "event_type")?,
        key_id: uuid(row, "key_id")?,
        payload: get(row, "payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt("webhook_deliveries.status is unknown"))?,
        attempts: u32::try_from(get::<i32>(row, "attempts")?)
            .map_err(|_| corrupt("webhook_deliveries.attempts is out of range"))?,
        last_status: get::<Option<i32>>(row, "last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: get(row, "last_error")?,
        created_at: from_unix_micros(get(row, "created_at")?)?,
        last_attempt_at: time("last_attempt_at")?,
        next_attempt_at: time("next_attempt_at")?,
    })
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

fn uuid(row: &PgRow, column: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(&get::<String>(row, column)?)
        .map_err(|_| corrupt(format!("{column} holds a bad id")))
}
