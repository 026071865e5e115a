//! `clavis backup` and `clavis restore` for PostgreSQL installations, through
//! PostgreSQL's own tools: `pg_dump --format=custom` takes one consistent
//! snapshot while every node keeps serving (a single repeatable-read
//! transaction), and `pg_restore --single-transaction` puts it into an empty
//! database or nothing at all. The archive holds what the store holds —
//! secrets only as keyed hashes, keys only sealed — and is written 0600.
//! A password in the URL is passed to the tools in `PGPASSWORD`, never on
//! their command line (where `ps` would show it).

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::keys::kek::create_private;

/// A URL without its password, and the password.
fn split_password(database_url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut url = reqwest::Url::parse(database_url)
        .context("--database-url is not a valid postgres:// URL")?;
    let password = url.password().map(percent_decode);
    if password.is_some() {
        let _ = url.set_password(None);
    }
    Ok((url.to_string(), password))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tool(name: &str, database_url: &str) -> anyhow::Result<(Command, String)> {
    let (url, password) = split_password(database_url)?;
    let mut command = Command::new(name);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    Ok((command, url))
}

fn run(mut command: Command, name: &str) -> anyhow::Result<String> {
    let out = command.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{name} is not installed: install PostgreSQL's client tools (e.g. `apt install postgresql-client`), the server's major version or newer"
            )
        } else {
            anyhow::anyhow!("cannot run {name}: {e}")
        }
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How many tables' data an archive holds (from `pg_restore --list`).
fn tables_in(archive: &Path) -> anyhow::Result<usize> {
    let mut list = Command::new("pg_restore");
    list.arg("--list").arg(archive);
    let listing = run(list, "pg_restore")?;
    Ok(listing
        .lines()
        .filter(|l| l.contains(" TABLE DATA "))
        .count())
}

/// Dump the PostgreSQL store at `database_url` into the new file `to`.
pub fn backup(database_url: &str, to: &Path) -> anyhow::Result<String> {
    create_private(to).with_context(|| {
        format!(
            "cannot create {} (a backup never overwrites a file: choose a new name)",
            to.display()
        )
    })?;
    let result = (|| {
        let (mut dump, url) = tool("pg_dump", database_url)?;
        dump.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
            .arg(to)
            .arg("--dbname")
            .arg(&url);
        run(dump, "pg_dump")?;
        std::fs::File::open(to)?.sync_all()?;
        let tables = tables_in(to)?;
        if tables == 0 {
            anyhow::bail!("the database holds no tables: is this Clavis's database?");
        }
        let bytes = std::fs::metadata(to)?.len();
        Ok(format!(
            "{tables} table(s), {bytes} bytes (pg_dump custom format)"
        ))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(to);
    }
    result
}

/// Restore the archive `from` into the empty PostgreSQL database at
/// `database_url`, in one transaction.
pub async fn restore(from: &Path, database_url: &str) -> anyhow::Result<String> {
    let tables =
        tables_in(from).with_context(|| format!("{} is not a pg_dump archive", from.display()))?;
    let existing = clavis_store::postgres::table_count(database_url)
        .await
        .context("cannot connect to --database-url")?;
    if existing > 0 {
        anyhow::bail!(
            "the database at --database-url already holds {existing} table(s): restore into a new, empty database (CREATE DATABASE ...)"
        );
    }
    let (mut restore, url) = tool("pg_restore", database_url)?;
    restore
        .args([
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--dbname",
        ])
        .arg(&url)
        .arg(from);
    run(restore, "pg_restore")?;
    // Opening it runs Clavis's checks and any newer migrations.
    let store = clavis_store::connect(database_url).await?;
    let tenants = store.tenants().await?.len();
    Ok(format!("{tables} table(s), {tenants} tenant(s)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        let (url, password) =
            split_password("postgres://clavis:p%40ss%2Fw@db:5432/clavis?sslmode=require").unwrap();
        assert_eq!(url, "postgres://clavis@db:5432/clavis?sslmode=require");
        assert_eq!(password.as_deref(), Some("p@ss/w"));
        let (url, password) = split_password("postgres://postgres@127.0.0.1/x").unwrap();
        assert_eq!(url, "postgres://postgres@127.0.0.1/x");
        assert_eq!(password, None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert!(split_password("not a url").is_err());
    }
}
