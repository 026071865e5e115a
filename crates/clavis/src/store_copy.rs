//! `clavis store copy --from URL --to URL`: move a whole installation from
//! one store to another (typically the embedded SQLite default to
//! PostgreSQL, or back) with nothing lost. Every table of the schema is
//! copied row for row ([`clavis_store::copy`]; a table this version does not
//! know makes the copy refuse) in one transaction on the destination, so a
//! failed copy leaves it empty. The copy refuses while anything may write
//! to the source: a server holding the source's data-directory lock
//! (SQLite), or any live node's heartbeat in the source (either backend).
//! At the end the row count of every table is compared and reported, and
//! the applications, signing keys and role grants are read back through
//! the store and compared. Sealed values move as they are: the
//! destination's nodes must use the same key-encryption keys (`kek.key`).

use std::path::{Path, PathBuf};

use clavis_store::copy::{self, Treatment, TABLES};
use clavis_store::{ApplicationFilter, Store};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::node::{describe, live_window_seconds};

/// One table after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    /// Rows in the source.
    pub source: u64,
    /// Rows in the destination (before the "Copy store" audit events).
    pub destination: u64,
    /// Why the table was not copied, if it was not.
    pub skipped: Option<&'static str>,
}

/// What was copied: every table of the schema with its counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<TableCount>,
    /// Active (not paused) webhooks in the destination after the copy.
    pub active_webhooks: usize,
}

impl Copied {
    /// The counts of `table` (panics on a table the schema lacks: for tests).
    pub fn table(&self, table: &str) -> &TableCount {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .unwrap_or_else(|| panic!("no table {table}"))
    }
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.tables.iter().map(|t| t.table.len()).max().unwrap_or(5);
        writeln!(
            f,
            "{:width$}  {:>10}  {:>11}",
            "TABLE", "SOURCE", "DESTINATION"
        )?;
        for t in &self.tables {
            match t.skipped {
                None => writeln!(
                    f,
                    "{:width$}  {:>10}  {:>11}",
                    t.table, t.source, t.destination
                )?,
                Some(why) => writeln!(
                    f,
                    "{:width$}  {:>10}  {:>11}  not copied: {why}",
                    t.table, t.source, "-"
                )?,
            }
        }
        write!(
            f,
            "Every copied table holds as many rows in the destination as in the source; the audit log also gained one \"Copy store\" event per tenant."
        )?;
        if self.active_webhooks > 0 {
            write!(
                f,
                "\nThe destination's {} webhook(s) are active: the copy is meant to replace the source, so start no server on the source again (both would send the same expiry warnings). For a copy that runs beside the source, copy with --pause-webhooks, or run `clavis webhook pause --all` against it before it sends any.",
                self.active_webhooks
            )?;
        }
        Ok(())
    }
}

/// Copy everything in `from` into the empty store `to`, then check that
/// `to` holds the same rows. Refuses (changing nothing) if a live node uses
/// either store, if `to` is not empty, or if a table is unknown to the copy.
pub async fn copy(from: &dyn Store, to: &dyn Store, now: OffsetDateTime) -> anyhow::Result<Copied> {
    for (which, store) in [("source", from), ("destination", to)] {
        let unknown = copy::unknown_to_copy(&store.schema_tables().await?);
        anyhow::ensure!(
            unknown.is_empty(),
            "this version of clavis cannot copy the {which} store: it does not know {}; use the clavis version whose migrations made that store",
            unknown.join(", ")
        );
        let live: Vec<String> = store
            .nodes()
            .await?
            .iter()
            .filter(|n| n.is_live(now))
            .map(|n| describe(n, now))
            .collect();
        anyhow::ensure!(
            live.is_empty(),
            "a Clavis server is using the {which} store ({}): stop every server that uses it, then copy (a server that stopped without shutting down counts as running until {} s after its last heartbeat)",
            live.join("; "),
            live_window_seconds()
        );
    }
    anyhow::ensure!(
        !from.tenants().await?.is_empty(),
        "the source store is empty (it holds no tenant): check --from"
    );
    for table in TABLES {
        let rows = to.count_rows(table).await?;
        if rows > 0 {
            return Err(crate::local_error::hinted(
                format!(
                    "the destination store is not empty ({} holds {rows} row(s)): copy into a new, empty database",
                    table.name
                ),
                "create a new database (`createdb NAME`) and name it in --to, or name a new SQLite file there",
            ));
        }
    }
    copy::copy_rows(from, to).await?;

    let mut copied = Copied::default();
    for table in TABLES {
        let (source, destination) = (from.count_rows(table).await?, to.count_rows(table).await?);
        let skipped = match table.treatment {
            Treatment::Copy => None,
            Treatment::Skip(why) => Some(why),
        };
        let expected = if skipped.is_some() { 0 } else { source };
        anyhow::ensure!(
            destination == expected,
            "after the copy, {} holds {destination} row(s) in the destination but {expected} were expected: the source changed during the copy (is a server using it?); empty the destination and copy again",
            table.name
        );
        copied.tables.push(TableCount {
            table: table.name,
            source,
            destination,
            skipped,
        });
    }
    for tenant in from.tenants().await? {
        verify(from, to, tenant.id).await?;
        let event = crate::audit::Actor::system().succeeded(
            tenant.id,
            now,
            crate::audit::Action {
                activity: "Copy store",
                category: "Migration",
                operation: "Add",
                target_type: "Tenant",
                target_id: tenant.id.to_string(),
                target_name: tenant.name.clone(),
                target_key_id: None,
            },
        );
        to.record_audit(&[event]).await?;
        copied.active_webhooks += to
            .webhooks(tenant.id)
            .await?
            .iter()
            .filter(|w| w.paused_at.is_none())
            .count();
    }
    Ok(copied)
}

/// The destination reads back what the source has, record for record.
async fn verify(from: &dyn Store, to: &dyn Store, tenant: Uuid) -> anyhow::Result<()> {
    let all = ApplicationFilter {
        limit: u32::MAX,
        ..Default::default()
    };
    let (a, b) = (
        from.list_applications(tenant, &all).await?,
        to.list_applications(tenant, &all).await?,
    );
    anyhow::ensure!(a == b, "applications differ after the copy");
    let (ka, kb) = (
        from.signing_keys(tenant).await?,
        to.signing_keys(tenant).await?,
    );
    anyhow::ensure!(ka == kb, "signing keys differ after the copy");
    for app in &a {
        let (ga, gb) = (
            from.role_assignments_to(tenant, app.service_principal_id)
                .await?,
            to.role_assignments_to(tenant, app.service_principal_id)
                .await?,
        );
        anyhow::ensure!(ga == gb, "role grants of {} differ after the copy", app.id);
    }
    Ok(())
}

/// Open both stores and copy (for `clavis store copy`). A SQLite store's
/// data directory is locked for the whole copy, as a server locks it, so no
/// server can start on either meanwhile (and a running one is detected).
pub async fn run(from_url: &str, to_url: &str) -> anyhow::Result<Copied> {
    let _from_lock = match sqlite_path(from_url) {
        Some(path) => {
            anyhow::ensure!(
                path.is_file(),
                "the source database {} does not exist: check --from",
                path.display()
            );
            lock_data_dir(&path, "source")?
        }
        None => None,
    };
    let _to_lock = match sqlite_path(to_url) {
        Some(path) => lock_data_dir(&path, "destination")?,
        None => None,
    };
    let from = clavis_store::connect(from_url)
        .await
        .map_err(|e| crate::local_error::cannot_open("the source store", "--from", from_url, e))?;
    let to = clavis_store::connect(to_url)
        .await
        .map_err(|e| crate::local_error::cannot_open("the destination store", "--to", to_url, e))?;
    copy(from.as_ref(), to.as_ref(), OffsetDateTime::now_utc()).await
}

/// Pause every webhook of the (copied) store at `to_url`, audited
/// (`clavis store copy --pause-webhooks`); how many.
pub async fn pause_webhooks(to_url: &str) -> anyhow::Result<usize> {
    let to = clavis_store::connect(to_url)
        .await
        .map_err(|e| crate::local_error::cannot_open("the destination store", "--to", to_url, e))?;
    Ok(crate::expiry::pause::pause_all(to.as_ref(), OffsetDateTime::now_utc()).await?)
}

/// The file of a `sqlite:` URL (`None` for other schemes and memory).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("sqlite:"))
        .map(|_| &url[7..])?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// Take the lock of the data directory holding `db` (the one a server
/// takes), if that directory has one. Refuses while a server holds it.
fn lock_data_dir(db: &Path, which: &str) -> anyhow::Result<Option<std::fs::File>> {
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::data_dir::lock_existing(dir).map_err(|e| anyhow::anyhow!("{e:#} (the {which} store)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://./data/clavis.db"),
            Some(PathBuf::from("./data/clavis.db"))
        );
        assert_eq!(
            sqlite_path("SQLITE:/var/lib/clavis/clavis.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/clavis/clavis.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://db/clavis"), None);
    }
}
