//! `clavis backup` and `clavis restore` for PostgreSQL installations, through
//! PostgreSQL's own tools: `pg_dump --format=custom` takes one consistent
//! snapshot while every node keeps serving (a single repeatable-read
//! transaction), and `pg_restore --single-transaction` puts it into an empty
//! database or nothing at all. The archive holds what the store holds —
//! secrets only as keyed hashes, keys only sealed — and is written 0600.
//!
//! The database URL is the one `clavis serve` takes (sqlx's syntax, e.g.
//! `?options[statement_timeout]=5s`, which libpq does not read), so it is
//! never handed to the tools: its parts go to them in libpq's environment
//! variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`,
//! `PGSSLMODE`, `PGOPTIONS`, ...), and their command lines (which `ps`
//! shows to every user) carry no password.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use zeroize::Zeroizing;

use crate::keys::kek::create_private;

/// libpq's settings for `database_url`, as environment variables, from the
/// URL's parts and from the query parameters sqlx reads; `options[NAME]=V`
/// becomes `-c NAME=V` in `PGOPTIONS`. Parameters only sqlx knows
/// (`statement-cache-capacity`) are left out, as are unknown ones (which
/// the server ignores too).
fn libpq_env(database_url: &str) -> anyhow::Result<Vec<(&'static str, Zeroizing<String>)>> {
    let url = reqwest::Url::parse(database_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"))
        .context("--database-url is not a valid postgres:// URL")?;
    let mut env: Vec<(&'static str, Zeroizing<String>)> = Vec::new();
    let mut set = |name: &'static str, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, Zeroizing::new(value)));
    };
    if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
        let host = percent_decode(host);
        set(
            "PGHOST",
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    if let Some(port) = url.port() {
        set("PGPORT", port.to_string());
    }
    if !url.username().is_empty() {
        set("PGUSER", percent_decode(url.username()));
    }
    if let Some(password) = url.password() {
        set("PGPASSWORD", percent_decode(password));
    }
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        set("PGDATABASE", percent_decode(database));
    }
    let mut options = Vec::new();
    for (key, value) in url.query_pairs() {
        let value = value.into_owned();
        match &*key {
            "sslmode" | "ssl-mode" => set("PGSSLMODE", value),
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => set("PGSSLROOTCERT", value),
            "sslcert" | "ssl-cert" => set("PGSSLCERT", value),
            "sslkey" | "ssl-key" => set("PGSSLKEY", value),
            "host" => set("PGHOST", value),
            "hostaddr" => set("PGHOSTADDR", value),
            "port" => set("PGPORT", value),
            "dbname" => set("PGDATABASE", value),
            "user" => set("PGUSER", value),
            "password" => set("PGPASSWORD", value),
            "application_name" => set("PGAPPNAME", value),
            "options" => options.push(value),
            k if k.starts_with("options[") && k.ends_with(']') => {
                let name = &k["options[".len()..k.len() - 1];
                options.push(format!(
                    "-c {}={}",
                    escape_option(name),
                    escape_option(&value)
                ));
            }
            _ => {}
        }
    }
    if !options.is_empty() {
        set("PGOPTIONS", options.join(" "));
    }
    Ok(env)
}

/// A word of `PGOPTIONS`: spaces and backslashes escaped with a backslash.
fn escape_option(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `name` with libpq's settings for `database_url` in its environment and
/// nothing of the URL on its command line.
fn tool(name: &str, database_url: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(name);
    for (var, value) in libpq_env(database_url)? {
        command.env(var, value.as_str());
    }
    Ok(command)
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
        let mut dump = tool("pg_dump", database_url)?;
        dump.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
            .arg(to);
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
        .map_err(|e| {
            crate::local_error::cannot_open("the database", "--database-url", database_url, e)
        })?;
    if existing > 0 {
        return Err(crate::local_error::hinted(
            format!(
                "the database at --database-url already holds {existing} table(s): restore into a new, empty database"
            ),
            format!(
                "create one (`{}`, with a new name) and name it in --database-url",
                crate::local_error::createdb(database_url).unwrap_or_else(|| "createdb NAME".into())
            ),
        ));
    }
    let mut restore = tool("pg_restore", database_url)?;
    // pg_restore writes a script instead of restoring unless --dbname is
    // given: name the database from the environment (no secret in it).
    restore
        .args([
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--dbname",
        ])
        .arg(database_conninfo(database_url)?)
        .arg(from);
    run(restore, "pg_restore")?;
    // Opening it runs Clavis's checks and any newer migrations.
    let store = clavis_store::connect(database_url).await?;
    let tenants = store.tenants().await?.len();
    Ok(format!("{tables} table(s), {tenants} tenant(s)"))
}

/// `dbname='…'` for `--dbname` (a libpq connection string holding only the
/// database name, from `PGDATABASE`, else the user name as libpq defaults).
fn database_conninfo(database_url: &str) -> anyhow::Result<String> {
    let env = libpq_env(database_url)?;
    let get = |name| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let name = get("PGDATABASE")
        .or_else(|| get("PGUSER"))
        .unwrap_or_else(|| "postgres".into());
    Ok(format!(
        "dbname='{}'",
        name.replace('\\', "\\\\").replace('\'', "\\'")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(url: &str) -> Vec<(String, String)> {
        libpq_env(url)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Found in a review: the URL went to pg_dump's command line, where a
    /// `?password=` showed in `ps`, and sqlx's `options[statement_timeout]`
    /// (which the README documents) made libpq refuse the URL.
    #[test]
    fn the_url_becomes_libpq_environment_variables() {
        assert_eq!(
            env_of(
                "postgres://clavis:p%40ss%2Fw@db.example:5433/clavis?sslmode=require\
                 &options[statement_timeout]=5s&application_name=clavis%20backup"
            ),
            pairs(&[
                ("PGHOST", "db.example"),
                ("PGPORT", "5433"),
                ("PGUSER", "clavis"),
                ("PGPASSWORD", "p@ss/w"),
                ("PGDATABASE", "clavis"),
                ("PGSSLMODE", "require"),
                ("PGAPPNAME", "clavis backup"),
                ("PGOPTIONS", "-c statement_timeout=5s"),
            ])
        );
        assert_eq!(
            env_of("postgresql://[::1]/x?password=s3cret&user=u&statement-cache-capacity=9&options=-c%20a%3Db&options[search_path]=a%20b"),
            pairs(&[
                ("PGHOST", "::1"),
                ("PGDATABASE", "x"),
                ("PGPASSWORD", "s3cret"),
                ("PGUSER", "u"),
                ("PGOPTIONS", "-c a=b -c search_path=a\\ b"),
            ])
        );
        assert_eq!(
            env_of("postgres://%2Fvar%2Frun%2Fpostgresql/x"),
            pairs(&[("PGHOST", "/var/run/postgresql"), ("PGDATABASE", "x")])
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%aé%41"), "%aéA");
        assert!(libpq_env("not a url").is_err());
        assert!(libpq_env("mysql://h/x").is_err());
    }

    #[test]
    fn no_part_of_the_url_is_on_the_command_line() {
        let url = "postgres://clavis:hunter2@db:5432/clavis?password=hunter3&sslmode=require";
        let command = tool("pg_dump", url).unwrap();
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.is_empty(), "{args:?}");
        let envs: Vec<(String, String)> = command
            .get_envs()
            .map(|(n, v)| {
                (
                    n.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert!(
            envs.contains(&("PGPASSWORD".into(), "hunter3".into())),
            "{envs:?}"
        );
        assert_eq!(database_conninfo(url).unwrap(), "dbname='clavis'");
        assert_eq!(
            database_conninfo("postgres://u@h/it's").unwrap(),
            "dbname='it\\'s'"
        );
        assert_eq!(database_conninfo("postgres://u@h").unwrap(), "dbname='u'");
    }
}
