//! What commands print: `--output table` (hand-aligned columns and key/value
//! blocks, times as RFC 3339) or `--output json` (the server's objects as they came).

use std::io::Write as _;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `--output` choices.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns with a header row (or a key/value block for one object).
    Table,
    /// The raw JSON objects; a list prints as one JSON array.
    Json,
}

/// Columns under a header row, separated by two spaces, with no trailing blanks.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Add a row; cells are cleaned so one row stays one line.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows
            .push(cells.into_iter().map(|c| cell(&c)).collect());
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            let head = self.header[i].chars().count();
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .fold(head, usize::max)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            for (i, c) in cells.enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                out.push_str(c);
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            out
        };
        let mut out = line(&mut self.header.iter().copied());
        for row in &self.rows {
            out.push_str(&line(&mut row.iter().map(String::as_str)));
        }
        out
    }
}

/// `key:  value` lines with the values aligned, for one object.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let pad = width - key.chars().count();
        let line = format!("{key}:{}  {}", " ".repeat(pad), cell(value));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Replace control characters (newlines, tabs, escapes) so a cell is one line.
fn cell(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A server time shown as RFC 3339 in UTC, to the second; unparsable text as it came.
pub fn time(text: &str) -> String {
    match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(t) => rfc3339(t),
        Err(_) => text.to_owned(),
    }
}

/// `t` as RFC 3339 in UTC, whole seconds (`2026-01-02T03:04:05Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 ns is valid");
    t.format(&Rfc3339).expect("UTC times format as RFC 3339")
}

/// An object's list field for `--output json`; missing or `null` prints as `[]`.
pub fn list_field(object: &Value, field: &str) -> Value {
    match &object[field] {
        Value::Null => Value::Array(Vec::new()),
        other => other.clone(),
    }
}

/// Pretty JSON with a final newline.
pub fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    text
}

/// Write to stdout (through `--query`, when the command has one); a closed
/// pipe (`clavis app list | head`) is not an error.
pub fn emit(text: &str) {
    let Some(text) = crate::query::filter(text) else {
        return;
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_without_trailing_blanks() {
        let mut t = Table::new(&["NAME", "APP ID", "URIS"]);
        t.row(vec![
            "billing".into(),
            "1111".into(),
            "api://billing".into(),
        ]);
        t.row(vec![
            "a much longer name".into(),
            "22".into(),
            String::new(),
        ]);
        assert_eq!(
            t.render(),
            "NAME                APP ID  URIS\n\
             billing             1111    api://billing\n\
             a much longer name  22\n"
        );
    }

    #[test]
    fn empty_table_is_its_header_and_cells_stay_on_one_line() {
        assert_eq!(Table::new(&["ID", "NAME"]).render(), "ID  NAME\n");
        let mut t = Table::new(&["ID"]);
        t.row(vec!["a\nb\tc".into()]);
        assert_eq!(t.render(), "ID\na b c\n");
    }

    #[test]
    fn key_values_align() {
        let text = key_values(&[
            ("id", "1".into()),
            ("displayName", "x".into()),
            ("uris", String::new()),
        ]);
        assert_eq!(text, "id:           1\ndisplayName:  x\nuris:\n");
    }

    #[test]
    fn times_are_rfc3339_utc_seconds() {
        assert_eq!(
            time("2026-03-01T10:20:30.123456+02:00"),
            "2026-03-01T08:20:30Z"
        );
        assert_eq!(time("not a time"), "not a time");
    }
}
