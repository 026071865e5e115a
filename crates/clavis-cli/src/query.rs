//! `--query PATH`: print one field of a command's JSON output, bare, for
//! shell scripts (`CLIENT_ID=$(clavis app show NAME --query appId)`), as
//! Azure CLI's `--query … -o tsv` does, without needing jq.
//!
//! The path is a small subset of JMESPath: field names joined by dots,
//! `[N]` to take one element of a list and `[]` to take a field of every
//! element (`[].keyId`). A string prints without quotes, a number or a
//! boolean as it is, one line each; an object or a list prints as JSON.
//!
//! Commands print through [`crate::output::emit`]; while a command runs
//! with `--query`, [`scope`] makes `emit` pass its JSON through the query
//! (a value of the running command's task, not a global), and remembers a
//! query that matched nothing so the command fails.

use std::cell::RefCell;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
    Each,
}

/// A parsed `--query` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    text: String,
    steps: Vec<Step>,
}

impl Query {
    /// Parse `appId`, `passwordCredentials[0].keyId`, `[].keyId`, ….
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{why}: use field names joined by dots, [N] or [] (e.g. appId, [0].keyId)")
        };
        let mut steps = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("the query is empty"));
        }
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| bad("a [ is not closed"))?;
                let inside = after[..end].trim();
                steps.push(if inside.is_empty() {
                    Step::Each
                } else {
                    Step::Index(inside.parse().map_err(|_| bad("[…] takes a number"))?)
                });
                rest = &after[end + 1..];
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let name = &rest[..end];
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
                {
                    return Err(bad(&format!("'{name}' is not a field name")));
                }
                steps.push(Step::Field(name.to_owned()));
                rest = &rest[end..];
            }
            if let Some(after) = rest.strip_prefix('.') {
                if after.is_empty() || after.starts_with(['.', '[']) {
                    return Err(bad("a dot must be followed by a field name"));
                }
                rest = after;
            }
        }
        Ok(Query {
            text: text.trim().to_owned(),
            steps,
        })
    }

    /// The values the path selects in `value` (none when it leads nowhere).
    fn select(&self, value: &Value) -> Vec<Value> {
        let mut current = vec![value.clone()];
        for step in &self.steps {
            current = current
                .into_iter()
                .flat_map(|v| match (step, v) {
                    (Step::Field(name), Value::Object(mut map)) => {
                        map.remove(name).into_iter().collect()
                    }
                    (Step::Index(i), Value::Array(mut list)) if *i < list.len() => {
                        vec![list.swap_remove(*i)]
                    }
                    (Step::Each, Value::Array(list)) => list,
                    _ => Vec::new(),
                })
                .filter(|v| !v.is_null())
                .collect();
        }
        current
    }

    /// What to print for the JSON text a command produced; `Err` says why
    /// nothing matched.
    pub fn apply(&self, json: &str) -> Result<String, String> {
        let value: Value = serde_json::from_str(json)
            .map_err(|_| "this command prints no JSON to query".to_owned())?;
        let found = self.select(&value);
        if found.is_empty() {
            return Err(format!(
                "--query {}: nothing in the output matches",
                self.text
            ));
        }
        let mut out = String::new();
        for v in found {
            match v {
                Value::String(s) => out.push_str(&s),
                Value::Number(_) | Value::Bool(_) => out.push_str(&v.to_string()),
                other => out.push_str(
                    &serde_json::to_string_pretty(&other).expect("JSON values serialize"),
                ),
            }
            out.push('\n');
        }
        Ok(out)
    }
}

/// The query of the running command and the first failure to apply it.
#[derive(Debug)]
pub struct Active {
    query: Query,
    failure: RefCell<Option<String>>,
}

tokio::task_local! {
    static ACTIVE: Active;
}

/// Run `command` with `query` applied to everything it emits; `Err` with
/// the reason if a query matched nothing.
pub async fn scope<T>(
    query: Option<Query>,
    command: impl std::future::Future<Output = T>,
) -> (T, Result<(), String>) {
    let Some(query) = query else {
        return (command.await, Ok(()));
    };
    let active = Active {
        query,
        failure: RefCell::new(None),
    };
    ACTIVE
        .scope(active, async {
            let out = command.await;
            let failure = ACTIVE.with(|a| a.failure.borrow_mut().take());
            (out, failure.map_or(Ok(()), Err))
        })
        .await
}

/// `text` as the running command's query filters it (unchanged without
/// one); `None` when the query failed (the reason is kept for [`scope`]).
pub fn filter(text: &str) -> Option<zeroize::Zeroizing<String>> {
    ACTIVE
        .try_with(|a| match a.query.apply(text) {
            Ok(out) => Some(zeroize::Zeroizing::new(out)),
            Err(why) => {
                a.failure.borrow_mut().get_or_insert(why);
                None
            }
        })
        .unwrap_or_else(|_| Some(zeroize::Zeroizing::new(text.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Query {
        Query::parse(text).unwrap()
    }

    #[test]
    fn paths_select_fields_elements_and_every_element() {
        let json = r#"{"appId":"a1","n":3,"ok":true,"creds":[{"keyId":"k1"},{"keyId":"k2"}],"o":{"x":{"y":"deep"}}}"#;
        assert_eq!(q("appId").apply(json).unwrap(), "a1\n");
        assert_eq!(q("n").apply(json).unwrap(), "3\n");
        assert_eq!(q("ok").apply(json).unwrap(), "true\n");
        assert_eq!(q("creds[1].keyId").apply(json).unwrap(), "k2\n");
        assert_eq!(q("creds[].keyId").apply(json).unwrap(), "k1\nk2\n");
        assert_eq!(q("o.x.y").apply(json).unwrap(), "deep\n");
        assert_eq!(q("o.x").apply(json).unwrap(), "{\n  \"y\": \"deep\"\n}\n");
        assert_eq!(q("[0].keyId").apply(r#"[{"keyId":"k"}]"#).unwrap(), "k\n");
        assert_eq!(q("[].a").apply(r#"[{"a":1},{"a":2}]"#).unwrap(), "1\n2\n");
    }

    #[test]
    fn nothing_matching_is_an_error_naming_the_query() {
        let err = q("apId").apply(r#"{"appId":"a"}"#).unwrap_err();
        assert!(err.contains("--query apId"), "{err}");
        assert!(q("creds[5]").apply(r#"{"creds":[]}"#).is_err());
        assert!(q("x").apply(r#"{"x":null}"#).is_err());
        assert!(q("x").apply("Removed webhook 1.\n").is_err());
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "a.", "a..b", "[x]", "[0", "a b", ".a", "a.[0]"] {
            assert!(Query::parse(bad).is_err(), "{bad:?}");
        }
    }
}
