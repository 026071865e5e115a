//! HTTP Basic client authentication (RFC 6749 §2.3.1, oauth/request.rs):
//! any header value parses or is refused without a panic; what parses has a
//! non-empty id and secret; any id and secret, form-encoded as RFC 6749
//! says, come back exactly (and unencoded, as curl sends them, when they
//! need no escaping); a refused secret is never quoted in the error.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clavis::fuzzing::basic_credentials;
use clavis::oauth::request::uses_basic;
use libfuzzer_sys::fuzz_target;

const CANARY: &str = "Kq7vSecretCanary";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    raw: &'a [u8],
    id: &'a str,
    secret: &'a str,
    /// `Basic`, `basic`, `BASIC`, `bAsIc`.
    scheme: u8,
    /// Spaces around the credentials.
    spaces: u8,
}

/// RFC 6749 Appendix B: the form encoding of one component.
fn form_encode(s: &str) -> String {
    let pair = serde_urlencoded::to_string([("x", s)]).expect("encodes");
    pair["x=".len()..].to_owned()
}

fuzz_target!(|input: Input| {
    // Anything at all.
    if let Ok((id, secret)) = basic_credentials(input.raw) {
        assert!(!id.is_empty() && !secret.expose().is_empty());
        assert!(
            uses_basic(Some(input.raw)),
            "credentials read from a non-Basic header"
        );
    }

    let scheme = ["Basic", "basic", "BASIC", "bAsIc"][usize::from(input.scheme % 4)];
    let pad = " ".repeat(usize::from(input.spaces % 3));
    let header = |credentials: &str| {
        format!("{pad}{scheme} {pad}{}{pad}", STANDARD.encode(credentials)).into_bytes()
    };

    // Round trip of any id and secret.
    if !input.id.is_empty() && !input.secret.is_empty() {
        let encoded = header(&format!(
            "{}:{}",
            form_encode(input.id),
            form_encode(input.secret)
        ));
        let (id, secret) = basic_credentials(&encoded).expect("an encoded id and secret parse");
        assert_eq!(id, input.id);
        assert_eq!(secret.expose(), input.secret);

        let plain = |s: &str| !s.contains(['%', '+']);
        if plain(input.id) && !input.id.contains(':') && plain(input.secret) {
            let raw = header(&format!("{}:{}", input.id, input.secret));
            let (id, secret) = basic_credentials(&raw).expect("curl's unencoded form parses");
            assert_eq!((id.as_str(), secret.expose()), (input.id, input.secret));
        }
    }

    // A secret that fails to decode is not quoted back.
    if !input.secret.contains("SecretCanary") && !input.id.contains("SecretCanary") {
        let raw = header(&format!("{}:{CANARY}{}", input.id, input.secret));
        if let Err(e) = basic_credentials(&raw) {
            assert!(
                !e.description.contains(CANARY),
                "secret in an error: {}",
                e.description
            );
        }
    }
});
