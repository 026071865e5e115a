//! Heartbeat rows of the nodes using this store and the installation's
//! key-encryption key (see [`crate::nodes`]).

use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{id, micros};
use super::error::{corrupt, db};
use crate::nodes::{kek_ids_parse, kek_ids_text, NodeRecord};
use crate::StoreResult;

/// Insert or replace `node`'s row and forget nodes not seen since
/// `forget_before`, in one transaction (in a task of its own).
pub(crate) async fn record(
    pool: &SqlitePool,
    node: &NodeRecord,
    forget_before: OffsetDateTime,
) -> StoreResult<()> {
    let pool = pool.clone();
    let node = node.clone();
    tokio::spawn(async move {
        let mut conn = pool.acquire().await.map_err(db)?;
        let outcome = record_on(&mut conn, &node, forget_before).await;
        super::discard_if_failed(&mut conn, &outcome);
        outcome
    })
    .await
    .map_err(|e| crate::StoreError::Internal(Box::new(e)))?
}

async fn record_on(
    conn: &mut SqliteConnection,
    node: &NodeRecord,
    forget_before: OffsetDateTime,
) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query(
        "INSERT INTO cluster_nodes (node_id, host, listen, public_url, kek_ids, sealing_kek_id, \
         started_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (node_id) DO UPDATE SET host = excluded.host, listen = excluded.listen, \
         public_url = excluded.public_url, kek_ids = excluded.kek_ids, \
         sealing_kek_id = excluded.sealing_kek_id, last_seen_at = excluded.last_seen_at",
    )
    .bind(id(node.node_id))
    .bind(&node.host)
    .bind(&node.listen)
    .bind(&node.public_url)
    .bind(kek_ids_text(&node.kek_ids))
    .bind(&node.sealing_kek_id)
    .bind(micros(node.started_at)?)
    .bind(micros(node.last_seen_at)?)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    sqlx::query("DELETE FROM cluster_nodes WHERE last_seen_at < ?")
        .bind(micros(forget_before)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Every node's row, oldest start first.
pub(crate) async fn list(pool: &SqlitePool) -> StoreResult<Vec<NodeRecord>> {
    let rows = sqlx::query(
        "SELECT node_id, host, listen, public_url, kek_ids, sealing_kek_id, started_at, \
         last_seen_at FROM cluster_nodes ORDER BY started_at, node_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            let time = |column: &'static str| -> StoreResult<OffsetDateTime> {
                let micros: i64 = r.try_get(column).map_err(db)?;
                crate::from_unix_micros(micros)
                    .map_err(|_| corrupt(format!("column {column} holds no valid timestamp")))
            };
            let node_id: String = r.try_get("node_id").map_err(db)?;
            Ok(NodeRecord {
                node_id: Uuid::parse_str(&node_id)
                    .map_err(|_| corrupt("column node_id holds no UUID"))?,
                host: r.try_get("host").map_err(db)?,
                listen: r.try_get("listen").map_err(db)?,
                public_url: r.try_get("public_url").map_err(db)?,
                kek_ids: kek_ids_parse(&r.try_get::<String, _>("kek_ids").map_err(db)?)?,
                sealing_kek_id: r.try_get("sealing_kek_id").map_err(db)?,
                started_at: time("started_at")?,
                last_seen_at: time("last_seen_at")?,
            })
        })
        .collect()
}

/// Delete a node's row.
pub(crate) async fn remove(pool: &SqlitePool, node_id: Uuid) -> StoreResult<()> {
    sqlx::query("DELETE FROM cluster_nodes WHERE node_id = ?")
        .bind(id(node_id))
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(db)
}

/// The installation's key-encryption key, `candidate` if there was none.
pub(crate) async fn installation_kek_or_insert(
    pool: &SqlitePool,
    candidate: &str,
    at: OffsetDateTime,
) -> StoreResult<String> {
    sqlx::query(
        "INSERT INTO installation_kek (id, kek_id, chosen_at) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(candidate)
    .bind(micros(at)?)
    .execute(pool)
    .await
    .map_err(db)?;
    sqlx::query_scalar("SELECT kek_id FROM installation_kek WHERE id = 1")
        .fetch_one(pool)
        .await
        .map_err(db)
}

/// [`Mutation::SetInstallationKek`](crate::Mutation::SetInstallationKek),
/// inside the commit's transaction.
pub(crate) async fn set_installation_kek(
    conn: &mut SqliteConnection,
    kek_id: &str,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO installation_kek (id, kek_id, chosen_at) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET kek_id = excluded.kek_id, chosen_at = excluded.chosen_at",
    )
    .bind(kek_id)
    .bind(micros(at)?)
    .execute(&mut *conn)
    .await
    .map(|_| ())
    .map_err(db)
}
