//! The client-credentials scope: exactly one `{resource}/.default`, where
//! `{resource}` is an identifier URI or an appId (Entra v2.0 semantics).

use super::error::shorten;
use super::OAuthError;

/// OpenID Connect scopes a client may add; they mean nothing for an app token.
const IGNORED: [&str; 4] = ["openid", "profile", "offline_access", "email"];
/// Longest resource identifier accepted.
const MAX_RESOURCE_LEN: usize = 2048;

/// The one resource a token is requested for.
pub fn resource_of(scope: &str) -> Result<&str, OAuthError> {
    let mut wanted = scope
        .split([' ', '\t', '\n', '\r'])
        .filter(|s| !s.is_empty() && !IGNORED.contains(s));
    let first = wanted.next().ok_or_else(|| OAuthError::missing("scope"))?;
    if wanted.next().is_some() {
        return Err(OAuthError::many_resources());
    }
    match first.strip_suffix("/.default") {
        Some(resource) if !resource.is_empty() && resource.len() <= MAX_RESOURCE_LEN => {
            Ok(resource)
        }
        _ => Err(OAuthError::bad_scope(&shorten(first))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uri_and_app_id_resources() {
        assert_eq!(
            resource_of("api://orders/.default").unwrap(),
            "api://orders"
        );
        assert_eq!(
            resource_of("openid 6f1c1e9e-0000-4000-8000-000000000000/.default").unwrap(),
            "6f1c1e9e-0000-4000-8000-000000000000"
        );
        assert_eq!(
            resource_of("https://x.example/api/.default").unwrap(),
            "https://x.example/api"
        );
    }

    #[test]
    fn refuses_other_shapes_with_entra_codes() {
        assert_eq!(resource_of("api://orders/read").unwrap_err().code, 1002012);
        assert_eq!(resource_of("/.default").unwrap_err().code, 1002012);
        assert_eq!(
            resource_of("a/.default b/.default").unwrap_err().code,
            70011
        );
        assert_eq!(resource_of("openid").unwrap_err().code, 900144);
        let huge = "x".repeat(100_000);
        let err = resource_of(&huge).unwrap_err();
        assert!(err.description.len() < 600);
    }
}
