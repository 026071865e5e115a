//! Secret expiry warnings in SQLite: webhook subscriptions (mutations and
//! reads), credentials near their end, notices recorded once, and the
//! delivery queue and log.
//!
//! One process owns a SQLite file, and every write here runs in a
//! `BEGIN IMMEDIATE` transaction, so "insert the notice if new, then its
//! deliveries" and "take due deliveries" are atomic without row locks.

use sqlx::sqlite::SqliteRow;
use sqlx::{query, Connection, Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{id, micros};
use super::error::{corrupt, db};
use super::mutate::{found, insert_audit};
use crate::expiry::{
    parse_thresholds, thresholds_text, CredentialEnd, DeliveryAttempt, DeliveryQuery,
    DeliveryStatus, DueDelivery, ExpiringCredential, ExpiryNotice, WebhookDelivery,
    WebhookSubscription,
};
use crate::model::AuditEvent;
use crate::{from_unix_micros, StoreError, StoreResult};

fn thresholds(text: &str) -> StoreResult<Vec<u32>> {
    parse_thresholds(text).ok_or_else(|| corrupt("threshold_days is malformed"))
}

pub(crate) async fn insert_webhook(
    conn: &mut SqliteConnection,
    sub: &WebhookSubscription,
) -> StoreResult<()> {
    let done = query(
        "INSERT INTO webhook_subscriptions (id, tenant_id, url, display_name, threshold_days, \
         sealed_secret, kek_id, created_at, paused_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ?)",
    )
    .bind(id(sub.id))
    .bind(id(sub.tenant_id))
    .bind(&sub.url)
    .bind(&sub.display_name)
    .bind(thresholds_text(&sub.threshold_days))
    .bind(sub.sealed_secret.as_slice())
    .bind(&sub.kek_id)
    .bind(micros(sub.created_at)?)
    .bind(sub.paused_at.map(micros).transpose()?)
    .bind(id(sub.tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        super::error::unique(e, |_| {
            format!("a webhook with id {} already exists", sub.id)
        })
    })?;
    found(done.rows_affected(), "tenant")
}

pub(crate) async fn delete_webhook(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    webhook: Uuid,
) -> StoreResult<()> {
    let done = query("DELETE FROM webhook_subscriptions WHERE id = ? AND tenant_id = ?")
        .bind(id(webhook))
        .bind(id(tenant_id))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    found(done.rows_affected(), "webhook")
}

pub(crate) async fn set_webhook_paused(
    conn: &mut SqliteConnection,
    tenant_id: Uuid,
    webhook: Uuid,
    paused_at: Option<OffsetDateTime>,
) -> StoreResult<()> {
    let done = query(
        "UPDATE webhook_subscriptions SET paused_at = CASE WHEN ?1 IS NULL THEN NULL \
         ELSE coalesce(paused_at, ?1) END WHERE id = ?2 AND tenant_id = ?3",
    )
    .bind(paused_at.map(micros).transpose()?)
    .bind(id(webhook))
    .bind(id(tenant_id))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    found(done.rows_affected(), "webhook")
}

const SUBSCRIPTION_COLUMNS: &str = "id, tenant_id, url, display_name, threshold_days, \
     sealed_secret, kek_id, created_at, paused_at";

pub(crate) async fn webhooks(
    pool: &SqlitePool,
    tenant_id: Uuid,
    only: Option<Uuid>,
) -> StoreResult<Vec<WebhookSubscription>> {
    let rows = sqlx::query(&format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
         WHERE tenant_id = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY created_at, id"
    ))
    .bind(id(tenant_id))
    .bind(only.map(id))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(subscription).collect()
}

fn subscription(row: &SqliteRow) -> StoreResult<WebhookSubscription> {
    Ok(WebhookSubscription {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        url: get(row, "url")?,
        display_name: get(row, "display_name")?,
        threshold_days: thresholds(&get::<String>(row, "threshold_days")?)?,
        sealed_secret: get(row, "sealed_secret")?,
        kek_id: get(row, "kek_id")?,
        created_at: from_unix_micros(get(row, "created_at")?)?,
        paused_at: get::<Option<i64>>(row, "paused_at")?
            .map(from_unix_micros)
            .transpose()?,
    })
}

pub(crate) async fn expiring_credentials(
    pool: &SqlitePool,
    tenant_id: Uuid,
    until: OffsetDateTime,
) -> StoreResult<Vec<ExpiringCredential>> {
    let rows = sqlx::query(
        "SELECT a.tenant_id, a.id AS application_id, a.app_id, a.display_name AS application_name, \
                c.key_id, c.display_name, c.hint, c.start_at, c.end_at, \
                (SELECT group_concat(n.threshold_days) FROM expiry_notices n \
                 WHERE n.key_id = c.key_id) AS noticed \
         FROM password_credentials c JOIN applications a ON a.id = c.application_id \
         WHERE a.tenant_id = ?1 AND c.end_at <= ?2 AND NOT EXISTS \
           (SELECT 1 FROM expiry_notices n WHERE n.key_id = c.key_id AND n.threshold_days = 0) \
         ORDER BY c.end_at, c.key_id",
    )
    .bind(id(tenant_id))
    .bind(micros(until)?)
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
                noticed: thresholds(&get::<Option<String>>(row, "noticed")?.unwrap_or_default())?,
            })
        })
        .collect()
}

pub(crate) async fn credential_ends(pool: &SqlitePool) -> StoreResult<Vec<CredentialEnd>> {
    let rows = sqlx::query(
        "SELECT a.tenant_id, a.app_id, c.key_id, c.end_at \
         FROM password_credentials c JOIN applications a ON a.id = c.application_id \
         ORDER BY a.tenant_id, a.app_id, c.key_id",
    )
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
    pool: &SqlitePool,
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
        let mut conn = pool.acquire().await.map_err(db)?;
        let outcome = record_notice_on(&mut conn, &notice, &deliveries, &audit).await;
        super::discard_if_failed(&mut conn, &outcome);
        outcome
    })
    .await
    .map_err(|e| StoreError::Internal(Box::new(e)))?
}

async fn record_notice_on(
    conn: &mut SqliteConnection,
    notice: &ExpiryNotice,
    deliveries: &[WebhookDelivery],
    audit: &[AuditEvent],
) -> StoreResult<bool> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let done = query(
        "INSERT INTO expiry_notices (tenant_id, application_id, key_id, threshold_days, \
             noticed_at) SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM \
             password_credentials c JOIN applications a ON a.id = c.application_id \
             WHERE c.key_id = ?3 AND a.id = ?2 AND a.tenant_id = ?1) \
             ON CONFLICT DO NOTHING",
    )
    .bind(id(notice.tenant_id))
    .bind(id(notice.application_id))
    .bind(id(notice.key_id))
    .bind(i64::from(notice.kind.days()))
    .bind(micros(notice.at)?)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if done.rows_affected() == 0 {
        tx.rollback().await.map_err(db)?;
        return Ok(false);
    }
    for d in deliveries {
        insert_delivery(&mut tx, d).await?;
    }
    insert_audit(&mut tx, audit).await?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// [`Mutation::InsertWebhookDelivery`](crate::Mutation::InsertWebhookDelivery).
pub(crate) async fn record_delivery(
    conn: &mut SqliteConnection,
    d: &WebhookDelivery,
) -> StoreResult<()> {
    let subscribed = query("SELECT 1 FROM webhook_subscriptions WHERE id = ? AND tenant_id = ?")
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

async fn insert_delivery(conn: &mut SqliteConnection, d: &WebhookDelivery) -> StoreResult<()> {
    query(
        "INSERT INTO webhook_deliveries (id, tenant_id, subscription_id, event_type, key_id, \
         payload, status, attempts, last_status, last_error, created_at, last_attempt_at, \
         next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id(d.id))
    .bind(id(d.tenant_id))
    .bind(id(d.subscription_id))
    .bind(&d.event_type)
    .bind(id(d.key_id))
    .bind(&d.payload)
    .bind(d.status.as_str())
    .bind(i64::from(d.attempts))
    .bind(d.last_status.map(i64::from))
    .bind(&d.last_error)
    .bind(micros(d.created_at)?)
    .bind(d.last_attempt_at.map(micros).transpose()?)
    .bind(d.next_attempt_at.map(micros).transpose()?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "d.id, d.tenant_id, d.subscription_id, d.event_type, d.key_id, \
     d.payload, d.status, d.attempts, d.last_status, d.last_error, d.created_at, \
     d.last_attempt_at, d.next_attempt_at";

pub(crate) async fn claim(
    pool: &SqlitePool,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let pool = pool.clone();
    let (now, lease_until) = (micros(now)?, micros(lease_until)?);
    tokio::spawn(async move {
        let mut conn = pool.acquire().await.map_err(db)?;
        let outcome = claim_on(&mut conn, now, lease_until, limit).await;
        super::discard_if_failed(&mut conn, &outcome);
        outcome
    })
    .await
    .map_err(|e| StoreError::Internal(Box::new(e)))?
}

async fn claim_on(
    conn: &mut SqliteConnection,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS}, s.url, s.sealed_secret FROM webhook_deliveries d \
             JOIN webhook_subscriptions s ON s.id = d.subscription_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND s.paused_at IS NULL \
             ORDER BY d.next_attempt_at, d.id LIMIT ?"
    ))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut due = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut delivery = delivery(row)?;
        query("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?")
            .bind(lease_until)
            .bind(id(delivery.id))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        delivery.next_attempt_at = Some(from_unix_micros(lease_until)?);
        due.push(DueDelivery {
            delivery,
            url: get(row, "url")?,
            sealed_secret: get(row, "sealed_secret")?,
        });
    }
    tx.commit().await.map_err(db)?;
    Ok(due)
}

pub(crate) async fn finish(
    pool: &SqlitePool,
    delivery: Uuid,
    a: &DeliveryAttempt,
) -> StoreResult<bool> {
    let done = query(
        "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, \
         last_attempt_at = ?, next_attempt_at = ? \
         WHERE id = ? AND status = 'pending' AND attempts = ?",
    )
    .bind(a.status.as_str())
    .bind(i64::from(a.attempt))
    .bind(a.http_status.map(i64::from))
    .bind(&a.error)
    .bind(micros(a.at)?)
    .bind(a.next_attempt_at.map(micros).transpose()?)
    .bind(id(delivery))
    .bind(i64::from(a.attempt.saturating_sub(1)))
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn deliveries(
    pool: &SqlitePool,
    q: &DeliveryQuery,
) -> StoreResult<Vec<WebhookDelivery>> {
    let (before_at, before_id) = match q.before {
        Some((at, bid)) => (Some(micros(at)?), Some(id(bid))),
        None => (None, None),
    };
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
         WHERE d.tenant_id = ?1 AND d.subscription_id = ?2 \
           AND (?3 IS NULL OR d.created_at < ?3 OR (d.created_at = ?3 AND d.id < ?4)) \
         ORDER BY d.created_at DESC, d.id DESC LIMIT ?5"
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

fn delivery(row: &SqliteRow) -> StoreResult<WebhookDelivery> {
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
        attempts: u32::try_from(get::<i64>(row, "attempts")?)
            .map_err(|_| corrupt("webhook_deliveries.attempts is out of range"))?,
        last_status: get::<Option<i64>>(row, "last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: get(row, "last_error")?,
        created_at: from_unix_micros(get(row, "created_at")?)?,
        last_attempt_at: time("last_attempt_at")?,
        next_attempt_at: time("next_attempt_at")?,
    })
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(db)
}

fn uuid(row: &SqliteRow, column: &str) -> StoreResult<Uuid> {
    Uuid::try_parse(&get::<String>(row, column)?)
        .map_err(|_| corrupt(format!("{column} holds a bad id")))
}
