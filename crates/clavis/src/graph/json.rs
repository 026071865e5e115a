//! Request bodies and query strings of the management API, parsed strictly
//! with errors in Graph's format: JSON only, capped in size, unknown fields
//! named, duplicated query parameters refused.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::GraphError;
use crate::app::AppState;
use crate::oauth::error::shorten;

/// A JSON body whose rejections are Graph errors.
#[derive(Debug)]
pub struct GraphJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for GraphJson<T> {
    type Rejection = GraphError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(GraphError::UnsupportedMediaType);
        }
        let limit = state.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| GraphError::TooLarge(limit))?;
        parse_json(&bytes).map(GraphJson)
    }
}

/// Parse JSON into `T`, with serde's message (which names the field and
/// position) as the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GraphError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(GraphError::bad("The request body is not valid UTF-8."));
    };
    // serde would also fill a struct from a JSON array, by position: Graph
    // bodies are objects, and only objects are accepted.
    if !text.trim_start().starts_with('{') {
        return Err(GraphError::bad("The request body must be a JSON object."));
    }
    serde_json::from_str(text).or_else(|e| {
        // JSON has one kind of number: `30.0` is the integer 30 (and JSON
        // Schema says so), so a whole number written with a fraction is
        // read as that integer. Only then: serde's message names the
        // position, which `from_value` cannot.
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad_body(&e))?;
        if !integral_floats_to_integers(&mut value) {
            return Err(bad_body(&e));
        }
        serde_json::from_value(value).map_err(|e| bad_body(&e))
    })
}

fn bad_body(e: &serde_json::Error) -> GraphError {
    // serde quotes the offending field name or value in full: a 60 KiB
    // unknown field would come back (and be logged) whole. Keep the
    // start of the message, and the position.
    let message = e.to_string();
    let position = match e.line() {
        0 => String::new(),
        line => format!(" at line {line} column {}", e.column()),
    };
    let what = message.strip_suffix(&position).unwrap_or(&message);
    let what = match what.char_indices().nth(MAX_SERDE_MESSAGE) {
        Some((cut, _)) => format!("{}…", &what[..cut]),
        None => what.to_owned(),
    };
    GraphError::bad(format!("The request body is not valid: {what}{position}."))
}

/// Rewrite every number with a zero fraction that fits an `i64` as that
/// integer; true if any was rewritten.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            match n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                Some(f) => {
                    *value = serde_json::Value::from(f as i64);
                    true
                }
                None => false,
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| integral_floats_to_integers(v) | any),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |any, v| integral_floats_to_integers(v) | any),
        _ => false,
    }
}

/// Characters of serde's message kept in a body error: room for a field
/// name and the list of expected ones.
const MAX_SERDE_MESSAGE: usize = 300;

/// OData query options of a list call.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub top: Option<u32>,
    pub skiptoken: Option<String>,
    pub filter: Option<String>,
}

impl ListQuery {
    /// Parse a raw query string; only `$top`, `$skiptoken` and `$filter`.
    pub fn parse(raw: Option<&str>) -> Result<Self, GraphError> {
        let mut q = ListQuery::default();
        let params = crate::form::decode(raw.unwrap_or_default().as_bytes())
            .map_err(|e| GraphError::bad(format!("The query string is not valid: {e}.")))?;
        let mut seen = std::collections::HashSet::new();
        for (name, value) in params {
            if !seen.insert(name.clone()) {
                return Err(GraphError::bad(format!(
                    "Query option '{}' is given more than once.",
                    shorten(&name)
                )));
            }
            match name.as_str() {
                "$top" => {
                    let top: u32 = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=999).contains(n))
                        .ok_or_else(|| {
                            GraphError::bad(
                                "Invalid value for $top: use a whole number from 1 to 999.",
                            )
                        })?;
                    q.top = Some(top);
                }
                "$skiptoken" => q.skiptoken = Some(value),
                "$filter" => q.filter = Some(value),
                // Graph SDKs send $select; Clavis returns whole objects (a superset).
                "$select" => {}
                other => {
                    return Err(GraphError::bad(format!(
                    "Query option '{}' is not supported; use $top, $filter, $skiptoken or $select.",
                    shorten(other)
                )))
                }
            }
        }
        Ok(q)
    }

    /// Page size (default 100).
    pub fn page_size(&self) -> u32 {
        self.top.unwrap_or(100)
    }
}

/// The clauses of a `$filter` joined by ` and `, outside quoted literals
/// (`activityDisplayName eq 'Search and replace'` is one clause).
pub fn and_clauses(filter: &str) -> Vec<&str> {
    let mut clauses = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let bytes = filter.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            quoted = !quoted;
        } else if !quoted && bytes[i..].starts_with(b" and ") {
            clauses.push(&filter[start..i]);
            i += " and ".len();
            start = i;
            continue;
        }
        i += 1;
    }
    clauses.push(&filter[start..]);
    clauses
}

/// Split `field eq 'value'`, unescaping OData's doubled quotes.
pub fn eq_clause(clause: &str, field: &str) -> Option<String> {
    let rest = clause.trim().strip_prefix(field)?.trim_start();
    let rest = rest.strip_prefix("eq")?.trim_start();
    quoted(rest)
}

/// The content of a single-quoted OData literal that is the whole input.
pub fn quoted(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.replace("''", "").contains('\'') {
        return None;
    }
    Some(inner.replace("''", "'"))
}

/// An optional JSON body: empty (or JSON `null`, which the schema's
/// optional body allows) means the defaults; otherwise JSON only.
pub fn optional_json<T: Default + serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, GraphError> {
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(GraphError::UnsupportedMediaType);
    }
    parse_json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_splits_outside_quotes_only() {
        assert_eq!(
            and_clauses("activityDisplayName eq 'Search and replace' and activityDateTime ge 2026-01-01T00:00:00Z"),
            vec!["activityDisplayName eq 'Search and replace'", "activityDateTime ge 2026-01-01T00:00:00Z"]
        );
        assert_eq!(
            and_clauses("a eq 'it''s and so' and b"),
            vec!["a eq 'it''s and so'", "b"]
        );
        assert_eq!(and_clauses("é and ü"), vec!["é", "ü"]);
    }

    #[test]
    fn whole_numbers_with_a_fraction_are_integers() {
        #[derive(serde::Deserialize, Debug)]
        struct Days {
            days: i64,
        }
        assert_eq!(parse_json::<Days>(br#"{"days": 30.0}"#).unwrap().days, 30);
        assert_eq!(parse_json::<Days>(br#"{"days": -2e1}"#).unwrap().days, -20);
        let GraphError::BadRequest(m) = parse_json::<Days>(br#"{"days": 30.5}"#).unwrap_err()
        else {
            panic!("a fraction is refused with 400")
        };
        assert!(m.contains("line 1 column"), "{m}");
        assert!(parse_json::<Days>(br#"{"days": 1e300}"#).is_err());
    }

    use crate::graph::applications::CreateApplication;
    use crate::graph::compromise::ReportCompromisedPassword;

    fn message(body: &str) -> String {
        match parse_json::<CreateApplication>(body.as_bytes()) {
            Err(GraphError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let m = message(r#"{"displayName":"a","colour":1}"#);
        assert!(m.contains("unknown field `colour`"), "{m}");
        assert!(m.contains("expected one of `displayName`, `identifierUris`, `appRoles`"));
        assert!(m.ends_with("at line 1 column 27."), "{m}");
        let m = message("{");
        assert!(m.contains("EOF") && m.contains("line 1"), "{m}");
    }

    /// Found with `fuzz/run` (after form_body's find): query option names
    /// were quoted whole too.
    #[test]
    fn query_errors_quote_at_most_the_start_of_a_name() {
        let name = "o".repeat(10_000);
        match ListQuery::parse(Some(&format!("$top=1&{name}=1"))) {
            Err(GraphError::BadRequest(m)) => assert!(m.len() < 400 && m.contains("'oooo"), "{m}"),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    /// Found by `fuzz/run` (management_json): an unknown field name or a
    /// string of the wrong type came back whole, up to the 64 KiB body limit.
    #[test]
    fn errors_do_not_quote_a_huge_field_or_value_whole() {
        let huge = "x".repeat(60_000);
        let m = message(&format!(r#"{{"{huge}":1}}"#));
        assert!(m.len() < 1024, "{} bytes", m.len());
        assert!(m.contains("unknown field `xxxx") && m.contains('…'), "{m}");
        assert!(
            m.ends_with(&format!("at line 1 column {}.", huge.len() + 3)),
            "{m}"
        );
        let body = format!(
            r#"{{"keyId":"00000000-0000-0000-0000-000000000000","rotateOtherSecrets":"{huge}"}}"#
        );
        match parse_json::<ReportCompromisedPassword>(body.as_bytes()) {
            Err(GraphError::BadRequest(m)) => assert!(m.len() < 1024, "{} bytes", m.len()),
            other => panic!("expected a 400, got {other:?}"),
        }
    }
}
