//! `--public-url`: the base URL clients use, checked at start so a typo
//! stops the server with a message naming the flag instead of producing an
//! issuer no client can match. `http` or `https`, a host, no user info, no
//! query or fragment, and no path: Clavis serves at the root of its host
//! (routes are not nested under a prefix), so a prefixed issuer would name
//! endpoints the server does not answer on.

use reqwest::Url;

/// The URL as given, checked, without a trailing `/`; or why not.
pub fn parse(text: &str) -> Result<String, String> {
    let text = text.trim();
    let usage = "write it as https://HOST[:PORT], e.g. https://login.example.com";
    // Never echo a URL with user info: it may hold a password.
    let shown = if text.contains('@') {
        "the URL".to_owned()
    } else {
        format!("`{text}`")
    };
    let url = Url::parse(text).map_err(|e| format!("{shown} is not a URL ({e}): {usage}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be https (or http behind a TLS-terminating proxy), not `{}`: {usage}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} has no host: {usage}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "the URL must not carry a user name or password: {usage}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{shown} has a query or fragment (`?`, `#`): {usage}"
        ));
    }
    if !url.path().trim_end_matches('/').is_empty() {
        return Err(format!(
            "{shown} has a path (`{}`), but Clavis serves at the root of its host: give it \
             a host name or port of its own (a proxy that strips a prefix would still leave \
             the issuer naming URLs Clavis does not answer on)",
            url.path()
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn good_urls_lose_their_trailing_slash() {
        assert_eq!(
            parse("https://login.example.com/").unwrap(),
            "https://login.example.com"
        );
        assert_eq!(
            parse("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(parse("https://[::1]:8443").unwrap(), "https://[::1]:8443");
        // Default ports are dropped, as clients compare issuers literally.
        assert_eq!(
            parse("HTTPS://Login.Example.com:443").unwrap(),
            "https://login.example.com"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = |s| parse(s).unwrap_err();
        assert!(err("login.example.com").contains("is not a URL"));
        assert!(err("ftp://login.example.com").contains("scheme"));
        assert!(err("https://login.example.com?tenant=x").contains("query"));
        assert!(err("https://login.example.com/#x").contains("fragment"));
        assert!(err("https://login.example.com/clavis").contains("path"));
        let userinfo = err("https://admin:hunter2@login.example.com");
        assert!(userinfo.contains("user name"));
        assert!(!userinfo.contains("hunter2"), "{userinfo}");
        assert!(!err("https://admin:hunter2@").contains("hunter2"));
    }
}
