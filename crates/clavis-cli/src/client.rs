//! HTTP to a Clavis server: TLS trust (the profile's CA file only, else the
//! system roots), the client-credentials grant (RFC 6749 §4.4 with
//! `client_secret_post`) and the management API calls, with every failure
//! mapped to an [`Error`] by `error.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::authority::{api_url, Authority};
use crate::error::{self, Error};
use crate::odata;
use crate::profile::{ClientSecret, Profile};

/// The scope of Clavis's own management API.
pub const MANAGEMENT_SCOPE: &str = "api://clavis/.default";

/// An access token in memory: `Debug` says `[redacted]`, drop zeroes it.
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A successful token response: the JSON as sent, and the token itself.
#[derive(Debug)]
pub struct TokenResponse {
    pub raw: Value,
    pub access_token: AccessToken,
}

/// An HTTP client set up to talk to one authority.
#[derive(Debug, Clone)]
pub struct Connection {
    http: reqwest::Client,
    authority: Authority,
    ca_file: Option<PathBuf>,
}

impl Connection {
    /// Trust only the certificates in `ca_file` when given, the system roots otherwise.
    pub fn new(authority: Authority, ca_file: Option<&Path>) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("clavis-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            // Never replay a secret or a bearer token to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = ca_file {
            builder = builder.tls_certs_only(read_ca_file(path)?);
        }
        let http = builder
            .build()
            .map_err(|e| Error::new(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Connection {
            http,
            authority,
            ca_file: ca_file.map(Path::to_owned),
        })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Client-credentials grant: `POST {authority}/oauth2/v2.0/token` for `scope`.
    pub async fn token(
        &self,
        client_id: Uuid,
        secret: &ClientSecret,
        scope: &str,
    ) -> Result<TokenResponse, Error> {
        let client_id = client_id.to_string();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.expose()),
            ("scope", scope),
        ];
        let request = self.http.post(self.authority.token_url()).form(&form);
        let result = self.exchange(request).await.and_then(|(status, body)| {
            if !(200..300).contains(&status) {
                return Err(error::from_token_response(status, &body, scope));
            }
            let raw: Value = serde_json::from_slice(&body).map_err(|_| {
                Error::new("the token endpoint answered with something that is not JSON")
            })?;
            let token = raw
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::new("the token endpoint's answer has no access_token"))?;
            let access_token = AccessToken(Zeroizing::new(token.to_owned()));
            Ok(TokenResponse { raw, access_token })
        });
        // Belt and braces: whatever the server echoes, the secret is not printed.
        result.map_err(|e| e.redact(secret.expose()))
    }

    /// Send a request; any answer at all is `Ok((status, body))`.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), Error> {
        let transport = |e: reqwest::Error| {
            let ca = self.ca_file.as_ref().map(|p| p.display().to_string());
            error::from_transport(&e, &self.authority.origin(), ca.as_deref())
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        Ok((status, body.to_vec()))
    }
}

/// Read every certificate of a PEM file; none at all is an error.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::new(format!("cannot read CA file {}: {e}", path.display())))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(
            Error::new(format!("{} holds no PEM certificate", path.display()))
                .hint("pass the server's CA certificate, DATA_DIR/tls/ca.pem"),
        ),
    }
}

/// An authenticated connection to the management API (`{base}/v1.0/...`).
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    token: AccessToken,
    base: Url,
}

impl Session {
    /// Acquire a management token with the profile's credentials.
    pub async fn open(profile: &Profile) -> Result<Self, Error> {
        let settings = &profile.settings;
        let conn = Connection::new(settings.authority.clone(), settings.ca_file.as_deref())?;
        Self::over(conn, settings.client_id, &profile.secret).await
    }

    /// Acquire a management token as `client_id` over an existing connection.
    pub async fn over(
        conn: Connection,
        client_id: Uuid,
        secret: &ClientSecret,
    ) -> Result<Self, Error> {
        let token = conn.token(client_id, secret, MANAGEMENT_SCOPE).await?;
        let base = conn.authority().management_base();
        Ok(Session {
            conn,
            token: token.access_token,
            base,
        })
    }

    /// `{base}/v1.0/{segments...}`.
    /// The connection the session talks over (to get tokens as another app).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn url(&self, segments: &[&str]) -> Url {
        api_url(&self.base, segments)
    }

    pub async fn get(&self, url: Url) -> Result<Value, Error> {
        self.call(Method::GET, url, None).await?.ok_or_else(|| {
            Error::new("the server answered with no content where an object was expected")
        })
    }

    /// GET a collection and every page it links to, keeping at most `limit` items.
    pub async fn list(&self, url: Url, limit: Option<usize>) -> Result<Vec<Value>, Error> {
        odata::collect(url, limit, |page| self.get(page)).await
    }

    /// POST `body`; the answer's JSON, if it has any.
    pub async fn post(&self, url: Url, body: &Value) -> Result<Option<Value>, Error> {
        self.call(Method::POST, url, Some(body)).await
    }

    pub async fn patch(&self, url: Url, body: &Value) -> Result<(), Error> {
        self.call(Method::PATCH, url, Some(body)).await.map(drop)
    }

    pub async fn delete(&self, url: Url) -> Result<(), Error> {
        self.call(Method::DELETE, url, None).await.map(drop)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Option<Value>, Error> {
        let mut request = self
            .conn
            .http
            .request(method, url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, body) = self.conn.exchange(request).await?;
        if !(200..300).contains(&status) {
            return Err(error::from_graph_response(status, &body));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value = serde_json::from_slice(&body).map_err(|_| {
            Error::new(format!(
                "the server answered {status} with something that is not JSON"
            ))
        })?;
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileName, Settings};
    use crate::testserver;
    use serde_json::json;

    const SECRET: &str = "clv_TopSecretValue123";

    fn profile(url: &str) -> Profile {
        Profile {
            name: ProfileName::parse("default").unwrap(),
            settings: Settings {
                authority: Authority::parse(&format!("{url}/contoso")).unwrap(),
                client_id: Uuid::parse_str("6f1c2d3e-0000-4000-8000-0000000000aa").unwrap(),
                ca_file: None,
            },
            secret: ClientSecret::new(Zeroizing::new(SECRET.to_owned())),
        }
    }

    fn token_ok() -> (u16, String) {
        (200, json!({"token_type":"Bearer","expires_in":3600,"ext_expires_in":3600,"access_token":"tok-1"}).to_string())
    }

    #[tokio::test]
    async fn session_uses_client_secret_post_then_bearer_and_follows_pages() {
        let server = testserver::start(|req, base| match req.target.as_str() {
            "/contoso/oauth2/v2.0/token" => token_ok(),
            "/v1.0/applications" => (
                200,
                json!({"value":[{"id":"1"}],"@odata.nextLink":format!("{base}/v1.0/applications?$skiptoken=2")})
                    .to_string(),
            ),
            "/v1.0/applications?$skiptoken=2" => (200, json!({"value":[{"id":"2"}]}).to_string()),
            _ => (404, json!({"error":{"code":"Request_ResourceNotFound","message":"nope"}}).to_string()),
        })
        .await;
        let s = Session::open(&profile(&server.url)).await.unwrap();
        let items = s.list(s.url(&["applications"]), None).await.unwrap();
        assert_eq!(items, vec![json!({"id":"1"}), json!({"id":"2"})]);

        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(
            seen[0].header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            seen[0].body,
            format!(
                "grant_type=client_credentials&client_id=6f1c2d3e-0000-4000-8000-0000000000aa\
                 &client_secret={SECRET}&scope=api%3A%2F%2Fclavis%2F.default"
            )
        );
        assert!(seen[0].header("authorization").is_none());
        for page in &seen[1..] {
            assert_eq!(page.header("authorization"), Some("Bearer tok-1"));
        }
    }

    #[tokio::test]
    async fn rejected_secret_says_log_in_again_and_never_shows_the_secret() {
        let server = testserver::start(|_, _| {
            let description = format!("AADSTS7000215: Invalid client secret provided: {SECRET}\r\nTrace ID: t-1");
            let body = json!({"error":"invalid_client","error_description":description,"error_codes":[7000215]});
            (401, body.to_string())
        })
        .await;
        let err = Session::open(&profile(&server.url)).await.unwrap_err();
        let text = err.render();
        assert!(
            text.starts_with("error: token request failed: invalid_client: AADSTS7000215"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("Trace ID"), "{text}");
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("hint: run `clavis login` again"));
    }

    #[tokio::test]
    async fn graph_errors_keep_the_servers_message() {
        let server = testserver::start(|req, _| match req.target.as_str() {
            "/contoso/oauth2/v2.0/token" => token_ok(),
            _ => (
                403,
                json!({"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}})
                    .to_string(),
            ),
        })
        .await;
        let s = Session::open(&profile(&server.url)).await.unwrap();
        let err = s
            .post(s.url(&["applications"]), &json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            err.reason(),
            "Insufficient privileges to complete the operation. (Authorization_RequestDenied)"
        );
        assert!(err.hint_text().unwrap().contains("clavis role grant"));
    }

    #[tokio::test]
    async fn refused_connection_asks_whether_the_server_runs() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = Session::open(&profile(&url)).await.unwrap_err();
        assert_eq!(
            err.reason(),
            format!("cannot connect to {url}: connection refused")
        );
        assert_eq!(
            err.hint_text().unwrap(),
            format!("is `clavis serve` running at {url}?")
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let authority = Authority::parse("https://localhost:8443/contoso").unwrap();
        let err = Connection::new(authority.clone(), Some(&path)).unwrap_err();
        assert!(err.reason().contains("holds no PEM certificate"));
        let err = Connection::new(authority, Some(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(err.reason().starts_with("cannot read CA file"));
    }
}
