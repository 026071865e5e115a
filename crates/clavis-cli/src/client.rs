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
#[derive(Debug)]
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
        Ok(Connection { http, authority, ca_file: ca_file.map(Path::to_owned) })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Client-credentials grant: `POST {authority}/oauth2/v2.0/token` for `scope`.
    pub async fn token(&self, client_id: Uuid, secret: &ClientSecret, scope: &str) -> Result<TokenResponse, Error> {
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
            let raw: Value = serde_json::from_slice(&body)
                .map_err(|_| Error::new("the token endpoint answered with something that is not JSON"))?;
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
    let pem = std::fs::read(path).map_err(|e| Error::new(format!("cannot read CA file {}: {e}", path.display())))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(Error::new(format!("{} holds no PEM certificate", path.display()))
            .hint("pass the server's CA certificate, DATA_DIR/tls/ca.pem")),
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
        let token = conn.token(settings.client_id, &profile.secret, MANAGEMENT_SCOPE).await?;
        let base = conn.authority().management_base();
        Ok(Session { conn, token: token.access_token, base })
    }

    /// `{base}/v1.0/{segments...}`.
    pub fn url(&self, segments: &[&str]) -> Url {
        api_url(&self.base, segments)
    }

    pub async fn get(&self, url: Url) -> Result<Value, Error> {
        self.call(Method::GET, url, None)
            .await?
            .ok_or_else(|| Error::new("the server answered with no content where an object was expected"))
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

    async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Option<Value>, Error> {
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
        let value = serde_json::from_slice(&body)
            .map_err(|_| Error::new(format!("the server answered {status} with something that is not JSON")))?;
        Ok(Some(value))
    }
}
