//! Graph (OData v4) collection conventions: `$filter` string literals and
//! query encoding, and collection pages `{"value":[..],"@odata.nextLink":".."}`
//! followed until the last page (only ever back to the same server).

use std::collections::HashSet;
use std::future::Future;

use reqwest::Url;
use serde_json::Value;

use crate::error::Error;

/// More pages than any real listing needs: a server that keeps linking is broken.
const MAX_PAGES: usize = 10_000;

/// `'text'` as an OData string literal (a `'` inside is doubled).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Set `url`'s query to `pairs`, percent-encoded (RFC 3986: spaces as `%20`,
/// `$` kept in names, every reserved character in values escaped).
pub fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    url.set_query(Some(&query.join("&")));
    url
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'$') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Split one collection page into its items and the next page's URL, kept
/// on `origin`'s server (see [`same_origin`]).
pub fn parse_page(page: Value, origin: &Url) -> Result<(Vec<Value>, Option<Url>), Error> {
    let Value::Object(mut page) = page else {
        return Err(Error::new(
            "the server sent a list that is not a JSON object",
        ));
    };
    let items = match page.remove("value") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(Error::new(
                "the server sent a list without a \"value\" array",
            ))
        }
    };
    let next = match page.remove("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => {
            let url = Url::parse(&link).map_err(|_| {
                Error::new(format!(
                    "the server sent a nextLink that is not a URL: {link}"
                ))
            })?;
            Some(same_origin(url, origin))
        }
        Some(_) => {
            return Err(Error::new(
                "the server sent a nextLink that is not a string",
            ))
        }
    };
    Ok((items, next))
}

/// `link`'s path and query on `origin`'s scheme, host and port. The bearer
/// token goes wherever we follow, so it never leaves the server we talk to;
/// and a server that knows itself by another name (a proxy, `localhost` vs
/// `127.0.0.1`) still pages correctly.
fn same_origin(link: Url, origin: &Url) -> Url {
    if link.origin() == origin.origin() {
        return link;
    }
    let mut url = origin.clone();
    url.set_path(link.path());
    url.set_query(link.query());
    url.set_fragment(None);
    url
}

/// Fetch `first` and every page it links to, keeping at most `limit` items.
pub async fn collect<F, Fut>(
    first: Url,
    limit: Option<usize>,
    mut fetch: F,
) -> Result<Vec<Value>, Error>
where
    F: FnMut(Url) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let origin = first.clone();
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        if !seen.insert(url.to_string()) || seen.len() > MAX_PAGES {
            return Err(Error::new(
                "the server's nextLinks go round in circles; stopped listing",
            ));
        }
        let (page, link) = parse_page(fetch(url).await?, &origin)?;
        items.extend(page);
        if let Some(limit) = limit {
            if items.len() >= limit {
                items.truncate(limit);
                break;
            }
        }
        next = link;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn literals_and_query_encoding() {
        assert_eq!(literal("O'Brien"), "'O''Brien'");
        let url = with_query(
            Url::parse("https://h/v1.0/applications").unwrap(),
            &[(
                "$filter",
                &format!("identifierUris/any(x:x eq {})", literal("api://a b&c")),
            )],
        );
        assert_eq!(
            url.as_str(),
            "https://h/v1.0/applications?$filter=identifierUris%2Fany%28x%3Ax%20eq%20%27api%3A%2F%2Fa%20b%26c%27%29"
        );
        let decoded: Vec<_> = url.query_pairs().collect();
        assert_eq!(decoded[0].0, "$filter");
        assert_eq!(decoded[0].1, "identifierUris/any(x:x eq 'api://a b&c')");
    }

    fn pages() -> HashMap<String, Value> {
        HashMap::from([
            (
                "https://h/v1.0/apps".to_owned(),
                json!({"value":[1,2],"@odata.nextLink":"https://h/v1.0/apps?page=2"}),
            ),
            (
                "https://h/v1.0/apps?page=2".to_owned(),
                json!({"value":[3],"@odata.nextLink":"https://h/v1.0/apps?page=3"}),
            ),
            (
                "https://h/v1.0/apps?page=3".to_owned(),
                json!({"value":[4,5]}),
            ),
        ])
    }

    async fn run(
        first: &str,
        limit: Option<usize>,
        pages: HashMap<String, Value>,
    ) -> Result<Vec<Value>, Error> {
        collect(Url::parse(first).unwrap(), limit, |url| {
            let page = pages.get(url.as_str()).cloned();
            async move { page.ok_or_else(|| Error::new(format!("unexpected fetch of {url}"))) }
        })
        .await
    }

    #[tokio::test]
    async fn follows_next_links_to_the_end() {
        let items = run("https://h/v1.0/apps", None, pages()).await.unwrap();
        assert_eq!(
            items,
            vec![json!(1), json!(2), json!(3), json!(4), json!(5)]
        );
    }

    #[tokio::test]
    async fn stops_at_the_limit_without_fetching_more() {
        let mut two_pages = pages();
        two_pages.remove("https://h/v1.0/apps?page=3");
        let items = run("https://h/v1.0/apps", Some(3), two_pages)
            .await
            .unwrap();
        assert_eq!(items, vec![json!(1), json!(2), json!(3)]);
    }

    #[tokio::test]
    async fn refuses_loops() {
        let mut looping = pages();
        looping.insert(
            "https://h/v1.0/apps?page=3".to_owned(),
            json!({"value":[],"@odata.nextLink":"https://h/v1.0/apps"}),
        );
        let err = run("https://h/v1.0/apps", None, looping).await.unwrap_err();
        assert!(err.reason().contains("circles"));
    }

    #[test]
    fn next_links_stay_on_our_server() {
        let origin = Url::parse("http://127.0.0.1:8080/v1.0/applications").unwrap();
        let page = |link: &str| json!({"value": [], "@odata.nextLink": link});
        let (_, next) = parse_page(
            page("https://evil.example/v1.0/applications?$skiptoken=2"),
            &origin,
        )
        .unwrap();
        assert_eq!(
            next.unwrap().as_str(),
            "http://127.0.0.1:8080/v1.0/applications?$skiptoken=2"
        );
        let (_, next) = parse_page(
            page("http://127.0.0.1:8080/v1.0/applications?$skiptoken=3"),
            &origin,
        )
        .unwrap();
        assert_eq!(
            next.unwrap().as_str(),
            "http://127.0.0.1:8080/v1.0/applications?$skiptoken=3"
        );
        assert!(parse_page(page("not a url"), &origin).is_err());
    }

    #[test]
    fn a_page_needs_a_value_array() {
        let origin = Url::parse("https://h/").unwrap();
        assert!(parse_page(json!({"items":[]}), &origin).is_err());
        assert!(parse_page(json!([]), &origin).is_err());
        let (items, next) =
            parse_page(json!({"value":[], "@odata.nextLink": null}), &origin).unwrap();
        assert!(items.is_empty() && next.is_none());
    }
}
