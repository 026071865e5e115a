//! Request bodies and query strings of the management API, parsed strictly
//! with errors in Graph's format: JSON only, capped in size, unknown fields
//! named, duplicated query parameters refused.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::error::GraphError;
use crate::app::AppState;

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
    GraphError::bad(format!("The request body is not valid: {e}."))
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
                    "Query option '{name}' is given more than once."
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
                        "Query option '{other}' is not supported; use $top, $filter, $skiptoken or $select."
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
}
