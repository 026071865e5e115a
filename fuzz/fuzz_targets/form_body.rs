//! The token endpoint's form body (`application/x-www-form-urlencoded`,
//! crates/clavis/src/form.rs, oauth/request.rs): strict decoding never
//! panics, what it accepts re-encodes and decodes to the same pairs, and a
//! token request parsed from it is consistent with its parameters.
#![no_main]

use clavis::form;
use clavis::oauth::request::{self, AuthMethod};
use libfuzzer_sys::fuzz_target;

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fuzz_target!(|body: &[u8]| {
    let decoded = form::decode(body);
    if let Ok(pairs) = &decoded {
        // Round trip: encode what was decoded (any encoder's escaping), decode again.
        let encoded = serde_urlencoded::to_string(pairs).expect("pairs of strings encode");
        assert_eq!(
            form::decode(encoded.as_bytes()).as_ref(),
            Ok(pairs),
            "re-encoded form decodes differently"
        );
    }

    // The same body as a token request.
    match request::parse(FORM, None, None, body) {
        Ok(req) => {
            let pairs = decoded.expect("a request parsed from a body that does not decode");
            let value = |name: &str| {
                let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
                let first = values.next();
                assert!(values.next().is_none(), "duplicated {name} accepted");
                first.filter(|v| !v.is_empty())
            };
            assert_eq!(Some(&req.grant_type), value("grant_type"));
            assert_eq!(req.scope.as_ref(), value("scope"));
            assert_eq!(req.client_id.as_ref(), value("client_id"));
            let secret = value("client_secret");
            assert_eq!(
                req.client_secret.as_ref().map(|s| s.expose()),
                secret.map(String::as_str)
            );
            let method = if secret.is_some() {
                AuthMethod::Post
            } else {
                AuthMethod::None
            };
            assert_eq!(req.method, method);
            // Debug redacts the secret (unless the rest of it says the same).
            if let Some(secret) = secret.filter(|s| s.len() >= 4) {
                let shown = format!("{req:?}");
                let without = format!(
                    "{:?}",
                    request::TokenRequest {
                        client_secret: None,
                        ..req
                    }
                );
                let redacted = "Some(ClientSecret([redacted]))";
                if !without.contains(secret.as_str()) && !redacted.contains(secret.as_str()) {
                    assert!(!shown.contains(secret.as_str()), "secret in Debug: {shown}");
                }
            }
        }
        Err(e) => {
            assert!(
                e.description.len() <= 600,
                "error of {} bytes",
                e.description.len()
            );
        }
    }
});
