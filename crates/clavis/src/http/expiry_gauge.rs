//! `clavis_client_secret_expiry_seconds` without walking the store on every
//! scrape: the labels of every secret's line are built once per change of
//! the directory (one query, [`Store::credential_ends`]), and a scrape only
//! writes the seconds left after each.
//!
//! [`Store::credential_ends`]: clavis_store::Store::credential_ends

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use clavis_store::StoreError;
use time::OffsetDateTime;

use crate::directory::Directory;

/// The gauge's lines as of one directory generation.
#[derive(Debug, Default)]
pub struct ExpiryGauge {
    cached: Mutex<Option<Arc<Lines>>>,
    /// One rebuild at a time: concurrent scrapes after a change wait for it.
    rebuilding: tokio::sync::Mutex<()>,
}

/// Every secret's labels and end, as of `generation`.
#[derive(Debug)]
pub struct Lines {
    generation: Option<u64>,
    /// `name{labels} ` and the secret's end.
    lines: Vec<(Box<str>, OffsetDateTime)>,
}

/// The metric's name.
const NAME: &str = "clavis_client_secret_expiry_seconds";

impl ExpiryGauge {
    /// The lines for the directory as it is now: cached unless something
    /// changed since they were built (or the change feed is not live).
    pub async fn lines(&self, directory: &Directory) -> Result<Arc<Lines>, StoreError> {
        if let Some(fresh) = self.fresh(directory) {
            return Ok(fresh);
        }
        let _one = self.rebuilding.lock().await;
        if let Some(fresh) = self.fresh(directory) {
            return Ok(fresh);
        }
        // Read before the query: a change committed meanwhile moves the
        // generation past this one, and the next scrape builds again.
        let generation = directory.generation();
        let ends = directory.store().credential_ends().await?;
        let lines = Arc::new(Lines {
            generation,
            lines: ends
                .iter()
                .map(|e| {
                    let labels = format!(
                        "{NAME}{{tenant_id=\"{}\",app_id=\"{}\",key_id=\"{}\"}} ",
                        e.tenant_id, e.app_id, e.key_id
                    );
                    (labels.into_boxed_str(), e.end_at)
                })
                .collect(),
        });
        *lock(&self.cached) = Some(lines.clone());
        Ok(lines)
    }

    fn fresh(&self, directory: &Directory) -> Option<Arc<Lines>> {
        let now = directory.generation()?;
        lock(&self.cached)
            .as_ref()
            .filter(|l| l.generation == Some(now))
            .cloned()
    }
}

impl Lines {
    /// Append the gauge (help, type and one line per secret) as of `now`.
    pub fn write(&self, now: OffsetDateTime, out: &mut String) {
        out.reserve(self.lines.len() * 140 + 200);
        let _ = writeln!(
            out,
            "# HELP {NAME} Seconds until a client secret ends (negative: ended)."
        );
        let _ = writeln!(out, "# TYPE {NAME} gauge");
        for (labels, end) in &self.lines {
            out.push_str(labels);
            let _ = writeln!(out, "{}", (*end - now).whole_seconds());
        }
    }

    /// Secrets listed.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
