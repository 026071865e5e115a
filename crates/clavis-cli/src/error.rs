//! The CLI's one error type — a one-line reason plus an optional hint — and
//! the mapping of server answers onto it: Graph errors (`{"error":{"code","message"}}`),
//! OAuth token errors (RFC 6749 §5.2 with Entra's `error_codes`) and transport failures.

use serde::Deserialize;

/// Longest reason we print; server messages beyond it are cut.
const MAX_REASON: usize = 400;

/// Something that stopped a command: what happened and, if we know, what to do next.
///
/// Messages never carry secret values: they are built from server messages,
/// URLs and local paths only, and [`Error::redact`] scrubs a known secret
/// from them as a last line of defence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    reason: String,
    hint: Option<String>,
    /// HTTP status of the server answer this error came from, if any.
    status: Option<u16>,
}

impl Error {
    /// An error with just a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Error {
            reason: one_line(&reason.into()),
            hint: None,
            status: None,
        }
    }

    /// Add (or replace) the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(one_line(&hint.into()));
        self
    }

    fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The reason line's text (without `error: `).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The hint line's text (without `hint: `), if any.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The HTTP status of the server answer this error came from, if any.
    pub fn http_status(&self) -> Option<u16> {
        self.status
    }

    /// Whether the server answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// Replace every occurrence of `secret` in the reason and hint.
    pub fn redact(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        self.reason = self.reason.replace(secret, "[redacted]");
        self.hint = self.hint.map(|h| h.replace(secret, "[redacted]"));
        self
    }

    /// The text printed to stderr: `error: ...` and maybe `hint: ...`, newline-terminated.
    pub fn render(&self) -> String {
        match &self.hint {
            Some(hint) => format!("error: {}\nhint: {}\n", self.reason, hint),
            None => format!("error: {}\n", self.reason),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Error {}

/// Collapse whitespace runs (including newlines) to single spaces and cap the length.
fn one_line(text: &str) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > MAX_REASON {
        line = line.chars().take(MAX_REASON).collect::<String>() + "…";
    }
    line
}

/// Hint for credentials the token endpoint no longer accepts.
pub const LOGIN_AGAIN: &str =
    "run `clavis login` again; the secret may have been removed or expired";

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// Map an error answer of `POST {authority}/oauth2/v2.0/token`.
pub fn from_token_response(status: u16, body: &[u8], scope: &str) -> Error {
    let Ok(oauth) = serde_json::from_slice::<OAuthError>(body) else {
        let err = unexpected(status, body).status(status);
        return if status == 404 {
            err.hint("check the authority: it must be https://HOST:PORT/TENANT, with the tenant's name or id")
        } else {
            err
        };
    };
    // Entra descriptions carry "Trace ID: ..." etc. on later lines; the first says it all.
    let description = oauth.error_description.as_deref().unwrap_or_default();
    let first = description.lines().next().unwrap_or_default().trim();
    let reason = if first.is_empty() {
        format!("token request failed: {}", oauth.error)
    } else {
        format!("token request failed: {}: {first}", oauth.error)
    };
    let err = Error::new(reason).status(status);
    let code = oauth.error_codes.first().copied();
    match (code, oauth.error.as_str()) {
        (Some(700016), _) => err.hint(
            "no application has this client id in the authority's tenant; check --client-id and the tenant, then run `clavis login` again",
        ),
        (Some(500011), _) | (_, "invalid_resource") => err.hint(format!(
            "no application in this tenant has the resource of scope '{scope}'; use its identifier URI or appId followed by /.default"
        )),
        (Some(1002012), _) | (_, "invalid_scope") => {
            err.hint("the scope must be RESOURCE/.default, for example api://my-api/.default")
        }
        (Some(7000215 | 7000222), _) | (_, "invalid_client") => err.hint(LOGIN_AGAIN),
        _ if status == 401 => err.hint(LOGIN_AGAIN),
        _ => err,
    }
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Map an error answer of the management API (`/v1.0/...`); API names in the
/// server's message become the CLI's (`words.rs`).
pub fn from_graph_response(status: u16, body: &[u8]) -> Error {
    let err = match serde_json::from_slice::<GraphErrorBody>(body) {
        Ok(GraphErrorBody { error }) => {
            // The server's words are for API users; ours name commands and flags.
            let message = crate::words::cli_words(&error.message);
            let reason = match (message.is_empty(), error.code.is_empty()) {
                (false, false) => format!("{message} ({})", error.code),
                (false, true) => message,
                (true, false) => error.code,
                (true, true) => format!("the server answered {status}"),
            };
            Error::new(reason)
        }
        Err(_) => unexpected(status, body),
    };
    let err = err.status(status);
    match status {
        401 => err.hint("run `clavis login` again; the profile's token was not accepted"),
        403 => err.hint(
            "the profile's application lacks the management role for this; an admin can grant it with \
             `clavis role grant --client APP --resource api://clavis --role Application.ReadWrite.All`",
        ),
        _ => err,
    }
}

/// An error answer that is not in any format we know: say the status, and the
/// body only if it is short plain text (not an HTML error page).
fn unexpected(status: u16, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if status == 400 && text.contains(PLAIN_HTTP_TO_HTTPS) {
        // Clavis's (and nginx's) answer to http:// sent to its TLS port.
        return Error::new("the server speaks HTTPS, but the request was sent as plain HTTP").hint(
            "use https:// in the authority (`clavis login --authority https://HOST:PORT/TENANT`)",
        );
    }
    if !text.is_empty() && text.len() <= 200 && !text.starts_with('<') {
        Error::new(format!("the server answered {status}: {text}"))
    } else {
        Error::new(format!("the server answered {status}"))
    }
}

/// What the answer to plain HTTP sent to an HTTPS port says (Clavis's
/// `http/plain_on_tls.rs`, and nginx's "The plain HTTP request was sent to
/// HTTPS port").
const PLAIN_HTTP_TO_HTTPS: &str = "plain HTTP request was sent to";

/// Map a failure to get any answer at all (connection, TLS, timeout).
///
/// `origin` is the server's `scheme://host:port`; `ca_file` the profile's CA, if any.
pub fn from_transport(err: &reqwest::Error, origin: &str, ca_file: Option<&str>) -> Error {
    let mut chain = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    from_transport_chain(&chain, err.is_timeout(), origin, ca_file)
}

/// [`from_transport`] on the error's `Display` chain, outermost first.
pub fn from_transport_chain(
    chain: &[String],
    timeout: bool,
    origin: &str,
    ca_file: Option<&str>,
) -> Error {
    let all = chain.join(": ");
    let has = |needle: &str| {
        all.to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    };
    let serve_hint = format!("is `clavis serve` running at {origin}?");
    if has("UnknownIssuer") || has("unknown issuer") || has("UnknownCA") {
        let err = Error::new(format!(
            "the certificate of {origin} is not trusted: it was issued by an unknown authority"
        ));
        return match ca_file {
            Some(ca) => err.hint(format!(
                "this profile trusts only {ca}; run `clavis login --ca-file DATA_DIR/tls/ca.pem` with the server's CA"
            )),
            None => err.hint("pass --ca-file DATA_DIR/tls/ca.pem to `clavis login`"),
        };
    }
    if has("not valid for name") || has("NotValidForName") {
        return Error::new(format!(
            "the certificate of {origin} does not name that host"
        ))
        .hint("use the host name the server's certificate was issued for in --authority");
    }
    if has("certificate") && (has("expired") || has("NotValidYet")) {
        return Error::new(format!(
            "the certificate of {origin} has expired or is not valid yet"
        ));
    }
    if has("invalid peer certificate") {
        let cause = chain.last().map(String::as_str).unwrap_or_default();
        return Error::new(format!("the certificate of {origin} was rejected: {cause}")).hint(
            "check that --ca-file given to `clavis login` is the server's CA, DATA_DIR/tls/ca.pem",
        );
    }
    if has("connection refused") {
        return Error::new(format!("cannot connect to {origin}: connection refused"))
            .hint(serve_hint);
    }
    if has("failed to lookup address") || has("dns error") {
        return Error::new(format!("cannot resolve the host of {origin}"))
            .hint("check the host name in the authority URL");
    }
    if timeout {
        return Error::new(format!("{origin} did not answer in time")).hint(serve_hint);
    }
    if has("InvalidContentType") || has("corrupt message") || has("wrong version number") {
        let err = Error::new(format!("TLS handshake with {origin} failed"));
        return match origin.strip_prefix("https://") {
            // A plain-HTTP server answers a TLS ClientHello with HTTP.
            Some(rest) => err.hint(format!(
                "the server at {origin} speaks plain HTTP, not HTTPS: use http://{rest} in the \
                 authority (`clavis login --authority http://{rest}/TENANT`)"
            )),
            None => err.hint(
                "check the authority's scheme: http:// for a plain-HTTP server, https:// for TLS",
            ),
        };
    }
    // The innermost cause is usually the most telling one.
    let cause = chain
        .last()
        .map(String::as_str)
        .unwrap_or("unknown failure");
    Error::new(format!("request to {origin} failed: {cause}")).hint(serve_hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "clv_ShouldNeverBePrinted42";

    fn token_error(status: u16, body: serde_json::Value) -> Error {
        from_token_response(status, body.to_string().as_bytes(), "api://orders/.default")
    }

    #[test]
    fn token_errors_name_the_entra_code_and_suggest_the_next_step() {
        let expired = token_error(
            401,
            json!({"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys are expired.\r\nTrace ID: 1","error_codes":[7000222]}),
        );
        assert_eq!(
            expired.reason(),
            "token request failed: invalid_client: AADSTS7000222: The provided client secret keys are expired."
        );
        assert_eq!(expired.hint_text(), Some(LOGIN_AGAIN));

        let resource = token_error(
            400,
            json!({"error":"invalid_resource","error_description":"AADSTS500011: not found","error_codes":[500011]}),
        );
        assert!(resource
            .hint_text()
            .unwrap()
            .contains("api://orders/.default"));
        let scope = token_error(
            400,
            json!({"error":"invalid_scope","error_codes":[1002012]}),
        );
        assert_eq!(scope.reason(), "token request failed: invalid_scope");
        assert!(scope.hint_text().unwrap().contains("/.default"));
        let unknown_app = token_error(
            400,
            json!({"error":"unauthorized_client","error_codes":[700016]}),
        );
        assert!(unknown_app.hint_text().unwrap().contains("--client-id"));
        let plain_404 = from_token_response(404, b"<html>Not Found</html>", "s");
        assert_eq!(plain_404.reason(), "the server answered 404");
        assert!(plain_404.hint_text().unwrap().contains("HOST:PORT/TENANT"));
    }

    #[test]
    fn graph_errors_by_status() {
        let body = |code: &str, msg: &str| json!({"error":{"code":code,"message":msg}}).to_string();
        let unauth = from_graph_response(
            401,
            body("InvalidAuthenticationToken", "Access token has expired.").as_bytes(),
        );
        assert_eq!(
            unauth.reason(),
            "Access token has expired. (InvalidAuthenticationToken)"
        );
        assert!(unauth.hint_text().unwrap().contains("clavis login"));
        let missing = from_graph_response(
            404,
            body("Request_ResourceNotFound", "Resource 'x' does not exist.").as_bytes(),
        );
        assert!(missing.is_not_found() && missing.hint_text().is_none());
        let bad = from_graph_response(
            400,
            body("Request_BadRequest", "Invalid value\nfor endDateTime").as_bytes(),
        );
        assert_eq!(
            bad.reason(),
            "Invalid value for --expires (Request_BadRequest)"
        );
        assert_eq!(
            from_graph_response(502, b"").reason(),
            "the server answered 502"
        );
        assert_eq!(
            from_graph_response(500, b"oops").reason(),
            "the server answered 500: oops"
        );
    }

    #[test]
    fn transport_failures_get_hints() {
        let chain = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let tls = chain(&[
            "error sending request",
            "client error (Connect)",
            "invalid peer certificate: UnknownIssuer",
        ]);
        let err = from_transport_chain(&tls, false, "https://h:8443", None);
        assert_eq!(
            err.hint_text(),
            Some("pass --ca-file DATA_DIR/tls/ca.pem to `clavis login`")
        );
        let err = from_transport_chain(&tls, false, "https://h:8443", Some("/old/ca.pem"));
        assert!(err.hint_text().unwrap().contains("/old/ca.pem"));
        let name = chain(&[
            "x",
            "invalid peer certificate: certificate not valid for name \"h\"",
        ]);
        assert!(from_transport_chain(&name, false, "https://h", None)
            .reason()
            .contains("does not name"));
        let other_cert = chain(&[
            "x",
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
        ]);
        let err = from_transport_chain(&other_cert, false, "https://h", None);
        assert!(
            err.reason().contains("was rejected") && err.hint_text().unwrap().contains("ca.pem")
        );
        let timeout = chain(&["operation timed out"]);
        assert!(from_transport_chain(&timeout, true, "https://h", None)
            .reason()
            .contains("did not answer"));
        // https:// to a plain-HTTP server: rustls reads HTTP as a bad record.
        let plain = chain(&[
            "error sending request",
            "received corrupt message of type InvalidContentType",
        ]);
        let err = from_transport_chain(&plain, false, "https://h:8080", None);
        assert!(
            err.hint_text().unwrap().contains("use http://h:8080"),
            "{:?}",
            err.hint_text()
        );
        // http:// to an HTTPS server: its plain answer says to use https.
        let err = from_graph_response(
            400,
            b"400 Bad Request: the plain HTTP request was sent to an HTTPS port; use https://h/",
        );
        assert!(err.hint_text().unwrap().contains("use https://"), "{err}");
        let other = chain(&["error sending request", "something odd"]);
        assert_eq!(
            from_transport_chain(&other, false, "https://h", None).reason(),
            "request to https://h failed: something odd"
        );
    }

    #[test]
    fn rendered_errors_are_one_line_plus_hint_and_redacted() {
        let err = Error::new(format!("server said:\n  {SECRET} is wrong"))
            .hint(format!("try\r\nagain {SECRET}"))
            .redact(SECRET);
        assert_eq!(
            err.render(),
            "error: server said: [redacted] is wrong\nhint: try again [redacted]\n"
        );
        let long = Error::new("x".repeat(1000));
        assert!(long.reason().chars().count() <= MAX_REASON + 1);
    }

    /// Whatever the server sends back, the secret it may echo is scrubbed by
    /// the token path's `redact`; and no mapping adds anything secret itself.
    #[test]
    fn no_mapping_invents_secret_content() {
        let bodies = [
            json!({"error":"invalid_client","error_description":"bad"}).to_string(),
            json!({"error":{"code":"X","message":"y"}}).to_string(),
            String::new(),
        ];
        for status in [400, 401, 403, 404, 500] {
            for body in &bodies {
                let texts = [
                    from_token_response(status, body.as_bytes(), "api://x/.default").render(),
                    from_graph_response(status, body.as_bytes()).render(),
                ];
                for text in texts {
                    assert!(!text.contains(SECRET));
                    assert!(
                        text.lines().count() <= 2 && text.starts_with("error: "),
                        "{text}"
                    );
                }
            }
        }
    }
}
