//! What `clavis store copy` moves, table by table: every table of the
//! schema is listed here with its columns and their kinds, either copied
//! row for row or skipped for a stated reason. Each backend reads and
//! writes rows of these tables in the neutral [`Cell`] form, so a copy
//! between SQLite and PostgreSQL (either way) carries every column.
//!
//! A table or column the schema has and this list lacks makes the copy
//! refuse to start ([`unknown_to_copy`]), and the store suite fails on it,
//! so a new migration cannot be left behind silently.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// How a column's values are stored (SQLite / PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TEXT (hyphenated) / UUID.
    Uuid,
    /// TEXT / TEXT.
    Text,
    /// INTEGER / INTEGER or BIGINT.
    Int,
    /// INTEGER 0 or 1 / BOOLEAN.
    Bool,
    /// INTEGER unix microseconds / TIMESTAMPTZ.
    Time,
    /// BLOB / BYTEA.
    Bytes,
    /// TEXT / JSONB.
    Json,
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// What the copy does with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Every row, every column.
    Copy,
    /// Nothing, for the reason given (shown by the copy).
    Skip(&'static str),
}

/// One table of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub treatment: Treatment,
}

impl Table {
    /// The column names, comma-separated, in order.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn copied(&self) -> bool {
        self.treatment == Treatment::Copy
    }
}

/// One value in its neutral form. Times are unix microseconds (both
/// backends keep microseconds).
#[derive(Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Uuid(Uuid),
    Text(String),
    Int(i64),
    Bool(bool),
    Time(i64),
    Bytes(Vec<u8>),
    Json(String),
}

/// Values are table data (hashes, sealed keys): never printed.
impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cell::Null => "Null",
            Cell::Uuid(_) => "Uuid(..)",
            Cell::Text(_) => "Text(..)",
            Cell::Int(_) => "Int(..)",
            Cell::Bool(_) => "Bool(..)",
            Cell::Time(_) => "Time(..)",
            Cell::Bytes(_) => "Bytes(..)",
            Cell::Json(_) => "Json(..)",
        })
    }
}

/// One row: a cell per column of its table, in the table's order.
pub type Row = Vec<Cell>;

/// What an export sends and an import takes: rows of a table, in batches,
/// then `Done` once every table was sent. An import that sees its channel
/// close without `Done` rolls everything back.
#[derive(Debug)]
pub enum Batch {
    Rows(&'static Table, Vec<Row>),
    Done,
}

/// Rows per batch (and per INSERT: at most 18 columns, well under both
/// backends' bind limits).
pub const BATCH_ROWS: usize = 500;

const fn c(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

use Kind::{Bool, Bytes, Int, Json, Text, Time};

/// Every table of the schema, parents before children (the order a copy
/// inserts them in, so foreign keys hold at every step).
pub const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        columns: &[
            c("id", Kind::Uuid),
            c("name", Text),
            c("signing_alg", Text),
            c("max_secret_lifetime_secs", Int),
            c("default_secret_lifetime_secs", Int),
            c("created_at", Time),
            c("max_secrets_per_application", Int),
            c("password_credentials_allowed", Bool),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "applications",
        columns: &[
            c("id", Kind::Uuid),
            c("tenant_id", Kind::Uuid),
            c("app_id", Kind::Uuid),
            c("service_principal_id", Kind::Uuid),
            c("display_name", Text),
            c("app_roles", Json),
            c("builtin", Bool),
            c("created_at", Time),
            c("policy_max_lifetime_secs", Int),
            c("policy_default_lifetime_secs", Int),
            c("policy_max_secrets", Int),
            c("policy_password_credentials_allowed", Bool),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "application_identifier_uris",
        columns: &[
            c("tenant_id", Kind::Uuid),
            c("application_id", Kind::Uuid),
            c("position", Int),
            c("uri", Text),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "application_owners",
        columns: &[
            c("application_id", Kind::Uuid),
            c("position", Int),
            c("owner_id", Kind::Uuid),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "password_credentials",
        columns: &[
            c("key_id", Kind::Uuid),
            c("application_id", Kind::Uuid),
            c("display_name", Text),
            c("hint", Text),
            c("secret_hash", Bytes),
            c("start_at", Time),
            c("end_at", Time),
            c("created_at", Time),
            c("last_used_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "app_role_assignments",
        columns: &[
            c("id", Kind::Uuid),
            c("tenant_id", Kind::Uuid),
            c("principal_id", Kind::Uuid),
            c("resource_id", Kind::Uuid),
            c("app_role_id", Kind::Uuid),
            c("created_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "signing_keys",
        columns: &[
            c("kid", Text),
            c("tenant_id", Kind::Uuid),
            c("alg", Text),
            c("public_jwk", Text),
            c("encrypted_private_key", Bytes),
            c("kek_id", Text),
            c("created_at", Time),
            c("activates_at", Time),
            c("revoked_at", Time),
            c("certificate", Bytes),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "server_secrets",
        columns: &[c("name", Text), c("value", Bytes)],
        treatment: Treatment::Copy,
    },
    Table {
        name: "audit_events",
        columns: &[
            c("id", Kind::Uuid),
            c("tenant_id", Kind::Uuid),
            c("at", Time),
            c("actor_app_id", Kind::Uuid),
            c("actor_service_principal_id", Kind::Uuid),
            c("actor_display_name", Text),
            c("actor_key_id", Kind::Uuid),
            c("client_ip", Text),
            c("activity", Text),
            c("category", Text),
            c("operation_type", Text),
            c("target_type", Text),
            c("target_id", Text),
            c("target_display_name", Text),
            c("target_key_id", Kind::Uuid),
            c("result", Text),
            c("result_reason", Text),
            c("correlation_id", Kind::Uuid),
            c("client_request_id", Text),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "revoked_tokens",
        columns: &[
            c("tenant_id", Kind::Uuid),
            c("jti", Kind::Uuid),
            c("expires_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "token_cutoffs",
        columns: &[
            c("tenant_id", Kind::Uuid),
            c("application_id", Kind::Uuid),
            c("revoked_until", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "sign_ins",
        columns: &[
            c("id", Kind::Uuid),
            c("tenant_id", Kind::Uuid),
            c("at", Time),
            c("app_id", Kind::Uuid),
            c("key_id", Kind::Uuid),
            c("resource", Kind::Uuid),
            c("client_ip", Text),
            c("user_agent", Text),
            c("result", Text),
            c("error_code", Int),
            c("count", Int),
            c("last_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "webhook_subscriptions",
        columns: &[
            c("id", Kind::Uuid),
            c("tenant_id", Kind::Uuid),
            c("url", Text),
            c("display_name", Text),
            c("threshold_days", Text),
            c("sealed_secret", Bytes),
            c("kek_id", Text),
            c("created_at", Time),
            c("paused_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "expiry_notices",
        columns: &[
            c("tenant_id", Kind::Uuid),
            c("application_id", Kind::Uuid),
            c("key_id", Kind::Uuid),
            c("threshold_days", Int),
            c("noticed_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "webhook_deliveries",
        columns: &[
            c("id", Kind::Uuid),
            c("tenant_id", Kind::Uuid),
            c("subscription_id", Kind::Uuid),
            c("event_type", Text),
            c("key_id", Kind::Uuid),
            c("payload", Text),
            c("status", Text),
            c("attempts", Int),
            c("last_status", Int),
            c("last_error", Text),
            c("created_at", Time),
            c("last_attempt_at", Time),
            c("next_attempt_at", Time),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "auth_failures",
        columns: &[
            c("key", Text),
            c("window_start", Int),
            c("count", Int),
        ],
        treatment: Treatment::Copy,
    },
    Table {
        name: "cluster_nodes",
        columns: &[
            c("node_id", Kind::Uuid),
            c("host", Text),
            c("listen", Text),
            c("public_url", Text),
            c("kek_ids", Text),
            c("sealing_kek_id", Text),
            c("started_at", Time),
            c("last_seen_at", Time),
        ],
        treatment: Treatment::Skip(
            "heartbeats of the source's servers, which must be stopped; the destination's servers write their own",
        ),
    },
    Table {
        name: "installation_kek",
        columns: &[c("id", Int), c("kek_id", Text), c("chosen_at", Time)],
        treatment: Treatment::Copy,
    },
];

/// The table called `name`, if the copy knows it.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// What the copy would get wrong on a schema whose tables and columns are
/// `schema` (as [`Store::schema_tables`](crate::Store::schema_tables) lists
/// them): tables it does not know, columns of known tables it does not
/// know (they would be left behind), columns it expects that are missing.
/// Empty when the copy and the schema agree.
pub fn unknown_to_copy(schema: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, columns) in schema {
        match table(name) {
            None => problems.push(format!("table {name}")),
            Some(known) => {
                let expected: BTreeSet<&str> = known.columns.iter().map(|c| c.name).collect();
                for column in columns {
                    if !expected.contains(column.as_str()) {
                        problems.push(format!("column {name}.{column}"));
                    }
                }
                for column in expected {
                    if !columns.contains(column) {
                        problems.push(format!("column {name}.{column} (expected, missing)"));
                    }
                }
            }
        }
    }
    for known in TABLES {
        if !schema.contains_key(known.name) {
            problems.push(format!("table {} (expected, missing)", known.name));
        }
    }
    problems
}

/// Copy every row of every table the copy keeps ([`Treatment::Copy`]) from
/// `from` into `to`, in one transaction on `to`: all of it or, on any
/// error, nothing. Returns the rows copied per table, in [`TABLES`] order.
/// The caller checks first that `to` is empty and that nothing writes to
/// `from` meanwhile.
pub async fn copy_rows(
    from: &dyn crate::Store,
    to: &dyn crate::Store,
) -> crate::StoreResult<Vec<(&'static Table, u64)>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let export = async move {
        let mut counts = Vec::new();
        for table in TABLES.iter().filter(|t| t.copied()) {
            counts.push((table, from.export_rows(table, &tx).await?));
        }
        // Without `Done` (an error above drops `tx`), the import rolls back.
        tx.send(Batch::Done).await.map_err(|_| {
            crate::StoreError::Internal("the destination stopped taking rows".into())
        })?;
        Ok::<_, crate::StoreError>(counts)
    };
    let (imported, exported) = tokio::join!(to.import_rows(rx), export);
    // The import's error is the cause when both fail (the export then
    // only saw the channel close).
    let imported = imported?;
    let counts = exported?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if imported != total {
        return Err(crate::StoreError::Internal(
            format!("{total} rows read but {imported} written").into(),
        ));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(tables: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        tables
            .iter()
            .map(|(t, cols)| (t.to_string(), cols.iter().map(|c| c.to_string()).collect()))
            .collect()
    }

    fn full() -> BTreeMap<String, BTreeSet<String>> {
        TABLES
            .iter()
            .map(|t| {
                (
                    t.name.to_owned(),
                    t.columns.iter().map(|c| c.name.to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_schema_matching_the_list_has_no_problems() {
        assert!(unknown_to_copy(&full()).is_empty());
    }

    #[test]
    fn a_new_table_or_column_is_named() {
        let mut s = full();
        s.extend(schema(&[("sign_in_buckets", &["minute"])]));
        s.get_mut("tenants").unwrap().insert("motto".into());
        s.get_mut("revoked_tokens").unwrap().remove("expires_at");
        assert_eq!(
            unknown_to_copy(&s),
            [
                "column revoked_tokens.expires_at (expected, missing)",
                "table sign_in_buckets",
                "column tenants.motto",
            ]
        );
    }

    #[test]
    fn names_are_unique_and_batches_fit_the_bind_limits() {
        let names: BTreeSet<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TABLES.len());
        let widest = TABLES.iter().map(|t| t.columns.len()).max().unwrap();
        // SQLite allows 32766 bound values per statement, PostgreSQL 65535.
        assert!(widest * BATCH_ROWS < 32_766);
    }
}
