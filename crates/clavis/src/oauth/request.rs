//! Parsing a token request (RFC 6749 §3.2, §2.3.1, Appendix B) from the raw
//! form body, query string and Authorization header: strict UTF-8, no
//! duplicated parameters, client credentials from Basic or the body but not
//! both, and never from the URL query.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::OAuthError;
use crate::form::percent_decode;
use crate::secret::ClientSecret;

/// How the client sent its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic`: HTTP Basic header.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    Post,
    /// No secret at all.
    None,
}

/// A parsed token request. The secret is redacted in `Debug`.
#[derive(Debug)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<ClientSecret>,
    pub scope: Option<String>,
    pub method: AuthMethod,
}

/// A form request from a client that authenticates with its secret (token,
/// introspection and revocation endpoints): the parameters the endpoint
/// knows, each at most once, and the client's credentials.
#[derive(Debug)]
pub struct ClientForm {
    /// Known parameters that had a value, in the order of `known`.
    pub params: Vec<(&'static str, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<ClientSecret>,
    pub method: AuthMethod,
}

impl ClientForm {
    /// The value of a known parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a client's form request: never credentials in the URL query, a
/// form body in strict UTF-8, each `known` parameter (and `client_id`,
/// `client_secret`) at most once, and one authentication method.
pub fn parse_client_form(
    content_type: Option<&str>,
    query: Option<&str>,
    authorization: Option<&[u8]>,
    body: &[u8],
    known: &[&'static str],
) -> Result<ClientForm, OAuthError> {
    if query.is_some_and(carries_credentials) {
        return Err(OAuthError::secret_in_query());
    }
    let is_form = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| {
            ct.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::malformed(
            "the Content-Type must be application/x-www-form-urlencoded.",
        ));
    }
    let mut params: Vec<(&'static str, String)> = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut client_id = None;
    let mut client_secret = None;
    for (name, value) in decode_form(body)? {
        let Some(&key) = ["client_id", "client_secret"]
            .iter()
            .chain(known.iter())
            .find(|k| **k == name)
        else {
            continue;
        };
        if seen.contains(&key) {
            return Err(OAuthError::duplicated(key));
        }
        seen.push(key);
        // RFC 6749 §3.1: a parameter without a value is treated as omitted.
        if value.is_empty() {
            continue;
        }
        match key {
            "client_id" => client_id = Some(value),
            "client_secret" => client_secret = Some(ClientSecret::from_presented(value)),
            _ => params.push((key, value)),
        }
    }
    let basic = authorization.map(parse_basic).transpose()?;
    let (client_id, client_secret, method) = match (basic, client_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::malformed(
                "the client authenticated twice (Basic header and client_secret in the body); \
                 use exactly one method.",
            ))
        }
        (Some((id, secret)), None) => {
            if client_id.as_ref().is_some_and(|body_id| *body_id != id) {
                return Err(OAuthError::malformed(
                    "client_id in the body differs from the one in the Basic header.",
                ));
            }
            (Some(id), Some(secret), AuthMethod::Basic)
        }
        (None, Some(secret)) => (client_id, Some(secret), AuthMethod::Post),
        (None, None) => (client_id, None, AuthMethod::None),
    };
    Ok(ClientForm {
        params,
        client_id,
        client_secret,
        method,
    })
}

/// Parse the parts of an HTTP token request.
pub fn parse(
    content_type: Option<&str>,
    query: Option<&str>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Result<TokenRequest, OAuthError> {
    let form = parse_client_form(
        content_type,
        query,
        authorization,
        body,
        &["grant_type", "scope"],
    )?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::missing("grant_type"))?
        .to_owned();
    let scope = form.get("scope").map(str::to_owned);
    Ok(TokenRequest {
        grant_type,
        scope,
        client_id: form.client_id,
        client_secret: form.client_secret,
        method: form.method,
    })
}

/// Whether an Authorization header uses the Basic scheme (then a 401 carries
/// `WWW-Authenticate`), however malformed the rest of it is.
pub fn uses_basic(authorization: Option<&[u8]>) -> bool {
    authorization.is_some_and(|v| v.len() >= 5 && v[..5].eq_ignore_ascii_case(b"basic"))
}

/// Client id and secret from `Authorization: Basic ...`, each form-decoded
/// (RFC 6749 §2.3.1: clients URL-encode them; curl does not, and a Clavis
/// secret's alphabet makes both readings equal).
pub(crate) fn parse_basic(header: &[u8]) -> Result<(String, ClientSecret), OAuthError> {
    let bad = |why: &str| OAuthError::malformed(format!("the Authorization header {why}."));
    let header = std::str::from_utf8(header).map_err(|_| bad("is not valid UTF-8"))?;
    let (scheme, value) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("is not 'Basic <credentials>'"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad("must use the Basic scheme at the token endpoint"));
    }
    let decoded = zeroize::Zeroizing::new(
        STANDARD
            .decode(value.trim())
            .map_err(|_| bad("does not hold valid base64"))?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| bad("does not decode to UTF-8 text"))?;
    let (id, secret) = text
        .split_once(':')
        .ok_or_else(|| bad("does not hold 'client_id:client_secret'"))?;
    let id = percent_decode(id.as_bytes()).ok_or_else(|| bad("holds a badly encoded client id"))?;
    let secret = percent_decode(secret.as_bytes())
        .ok_or_else(|| bad("holds a badly encoded client secret"))?;
    if id.is_empty() || secret.is_empty() {
        return Err(bad("holds an empty client id or secret"));
    }
    Ok((id, ClientSecret::from_presented(secret)))
}

/// True if a query string names a client credential parameter. Checked
/// leniently (each name on its own, undecodable names compared raw, any
/// case): a malformed neighbour must not hide a secret from this check.
fn carries_credentials(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let raw = pair.split('=').next().unwrap_or_default();
        let name = percent_decode(raw.as_bytes()).unwrap_or_else(|| raw.to_owned());
        let name = name.trim().to_ascii_lowercase();
        name == "client_secret" || name == "client_assertion"
    })
}

fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    crate::form::decode(body).map_err(|e| OAuthError::malformed(format!("{e}.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn post_and_basic_both_parse() {
        let req = parse(FORM, None, None, b"grant_type=client_credentials&client_id=a&client_secret=s%2Bx&scope=api%3A%2F%2Fx%2F.default").unwrap();
        assert_eq!(req.method, AuthMethod::Post);
        assert_eq!(req.client_secret.unwrap().expose(), "s+x");
        assert_eq!(req.scope.as_deref(), Some("api://x/.default"));
        let basic = format!("Basic {}", STANDARD.encode("a%3Ab:s%2By"));
        let req = parse(
            FORM,
            None,
            Some(basic.as_bytes()),
            b"grant_type=client_credentials",
        )
        .unwrap();
        assert_eq!(req.method, AuthMethod::Basic);
        assert_eq!(req.client_id.as_deref(), Some("a:b"));
        assert_eq!(req.client_secret.unwrap().expose(), "s+y");
    }

    #[test]
    fn refuses_duplicates_query_secrets_and_double_auth() {
        assert_eq!(
            parse(FORM, None, None, b"grant_type=a&grant_type=b")
                .unwrap_err()
                .code,
            9002313
        );
        for query in [
            "client_secret=x&y=%ff",
            "y=%zz&client%5Fsecret=x",
            "CLIENT_SECRET=x",
            "client_assertion=x",
        ] {
            assert_eq!(
                parse(FORM, Some(query), None, b"grant_type=a")
                    .unwrap_err()
                    .code,
                9002313,
                "{query}"
            );
        }
        assert_eq!(
            parse(FORM, Some("client_secret=x"), None, b"grant_type=a")
                .unwrap_err()
                .code,
            9002313
        );
        let basic = format!("Basic {}", STANDARD.encode("a:b"));
        assert!(parse(
            FORM,
            None,
            Some(basic.as_bytes()),
            b"grant_type=a&client_secret=c"
        )
        .is_err());
    }

    #[test]
    fn refuses_bad_encodings_and_headers() {
        assert!(parse(FORM, None, None, b"grant_type=%ff").is_err());
        assert!(parse(FORM, None, None, b"grant_type=%zz").is_err());
        assert!(parse(FORM, None, None, b"grant_type=%4").is_err());
        assert!(parse(Some("application/json"), None, None, b"{}").is_err());
        assert!(parse(None, None, None, b"grant_type=a").is_err());
        for header in ["Basic", "Basic !!!", "Bearer abc", "Basic YWJj"] {
            assert!(
                parse(FORM, None, Some(header.as_bytes()), b"grant_type=a").is_err(),
                "{header}"
            );
        }
        assert_eq!(
            parse(FORM, None, None, b"scope=x").unwrap_err().code,
            900144
        );
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let basic = format!("Basic {}", STANDARD.encode("a:topsecret%zz"));
        let err = parse(FORM, None, Some(basic.as_bytes()), b"grant_type=a").unwrap_err();
        assert!(!err.description.contains("topsecret"));
        let err = parse(FORM, None, None, b"grant_type=a&client_secret=topsecret%ff").unwrap_err();
        assert!(!err.description.contains("topsecret"));
    }
}
