//! Compact JWS as Clavis reads tokens back (keys/jws.rs, the management
//! API's unverified `tid`): any string is refused or read without a panic,
//! and a token of ours changed anywhere never verifies with changed header
//! or claims (only an equivalent signature could pass, and none was found).
//! Also: published JWKs of any shape load or are refused without a panic.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use clavis::fuzzing::unverified_tid;
use clavis::keys::jws;
use clavis::keys::{Algorithm, SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

struct Key {
    verifier: VerifyingKey,
    token: String,
}

/// One key and one token per algorithm, made once per process.
fn keys() -> &'static [Key] {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Algorithm::ALL
            .into_iter()
            .map(|alg| {
                let (key, _) = SigningKey::generate(alg).expect("key");
                let claims = json!({
                    "iss": "https://clavis.example/7d2c1c52-5d46-4f7b-8f0e-2f1c0c6d9a11/v2.0",
                    "tid": "7d2c1c52-5d46-4f7b-8f0e-2f1c0c6d9a11",
                    "roles": ["Application.ReadWrite.All"],
                    "exp": 1_900_000_000,
                });
                Key {
                    verifier: VerifyingKey::from_jwk(key.public_jwk()).expect("jwk"),
                    token: jws::encode(&key, &claims).expect("a software key signs"),
                }
            })
            .collect()
    })
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(u16, u8),
    Insert(u16, u8),
    Remove(u16),
    Truncate(u16),
    Append(Vec<u8>),
}

fn read_anything(token: &str) {
    let _ = jws::peek_header(token);
    for key in keys() {
        let _ = jws::decode::<Value>(token, &key.verifier);
    }
    for part in token.split('.') {
        let _ = unverified_tid(part);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u8::arbitrary(&mut u) else {
        return;
    };
    match mode.wrapping_sub(b'0') % 3 {
        // Arbitrary text as a token.
        0 => {
            let rest = u.take_rest();
            if let Ok(token) = std::str::from_utf8(rest) {
                read_anything(token);
            }
        }
        // One of our tokens, edited.
        1 => {
            let Ok(which) = u8::arbitrary(&mut u) else {
                return;
            };
            let key = &keys()[usize::from(which) % keys().len()];
            let Ok(edits) = Vec::<Edit>::arbitrary(&mut u) else {
                return;
            };
            let mut bytes = key.token.clone().into_bytes();
            for edit in edits {
                let at = |i: u16, len: usize| usize::from(i) % (len + 1);
                match edit {
                    Edit::Set(i, b) if !bytes.is_empty() => {
                        let i = usize::from(i) % bytes.len();
                        bytes[i] = b;
                    }
                    Edit::Insert(i, b) => bytes.insert(at(i, bytes.len()), b),
                    Edit::Remove(i) if !bytes.is_empty() => {
                        bytes.remove(usize::from(i) % bytes.len());
                    }
                    Edit::Truncate(i) => bytes.truncate(at(i, bytes.len())),
                    Edit::Append(more) => bytes.extend(more),
                    _ => {}
                }
            }
            let Ok(edited) = String::from_utf8(bytes) else {
                return;
            };
            read_anything(&edited);
            if let Ok(claims) = jws::decode::<Value>(&edited, &key.verifier) {
                let signed = |t: &str| t.rsplit_once('.').map(|(input, _)| input.to_owned());
                assert_eq!(
                    signed(&edited),
                    signed(&key.token),
                    "an edited header or payload verified: {edited}"
                );
                assert_eq!(claims["tid"], "7d2c1c52-5d46-4f7b-8f0e-2f1c0c6d9a11");
            }
        }
        // A JWK of any shape.
        _ => {
            let Ok(jwk) = serde_json::from_slice::<Value>(u.take_rest()) else {
                return;
            };
            if let Ok(verifier) = VerifyingKey::from_jwk(&jwk) {
                for key in keys() {
                    let (input, sig) = key.token.rsplit_once('.').expect("three parts");
                    let _ = verifier.verify(input.as_bytes(), sig.as_bytes());
                }
            }
        }
    }
});
