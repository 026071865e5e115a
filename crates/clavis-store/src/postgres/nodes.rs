//! Heartbeat rows of the nodes using this database and the installation's
//! key-encryption key (see [`crate::nodes`]).

use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::codec::{id, parse_time, time, PgTime, PgUuid};
use super::error::db;
use crate::nodes::{kek_ids_parse, kek_ids_text, NodeRecord};
use crate::StoreResult;

/// Insert or replace `node`'s row and forget nodes not seen since
/// `forget_before`, in one transaction (in a task of its own).
pub(crate) async fn record(
    pool: &PgPool,
    node: &NodeRecord,
    forget_before: OffsetDateTime,
) -> StoreResult<()> {
    let pool = pool.clone();
    let node = node.clone();
    tokio::spawn(async move {
        let mut tx = pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO cluster_nodes (node_id, host, listen, public_url, kek_ids, \
             sealing_kek_id, started_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
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
        .bind(time(node.started_at)?)
        .bind(time(node.last_seen_at)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM cluster_nodes WHERE last_seen_at < $1")
            .bind(time(forget_before)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    })
    .await
    .map_err(|e| crate::StoreError::Internal(Box::new(e)))?
}

/// Every node's row, oldest start first.
pub(crate) async fn list(pool: &PgPool) -> StoreResult<Vec<NodeRecord>> {
    let rows = sqlx::query(
        "SELECT node_id, host, listen, public_url, kek_ids, sealing_kek_id, started_at, \
         last_seen_at FROM cluster_nodes ORDER BY started_at, node_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(NodeRecord {
                node_id: r.try_get::<PgUuid, _>("node_id").map_err(db)?.0,
                host: r.try_get("host").map_err(db)?,
                listen: r.try_get("listen").map_err(db)?,
                public_url: r.try_get("public_url").map_err(db)?,
                kek_ids: kek_ids_parse(&r.try_get::<String, _>("kek_ids").map_err(db)?)?,
                sealing_kek_id: r.try_get("sealing_kek_id").map_err(db)?,
                started_at: parse_time("started_at", r.try_get("started_at").map_err(db)?)?,
                last_seen_at: parse_time(
                    "last_seen_at",
                    r.try_get::<PgTime, _>("last_seen_at").map_err(db)?,
                )?,
            })
        })
        .collect()
}

/// Delete a node's row.
pub(crate) async fn remove(pool: &PgPool, node_id: Uuid) -> StoreResult<()> {
    sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1")
        .bind(id(node_id))
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(db)
}

/// The installation's key-encryption key, `candidate` if there was none.
/// A racing insert waits on the primary key, then does nothing; the read
/// after it sees the winner.
pub(crate) async fn installation_kek_or_insert(
    pool: &PgPool,
    candidate: &str,
    at: OffsetDateTime,
) -> StoreResult<String> {
    sqlx::query(
        "INSERT INTO installation_kek (id, kek_id, chosen_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(candidate)
    .bind(time(at)?)
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
    conn: &mut PgConnection,
    kek_id: &str,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO installation_kek (id, kek_id, chosen_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET kek_id = excluded.kek_id, chosen_at = excluded.chosen_at",
    )
    .bind(kek_id)
    .bind(time(at)?)
    .execute(&mut *conn)
    .await
    .map(|_| ())
    .map_err(db)
}
