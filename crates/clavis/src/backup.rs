//! `clavis backup` and `clavis restore`: a consistent snapshot of an
//! installation, taken while the server runs, and its return into a fresh
//! data directory (and, for PostgreSQL, an empty database: see [`postgres`]).
//!
//! A SQLite backup is a SQLite database file (`VACUUM INTO`: one read transaction,
//! so it is consistent even under writes), created with mode 0600. It holds
//! what the store holds and nothing more: client secrets as keyed hashes,
//! signing keys and the hash key sealed under the key-encryption key. It is
//! therefore encrypted at rest as far as anything recoverable goes, and it is
//! useless without the KEK — which it does not contain: keep the KEK
//! (`kek.key` or `CLAVIS_KEK`) backed up separately.

pub mod postgres;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clavis_store::sqlite::snapshot::{self, SnapshotInfo};

use crate::keys::kek::create_private;

/// The database file a `sqlite:` URL names.
fn sqlite_file(database_url: &str) -> anyhow::Result<PathBuf> {
    let lower = database_url.to_ascii_lowercase();
    let rest = lower
        .starts_with("sqlite:")
        .then(|| &database_url[7..])
        .map(|r| r.trim_start_matches("//"))
        .filter(|r| !r.is_empty() && !r.contains(":memory:"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--database-url must name a SQLite file, e.g. sqlite://./clavis-data/clavis.db"
            )
        })?;
    Ok(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

fn is_postgres(database_url: &str) -> bool {
    let lower = database_url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Write a consistent snapshot of the store at `database_url` to `to` (a
/// new file, mode 0600). Safe while the server runs. Says what it wrote.
pub async fn backup(database_url: &str, to: &Path) -> anyhow::Result<String> {
    if is_postgres(database_url) {
        return postgres::backup(database_url, to);
    }
    backup_sqlite(database_url, to).await.map(|i| i.to_string())
}

async fn backup_sqlite(database_url: &str, to: &Path) -> anyhow::Result<SnapshotInfo> {
    let source = sqlite_file(database_url)?;
    // An empty file of our own (0600) that VACUUM INTO fills.
    create_private(to).with_context(|| {
        format!(
            "cannot create {} (a backup never overwrites a file: choose a new name)",
            to.display()
        )
    })?;
    match snapshot::snapshot(&source, to).await {
        Ok(info) => {
            std::fs::File::open(to)?.sync_all()?;
            Ok(info)
        }
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(e).with_context(|| format!("cannot back up {}", source.display()))
        }
    }
}

/// Put the backup `from` into the empty data directory `data_dir` as its
/// store — or, with a PostgreSQL `database_url`, into that empty database —
/// and `kek_file`, if given, as the directory's `kek.key`. Refuses to
/// overwrite an existing store. Says what it restored.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    kek_file: Option<&Path>,
) -> anyhow::Result<String> {
    if let Some(url) = database_url.filter(|u| is_postgres(u)) {
        let _lock = crate::data_dir::prepare(data_dir)?;
        if let Some(kek) = kek_file {
            install_kek(kek, data_dir)?;
        }
        return postgres::restore(from, url).await;
    }
    let info = snapshot::inspect(from)
        .await
        .with_context(|| format!("{} is not a usable backup", from.display()))?;
    let _lock = crate::data_dir::prepare(data_dir)?;
    let db = data_dir.join("clavis.db");
    for existing in [db.clone(), data_dir.join("clavis.db-wal")] {
        if existing.exists() {
            anyhow::bail!(
                "{} already holds a store: restore into a new, empty data directory",
                data_dir.display()
            );
        }
    }
    copy_private(from, &db)?;
    if let Some(kek) = kek_file {
        install_kek(kek, data_dir)?;
    }
    snapshot::inspect(&db).await?;
    Ok(info.to_string())
}

/// Copy the key file `kek` into `data_dir` as its `kek.key` (0600), after
/// checking it is a private key file; never over an existing one.
fn install_kek(kek: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let target = data_dir.join("kek.key");
    if target.exists() {
        anyhow::bail!(
            "{} already holds a kek.key: restore into a new, empty data directory",
            data_dir.display()
        );
    }
    if !kek.is_file() {
        anyhow::bail!("{} is not a key file", kek.display());
    }
    // Refuses a key file others can read, or one that is not a key.
    crate::keys::kek::KekSet::load_or_create(kek)?;
    copy_private(kek, &target)
}

/// Copy `from` to the new file `to` (mode 0600), durably.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut out = create_private(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut input = std::fs::File::open(from)?;
    std::io::copy(&mut input, &mut out)?;
    out.flush()?;
    out.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_sqlite_files_or_postgres() {
        assert_eq!(
            sqlite_file("sqlite://./data/clavis.db").unwrap(),
            PathBuf::from("./data/clavis.db")
        );
        assert_eq!(
            sqlite_file("sqlite:/var/lib/clavis/clavis.db?mode=rwc").unwrap(),
            PathBuf::from("/var/lib/clavis/clavis.db")
        );
        assert!(is_postgres("postgres://db/clavis") && is_postgres("PostgreSQL://db/x"));
        assert!(!is_postgres("sqlite://./x.db"));
        assert!(sqlite_file("sqlite::memory:").is_err());
        assert!(sqlite_file("mysql://x").is_err());
    }
}
