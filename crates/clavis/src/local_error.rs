//! How the binary's local commands (`backup`, `restore`, `store copy`,
//! `admin recover`) report a failure: one `error:` line with each cause
//! said once (database drivers repeat their cause in their own message),
//! and a `hint:` line for what an operator can fix — a database to create,
//! a server to start, a URL to correct. Never a password: hints are built
//! from the URL's host, port, user and database name only.

use clavis_store::{OpenFailure, StoreError};

/// An error that knows what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    message: String,
    hint: String,
}

/// `message` with `hint`, as an error for `?`.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// `error: …` and, when the error carries one, `hint: …` (each line ends
/// with a newline).
pub fn render(error: &anyhow::Error) -> String {
    let mut out = format!("error: {}\n", message(error));
    if let Some(h) = error.chain().find_map(|e| e.downcast_ref::<Hinted>()) {
        out.push_str(&format!("hint: {}\n", h.hint));
    }
    out
}

/// The error's chain joined by ": ", leaving out a cause whose text the
/// message so far already holds.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The parts of a `postgres://` URL a hint may name (never the password).
struct Where {
    host: String,
    port: u16,
    user: String,
    database: String,
}

fn postgres_parts(url: &str) -> Option<Where> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return None;
    }
    let query = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let user = query("user")
        .or_else(|| (!parsed.username().is_empty()).then(|| parsed.username().to_owned()))
        .unwrap_or_else(|| "postgres".into());
    let database = query("dbname")
        .or_else(|| {
            let path = parsed.path().trim_start_matches('/');
            (!path.is_empty()).then(|| path.to_owned())
        })
        .unwrap_or_else(|| user.clone());
    Some(Where {
        host: query("host")
            .or_else(|| parsed.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into()),
        port: query("port")
            .and_then(|p| p.parse().ok())
            .or(parsed.port())
            .unwrap_or(5432),
        user,
        database,
    })
}

/// `createdb …` for the database `url` names.
pub fn createdb(url: &str) -> Option<String> {
    let w = postgres_parts(url)?;
    Some(format!(
        "createdb -h {} -p {} -U {} {}",
        w.host, w.port, w.user, w.database
    ))
}

/// "cannot open {what}" for a store that `option`'s `url` could not open,
/// with a hint for the causes an operator can fix.
pub fn cannot_open(what: &str, option: &str, url: &str, error: StoreError) -> anyhow::Error {
    let kind = error.open_failure();
    let error = anyhow::Error::new(error).context(format!("cannot open {what} ({option})"));
    let message = message(&error);
    let parts = postgres_parts(url);
    let hint = match (kind, &parts) {
        (Some(OpenFailure::NoDatabase), Some(w)) => format!(
            "create the database first: `{}` (or CREATE DATABASE {}), then run this again",
            createdb(url).unwrap_or_default(),
            w.database
        ),
        (Some(OpenFailure::Unreachable), Some(w)) => format!(
            "nothing answers at {}:{}: is PostgreSQL running there (`pg_isready -h {} -p {}`)? Check the host and port in {option}",
            w.host, w.port, w.host, w.port
        ),
        (Some(OpenFailure::Authentication), Some(w)) => format!(
            "PostgreSQL refused user {}: check the user and password in {option}",
            w.user
        ),
        (Some(OpenFailure::BadUrl), _) => {
            format!("{option} takes sqlite://PATH or postgres://USER@HOST:PORT/DATABASE")
        }
        _ => return anyhow::anyhow!(message),
    };
    hinted(message, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_said_once() {
        let inner = std::io::Error::other("database \"x\" does not exist");
        let e = anyhow::Error::new(inner)
            .context("store error: database \"x\" does not exist")
            .context("cannot connect");
        assert_eq!(
            render(&e),
            "error: cannot connect: store error: database \"x\" does not exist\n"
        );
        let e = anyhow::anyhow!("a").context("b");
        assert_eq!(render(&e), "error: b: a\n");
    }

    #[test]
    fn hints_name_the_database_but_never_the_password() {
        let url = "postgres://clavis:hunter2@db.example:5433/clavis_new?sslmode=require";
        assert_eq!(
            createdb(url).unwrap(),
            "createdb -h db.example -p 5433 -U clavis clavis_new"
        );
        assert_eq!(
            createdb("postgresql://127.0.0.1/x?user=u&password=p").unwrap(),
            "createdb -h 127.0.0.1 -p 5432 -U u x"
        );
        assert_eq!(createdb("sqlite://x.db"), None);
        let e = hinted("no", "do this");
        assert_eq!(
            render(&e.context("outer")),
            "error: outer: no\nhint: do this\n"
        );
    }
}
