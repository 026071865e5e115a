//! `clavis store copy` on PostgreSQL: the schema's tables and columns, row
//! counts, and the rows of any table in the neutral form of
//! [`crate::copy`] — read through a cursor in one read-only transaction,
//! written in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::mpsc;

use super::codec::{PgJson, PgTime, PgUuid};
use super::error::{corrupt, db};
use crate::copy::{Batch, Cell, Kind, Table, BATCH_ROWS};
use crate::StoreResult;

/// Every base table of the current schema with its columns, except sqlx's.
pub(crate) async fn schema_tables(
    pool: &PgPool,
) -> StoreResult<BTreeMap<String, BTreeSet<String>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in rows {
        tables.entry(table).or_default().insert(column);
    }
    Ok(tables)
}

pub(crate) async fn count(pool: &PgPool, table: &Table) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", table.name))
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The select list: integers widened to `int8`, JSON as `jsonb`.
fn select_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| match c.kind {
            Kind::Int => format!("{}::int8", c.name),
            Kind::Json => format!("{}::jsonb", c.name),
            _ => c.name.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Send every row of `table` to `out`, in batches; how many rows.
pub(crate) async fn export(
    pool: &PgPool,
    table: &'static Table,
    out: &mpsc::Sender<Batch>,
) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let cursor = format!("clavis_copy_{}", table.name);
    sqlx::query(&format!(
        "DECLARE {cursor} NO SCROLL CURSOR FOR SELECT {} FROM {}",
        select_list(table),
        table.name
    ))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let fetch = format!("FETCH {BATCH_ROWS} FROM {cursor}");
    let mut sent = 0u64;
    loop {
        // Not cached: the statement's row shape is the cursor's.
        let rows = sqlx::query(&fetch)
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if rows.is_empty() {
            break;
        }
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

fn decode(table: &Table, row: &PgRow) -> StoreResult<Vec<Cell>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let cell = match column.kind {
                Kind::Uuid => opt(row.try_get::<Option<PgUuid>, _>(i).map_err(db)?, |u| {
                    Cell::Uuid(u.0)
                }),
                Kind::Text => opt(row.try_get(i).map_err(db)?, Cell::Text),
                Kind::Json => opt(row.try_get::<Option<PgJson>, _>(i).map_err(db)?, |j| {
                    Cell::Json(j.into_text())
                }),
                Kind::Int => opt(row.try_get(i).map_err(db)?, Cell::Int),
                Kind::Bool => opt(row.try_get(i).map_err(db)?, Cell::Bool),
                Kind::Bytes => opt(row.try_get(i).map_err(db)?, Cell::Bytes),
                Kind::Time => match row.try_get::<Option<PgTime>, _>(i).map_err(db)? {
                    None => Cell::Null,
                    Some(at) => Cell::Time(at.unix_micros().ok_or_else(|| {
                        corrupt(format!(
                            "column {}.{} holds no valid timestamp",
                            table.name, column.name
                        ))
                    })?),
                },
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
pub(crate) async fn import(pool: &PgPool, mut batches: mpsc::Receiver<Batch>) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(db)?;
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

async fn insert(conn: &mut PgConnection, table: &Table, rows: &[Vec<Cell>]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut bad_time = false;
    let mut insert = sqlx::QueryBuilder::new(format!(
        "INSERT INTO {} ({}) ",
        table.name,
        table.column_list()
    ));
    insert.push_values(rows, |mut values, row| {
        for (cell, column) in row.iter().zip(table.columns) {
            // A NULL is typed like its column, so that every row of the
            // VALUES list has the same types.
            match (cell, column.kind) {
                (Cell::Null, Kind::Uuid) => values.push_bind(None::<PgUuid>),
                (Cell::Null, Kind::Text) => values.push_bind(None::<String>),
                (Cell::Null, Kind::Int) => values.push_bind(None::<i64>),
                (Cell::Null, Kind::Bool) => values.push_bind(None::<bool>),
                (Cell::Null, Kind::Time) => values.push_bind(None::<PgTime>),
                (Cell::Null, Kind::Bytes) => values.push_bind(None::<Vec<u8>>),
                (Cell::Null, Kind::Json) => values.push_bind(None::<PgJson>),
                (Cell::Uuid(u), _) => values.push_bind(PgUuid(*u)),
                (Cell::Text(t), _) => values.push_bind(t.clone()),
                (Cell::Json(t), _) => values.push_bind(PgJson::new(t.clone())),
                (Cell::Int(n), _) => values.push_bind(*n),
                (Cell::Bool(b), _) => values.push_bind(*b),
                (Cell::Bytes(b), _) => values.push_bind(b.clone()),
                (Cell::Time(micros), _) => match PgTime::from_unix_micros(*micros) {
                    Some(at) => values.push_bind(at),
                    None => {
                        bad_time = true;
                        values.push_bind(None::<PgTime>)
                    }
                },
            };
        }
    });
    if bad_time {
        return Err(corrupt(format!(
            "a timestamp of table {} is out of PostgreSQL's range",
            table.name
        )));
    }
    insert
        .build()
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(db)
}
