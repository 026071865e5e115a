//! `clavis store copy` on SQLite: the schema's tables and columns, row
//! counts, and the rows of any table in the neutral form of
//! [`crate::copy`] — read page by page (by rowid) in one read transaction,
//! written in one write transaction.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqlitePool};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::codec::id;
use super::error::{corrupt, db};
use crate::copy::{Batch, Cell, Kind, Table, BATCH_ROWS};
use crate::StoreResult;

/// Every table with its columns, except sqlx's and SQLite's own.
pub(crate) async fn schema_tables(
    pool: &SqlitePool,
) -> StoreResult<BTreeMap<String, BTreeSet<String>>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut tables = BTreeMap::new();
    for name in names {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(&name)
            .fetch_all(pool)
            .await
            .map_err(db)?;
        tables.insert(name, columns.into_iter().collect());
    }
    Ok(tables)
}

pub(crate) async fn count(pool: &SqlitePool, table: &Table) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table.name))
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Send every row of `table` to `out`, in batches; how many rows.
pub(crate) async fn export(
    pool: &SqlitePool,
    table: &'static Table,
    out: &mpsc::Sender<Batch>,
) -> StoreResult<u64> {
    let mut conn = pool.acquire().await.map_err(db)?;
    // One snapshot for every page.
    let mut tx = conn.begin().await.map_err(db)?;
    let sql = format!(
        "SELECT rowid, {} FROM {} WHERE rowid > ? ORDER BY rowid LIMIT {BATCH_ROWS}",
        table.column_list(),
        table.name
    );
    let (mut after, mut sent) = (i64::MIN, 0u64);
    loop {
        let rows = sqlx::query(&sql)
            .bind(after)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0).map_err(db)?;
        let batch = rows
            .iter()
            .map(|row| decode(table, row))
            .collect::<StoreResult<Vec<_>>>()?;
        sent += batch.len() as u64;
        out.send(Batch::Rows(table, batch))
            .await
            .map_err(|_| corrupt("the copy's destination stopped taking rows"))?;
    }
    tx.commit().await.map_err(db)?;
    Ok(sent)
}

fn decode(table: &Table, row: &SqliteRow) -> StoreResult<Vec<Cell>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let i = i + 1; // after the rowid
            let cell = match column.kind {
                Kind::Uuid => match row.try_get::<Option<String>, _>(i).map_err(db)? {
                    None => Cell::Null,
                    Some(text) => Cell::Uuid(Uuid::parse_str(&text).map_err(|_| {
                        corrupt(format!(
                            "column {}.{} holds no UUID",
                            table.name, column.name
                        ))
                    })?),
                },
                Kind::Text => opt(row.try_get(i).map_err(db)?, Cell::Text),
                Kind::Json => opt(row.try_get(i).map_err(db)?, Cell::Json),
                Kind::Int => opt(row.try_get(i).map_err(db)?, Cell::Int),
                Kind::Time => opt(row.try_get(i).map_err(db)?, Cell::Time),
                Kind::Bool => opt(row.try_get::<Option<i64>, _>(i).map_err(db)?, |v| {
                    Cell::Bool(v != 0)
                }),
                Kind::Bytes => opt(row.try_get(i).map_err(db)?, Cell::Bytes),
            };
            Ok(cell)
        })
        .collect()
}

fn opt<T>(value: Option<T>, cell: impl FnOnce(T) -> Cell) -> Cell {
    value.map_or(Cell::Null, cell)
}

/// Insert every batch until `Done`, in one transaction; how many rows.
/// Nothing stays if the channel closes first or an insert fails.
pub(crate) async fn import(
    pool: &SqlitePool,
    mut batches: mpsc::Receiver<Batch>,
) -> StoreResult<u64> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let mut tx = conn.begin().await.map_err(db)?;
    let mut written = 0u64;
    loop {
        match batches.recv().await {
            Some(Batch::Rows(table, rows)) => {
                insert(&mut tx, table, &rows).await?;
                written += rows.len() as u64;
            }
            Some(Batch::Done) => break,
            None => return Err(corrupt("the copy's source stopped before the end")),
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(written)
}

async fn insert(
    conn: &mut sqlx::SqliteConnection,
    table: &Table,
    rows: &[Vec<Cell>],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::new(format!(
        "INSERT INTO {} ({}) ",
        table.name,
        table.column_list()
    ));
    insert.push_values(rows, |mut values, row| {
        for cell in row {
            match cell {
                Cell::Null => values.push_bind(None::<i64>),
                Cell::Uuid(u) => values.push_bind(id(*u)),
                Cell::Text(t) | Cell::Json(t) => values.push_bind(t.clone()),
                Cell::Int(n) | Cell::Time(n) => values.push_bind(*n),
                Cell::Bool(b) => values.push_bind(i64::from(*b)),
                Cell::Bytes(b) => values.push_bind(b.clone()),
            };
        }
    });
    insert.build().execute(conn).await.map(|_| ()).map_err(db)
}
