//! The optional bearer token of the metrics listener (`CLAVIS_METRICS_TOKEN`):
//! required when metrics are served off loopback, compared in constant time,
//! never logged (its `Debug` is redacted, its memory zeroed on drop).

use std::sync::Arc;

use aws_lc_rs::digest::{digest, SHA256};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The environment variable holding the token (never a flag: `ps` shows flags).
pub const METRICS_TOKEN_ENV: &str = "CLAVIS_METRICS_TOKEN";

/// Shortest token accepted: a guessable token on an open port is no lock.
const MIN_LEN: usize = 16;

/// A bearer token for `/metrics`.
#[derive(Clone)]
pub struct MetricsToken(Arc<Zeroizing<String>>);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken([redacted])")
    }
}

impl MetricsToken {
    /// The token as configured; refused when it is too short or holds
    /// characters a Bearer header cannot carry (the message never quotes it).
    pub fn parse(value: Zeroizing<String>) -> Result<Self, String> {
        let ok = value.len() >= MIN_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"');
        if !ok {
            return Err(format!(
                "{METRICS_TOKEN_ENV} must be at least {MIN_LEN} visible ASCII characters \
                 (e.g. the output of `openssl rand -hex 32`)"
            ));
        }
        Ok(Self(Arc::new(value)))
    }

    /// Whether `presented` is the token. Both sides are hashed first, so
    /// the comparison takes the same time whatever the length.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let want = digest(&SHA256, self.0.as_bytes());
        let got = digest(&SHA256, presented);
        want.as_ref().ct_eq(got.as_ref()).into()
    }
}

/// Middleware: `Authorization: Bearer TOKEN` or 401 (RFC 6750).
pub async fn require_token(
    State(token): State<MetricsToken>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
                .map(|_| &v[7..])
        });
    match presented {
        Some(presented) if token.matches(presented) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"clavis-metrics\"")],
            "401: /metrics needs `Authorization: Bearer` with the token in CLAVIS_METRICS_TOKEN\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> Result<MetricsToken, String> {
        MetricsToken::parse(Zeroizing::new(s.to_owned()))
    }

    #[test]
    fn a_token_matches_itself_only() {
        let t = token("0123456789abcdef-token").unwrap();
        assert!(t.matches(b"0123456789abcdef-token"));
        for wrong in [
            &b""[..],
            b"0123456789abcdef-toke",
            b"0123456789abcdef-token ",
            b"x",
        ] {
            assert!(!t.matches(wrong));
        }
    }

    #[test]
    fn short_or_unprintable_tokens_are_refused_without_being_quoted() {
        for bad in [
            "short",
            "0123456789abcdef ghi",
            "0123456789abcdef\u{e9}",
            "0123456789abcdef,",
        ] {
            let err = token(bad).unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
        let t = token("0123456789abcdef").unwrap();
        assert_eq!(format!("{t:?}"), "MetricsToken([redacted])");
    }
}
