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

/// What `restore` did, and what the operator does next (its `Display`).
#[derive(Debug)]
pub struct Restored {
    /// What the backup held, e.g. `1 tenant(s), 4 application(s), …`.
    pub summary: String,
    data_dir: PathBuf,
    /// `--database-url` as the next step shows it (password masked).
    shown_url: Option<String>,
    kek_installed: bool,
    tls_present: bool,
    /// Webhooks the restore paused.
    pub webhooks_paused: usize,
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.data_dir.display().to_string();
        writeln!(f, "restored {} into {dir}.", self.summary)?;
        writeln!(f, "Next:")?;
        if !self.kek_installed {
            writeln!(
                f,
                "- put the installation's kek.key into {dir} (or start with --key-provider env): without it nothing sealed in the backup opens"
            )?;
        }
        match &self.shown_url {
            Some(url) => {
                write!(
                    f,
                    "- start it: clavis serve --data-dir {} --database-url {}",
                    shell_word(&dir),
                    shell_word(url)
                )?;
                if url.contains(MASK) {
                    write!(f, " (with the database's password in place of {MASK})")?;
                }
                writeln!(f)?;
            }
            None => writeln!(
                f,
                "- start it: clavis serve --data-dir {}",
                shell_word(&dir)
            )?,
        }
        if self.tls_present {
            writeln!(
                f,
                "- TLS: it serves the certificate already in {dir}/tls/, signed by the CA in {dir}/tls/ca.pem"
            )?;
        } else {
            writeln!(
                f,
                "- TLS: a backup holds no TLS files, so the first start creates a new local CA, {dir}/tls/ca.pem, and clients that trusted the old installation's ca.pem must trust this one instead. To keep the old CA, copy the old data directory's tls/ (ca.pem, server.pem, server-key.pem) into {dir}/tls/ before that start, or serve your own certificate with --tls-cert and --tls-key"
            )?;
        }
        if self.webhooks_paused > 0 {
            writeln!(
                f,
                "- webhooks: {} paused, so this copy does not repeat the expiry warnings the original sends. When it replaces the original, resume them: clavis webhook resume --all",
                self.webhooks_paused
            )?;
        }
        Ok(())
    }
}

/// What stands for a password in a URL Clavis prints.
const MASK: &str = "PASSWORD";

/// `url` with its password (in the user part or `?password=`) replaced by
/// [`MASK`].
fn masked(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "postgres://…".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    MASK.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// `text` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Put the backup `from` into the empty data directory `data_dir` as its
/// store — or, with a PostgreSQL `database_url`, into that empty database —
/// and `kek_file`, if given, as the directory's `kek.key`; then pause every
/// webhook of the restored installation ([`crate::expiry::pause`]).
/// Refuses to overwrite an existing store.
pub async fn restore(
    from: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
    kek_file: Option<&Path>,
) -> anyhow::Result<Restored> {
    if let Some(url) = database_url.filter(|u| !is_postgres(u)) {
        let scheme = url.split(':').next().unwrap_or_default();
        return Err(crate::local_error::hinted(
            format!("--database-url {scheme}:…: restore takes a postgres:// URL there"),
            "a SQLite backup is restored into --data-dir alone (its store becomes {data-dir}/clavis.db); leave --database-url and CLAVIS_DATABASE_URL unset",
        ));
    }
    let (summary, url) = match database_url {
        Some(url) => {
            let _lock = crate::data_dir::prepare(data_dir)?;
            if let Some(kek) = kek_file {
                install_kek(kek, data_dir)?;
            }
            (postgres::restore(from, url).await?, url.to_owned())
        }
        None => {
            let summary = restore_sqlite(from, data_dir, kek_file).await?;
            let db = data_dir.join("clavis.db");
            (summary, format!("sqlite://{}", db.display()))
        }
    };
    let store = clavis_store::connect(&url)
        .await
        .with_context(|| "cannot open the restored store")?;
    let webhooks_paused =
        crate::expiry::pause::pause_all(store.as_ref(), time::OffsetDateTime::now_utc()).await?;
    Ok(Restored {
        summary,
        data_dir: data_dir.to_owned(),
        shown_url: database_url.map(masked),
        kek_installed: kek_file.is_some(),
        tls_present: data_dir.join("tls").join("ca.pem").exists(),
        webhooks_paused,
    })
}

async fn restore_sqlite(
    from: &Path,
    data_dir: &Path,
    kek_file: Option<&Path>,
) -> anyhow::Result<String> {
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

    #[test]
    fn printed_urls_hide_the_password_and_are_one_shell_word() {
        assert_eq!(
            masked("postgres://clavis:s3cret@db:5433/x?sslmode=require&password=other"),
            "postgres://clavis:PASSWORD@db:5433/x?sslmode=require&password=PASSWORD"
        );
        assert_eq!(masked("postgres://clavis@db/x"), "postgres://clavis@db/x");
        assert_eq!(shell_word("./restored"), "./restored");
        assert_eq!(
            shell_word("postgres://u@h/x?options[statement_timeout]=5s"),
            "'postgres://u@h/x?options[statement_timeout]=5s'"
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
