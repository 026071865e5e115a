//! A whole token request (oauth/request.rs): content type, query string,
//! Authorization header and body chosen by the fuzzer, with a canary secret
//! placed in the body, the Basic header or the URL. Never panics; a secret
//! in the query is always refused; the method matches where the secret was;
//! the canary never appears in an error description or in `Debug`.
#![no_main]

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clavis::oauth::request::{self, AuthMethod};
use libfuzzer_sys::fuzz_target;

const CANARY: &str = "Kq7vSecretCanary";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    content_type: Option<&'a str>,
    query: Option<&'a str>,
    authorization: Option<&'a [u8]>,
    body: &'a [u8],
    /// 0: no canary; 1: in the body; 2: in a Basic header; 3: in the query.
    canary_at: u8,
    /// Appended to the canary: may break its encoding.
    canary_tail: &'a str,
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fuzz_target!(|input: Input| {
    let Input {
        content_type,
        query,
        authorization,
        body,
        canary_at,
        canary_tail,
    } = input;
    let canary_at = canary_at % 4;
    let elsewhere = [
        content_type.unwrap_or_default().as_bytes(),
        query.unwrap_or_default().as_bytes(),
        authorization.unwrap_or_default(),
        body,
        canary_tail.as_bytes(),
    ];
    // The canary must be only where we put it.
    if elsewhere.iter().any(|part| contains(part, "SecretCanary")) {
        return;
    }
    let secret = format!("{CANARY}{canary_tail}");
    let mut body = body.to_vec();
    let mut query = query.map(str::to_owned);
    let mut authorization = authorization.map(<[u8]>::to_vec);
    match canary_at {
        1 => {
            body.extend_from_slice(b"&client_secret=");
            body.extend_from_slice(secret.as_bytes());
        }
        2 => {
            let header = format!("Basic {}", STANDARD.encode(format!("app:{secret}")));
            authorization = Some(header.into_bytes());
        }
        3 => {
            let q = query.get_or_insert_with(String::new);
            q.push_str("&client_secret=");
            q.push_str(&secret);
        }
        _ => {}
    }
    let result = request::parse(
        content_type,
        query.as_deref(),
        authorization.as_deref(),
        &body,
    );
    match result {
        Ok(req) => {
            assert_ne!(canary_at, 3, "a secret in the query string was accepted");
            assert!(!format!("{req:?}").contains(CANARY), "secret in Debug");
            assert!(!req.grant_type.is_empty());
            match req.method {
                AuthMethod::Basic => {
                    assert!(request::uses_basic(authorization.as_deref()));
                    assert!(req.client_id.is_some() && req.client_secret.is_some());
                }
                AuthMethod::Post => assert!(req.client_secret.is_some()),
                AuthMethod::None => assert!(req.client_secret.is_none()),
            }
            let expected = match canary_at {
                1 => Some(AuthMethod::Post),
                2 => Some(AuthMethod::Basic),
                _ => None,
            };
            if let Some(method) = expected {
                assert_eq!(req.method, method);
                let secret = req.client_secret.as_ref().expect("the canary secret");
                assert!(secret.expose().starts_with(CANARY));
            }
        }
        Err(e) => {
            assert!(
                !e.description.contains(CANARY),
                "secret in an error: {}",
                e.description
            );
            assert!(
                !format!("{e:?}").contains(CANARY),
                "secret in an error's Debug"
            );
        }
    }
});
