//! The authority URL `https://HOST:PORT[/PREFIX]/TENANT` (Entra ID v2.0 layout)
//! and the URLs derived from it: the token endpoint and the management API base.

use reqwest::Url;

use crate::error::Error;

/// A parsed authority: http(s), no query or fragment, last path segment = tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority(Url);

impl Authority {
    /// Parse what a person or the bootstrap file gives; a trailing `/` is dropped.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let usage = || {
            // Never echo user info: it may hold a password.
            let reason = if text.contains('@') {
                "the authority is not a valid URL".to_owned()
            } else {
                format!("'{text}' is not an authority URL")
            };
            Error::new(reason)
                .hint("use https://HOST:PORT/TENANT, where TENANT is the tenant's name or id")
        };
        let mut url = Url::parse(text.trim()).map_err(|_| usage())?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(usage());
        }
        let path = url.path().trim_end_matches('/').to_owned();
        if path.is_empty() {
            return Err(usage());
        }
        url.set_path(&path);
        Ok(Authority(url))
    }

    /// The authority as text, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// `scheme://host:port`, for messages.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }

    /// `{authority}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> Url {
        let mut url = self.0.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have paths")
            .extend(["oauth2", "v2.0", "token"]);
        url
    }

    /// The management API's base: the authority without its last segment (the tenant).
    pub fn management_base(&self) -> Url {
        let mut url = self.0.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have paths")
            .pop();
        url
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Authority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Authority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Authority::parse(&text).map_err(|e| serde::de::Error::custom(e.reason().to_owned()))
    }
}

/// `base` + `/v1.0/` + `segments`, each segment percent-encoded as needed.
pub fn api_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("http(s) URLs have paths")
        .pop_if_empty()
        .push("v1.0")
        .extend(segments);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_token_and_management_urls() {
        let a = Authority::parse("https://id.example:8443/contoso").unwrap();
        assert_eq!(
            a.token_url().as_str(),
            "https://id.example:8443/contoso/oauth2/v2.0/token"
        );
        assert_eq!(a.management_base().as_str(), "https://id.example:8443/");
        assert_eq!(
            api_url(&a.management_base(), &["applications", "x y"]).as_str(),
            "https://id.example:8443/v1.0/applications/x%20y"
        );
        assert_eq!(a.origin(), "https://id.example:8443");
    }

    #[test]
    fn keeps_a_path_prefix_and_drops_a_trailing_slash() {
        let a = Authority::parse("http://127.0.0.1:9000/idp/2c3e1a52-0000-4000-8000-000000000001/")
            .unwrap();
        assert_eq!(
            a.as_str(),
            "http://127.0.0.1:9000/idp/2c3e1a52-0000-4000-8000-000000000001"
        );
        assert_eq!(a.management_base().as_str(), "http://127.0.0.1:9000/idp");
        assert_eq!(
            api_url(&a.management_base(), &["servicePrincipals"]).as_str(),
            "http://127.0.0.1:9000/idp/v1.0/servicePrincipals"
        );
    }

    #[test]
    fn rejects_what_is_not_an_authority() {
        for bad in [
            "id.example/contoso",
            "https://id.example",
            "https://id.example/",
            "ftp://id.example/t",
            "https://id.example/t?x=1",
            "https://user:pw@id.example/t",
        ] {
            let err = Authority::parse(bad).unwrap_err();
            assert!(err.hint_text().unwrap().contains("TENANT"), "{bad}");
        }
    }
}
