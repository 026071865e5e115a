//! Tests against real SoftHSM2 tokens (one per test, see [`testing`]).

use std::sync::Arc;

use serde_json::json;
use zeroize::Zeroizing;

use super::testing::{SoftHsm, SOFTHSM_MODULE};
use super::*;
use crate::keys::{Algorithm, VerifyingKey};

fn verifier(key: &TokenKey) -> VerifyingKey {
    let mut jwk = key.public_jwk.clone();
    jwk["alg"] = json!(key.alg.as_str());
    VerifyingKey::from_jwk(&jwk).unwrap()
}

#[test]
fn every_algorithm_generates_in_the_token_and_its_signatures_verify() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    for alg in Algorithm::ALL {
        let key = token.generate_signing_key(alg).unwrap();
        assert_eq!(key.key_id.len(), 32, "{alg:?}");
        let sig = token.sign(&key.key_id, alg, b"header.payload").unwrap();
        let verifier = verifier(&key);
        assert!(verifier.verify(b"header.payload", &sig), "{alg:?}");
        assert!(!verifier.verify(b"header.payloaD", &sig), "{alg:?}");
        match alg {
            Algorithm::Es256 | Algorithm::EdDsa => assert_eq!(sig.len(), 64, "{alg:?}"),
            Algorithm::Rs256 => assert_eq!(sig.len(), 256),
        }
    }
}

#[test]
fn private_keys_are_sensitive_and_never_extractable() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    for alg in Algorithm::ALL {
        let key = token.generate_signing_key(alg).unwrap();
        let attrs = token.key_attributes(&key.key_id).unwrap();
        assert_eq!(
            attrs,
            KeyAttributes {
                sensitive: true,
                extractable: false,
                always_sensitive: true,
                never_extractable: true,
                secret_value: SecretValue::Sensitive,
            },
            "{alg:?}"
        );
    }
}

#[test]
fn a_key_is_found_again_by_a_second_handle_on_the_token() {
    let hsm = SoftHsm::new();
    let first = hsm.open().unwrap();
    let key = first.generate_signing_key(Algorithm::Es256).unwrap();
    let second = hsm.open().unwrap();
    let sig = second.sign(&key.key_id, key.alg, b"m").unwrap();
    assert!(verifier(&key).verify(b"m", &sig));
}

#[test]
fn signing_from_many_threads_uses_several_sessions() {
    let hsm = SoftHsm::new();
    let token = Arc::new(hsm.open().unwrap());
    let key = token.generate_signing_key(Algorithm::Es256).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (token, key) = (token.clone(), key.clone());
            std::thread::spawn(move || {
                for j in 0..25 {
                    let msg = format!("{i}.{j}");
                    let sig = token.sign(&key.key_id, key.alg, msg.as_bytes()).unwrap();
                    assert!(verifier(&key).verify(msg.as_bytes(), &sig));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn the_pool_lends_one_session_per_caller_and_keeps_a_bounded_number() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    token.session().unwrap().release();
    assert_eq!(lock(&token.idle).len(), 1);
    let held: Vec<_> = (0..MAX_IDLE_SESSIONS + 2)
        .map(|_| token.session().unwrap())
        .collect();
    let mut handles: Vec<_> = held.iter().map(|p| p.get().handle()).collect();
    handles.sort_unstable();
    handles.dedup();
    assert_eq!(
        handles.len(),
        MAX_IDLE_SESSIONS + 2,
        "each caller its own session"
    );
    held.into_iter().for_each(Pooled::release);
    assert_eq!(lock(&token.idle).len(), MAX_IDLE_SESSIONS);
    // A session dropped after an error is closed, not pooled.
    drop(token.session().unwrap());
    assert_eq!(lock(&token.idle).len(), MAX_IDLE_SESSIONS - 1);
}

#[test]
fn destroyed_keys_no_longer_sign() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    let key = token.generate_signing_key(Algorithm::Es256).unwrap();
    token.sign(&key.key_id, key.alg, b"m").unwrap();
    token.destroy_signing_key(&key.key_id).unwrap();
    let err = token.sign(&key.key_id, key.alg, b"m").unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&key.key_id), "{err}");
    let err = token.destroy_signing_key(&key.key_id).unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
    let err = token.sign("not-hex", key.alg, b"m").unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
}

#[test]
fn wrapping_round_trips_and_refuses_the_wrong_aad() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    token.ensure_wrapping_key("clavis-kek").unwrap();
    token.ensure_wrapping_key("clavis-kek").unwrap();
    let sealed = token
        .encrypt("clavis-kek", b"record-1", b"data key")
        .unwrap();
    assert_eq!(sealed.len(), 12 + 8 + 16);
    assert_eq!(
        token.decrypt("clavis-kek", b"record-1", &sealed).unwrap(),
        b"data key"
    );
    let again = token
        .encrypt("clavis-kek", b"record-1", b"data key")
        .unwrap();
    assert_ne!(again, sealed, "a fresh nonce each time");

    let err = token
        .decrypt("clavis-kek", b"record-2", &sealed)
        .unwrap_err();
    assert!(matches!(err, Pkcs11Error::Unseal { .. }), "{err}");
    let mut tampered = sealed.clone();
    tampered[14] ^= 1;
    let err = token
        .decrypt("clavis-kek", b"record-1", &tampered)
        .unwrap_err();
    assert!(matches!(err, Pkcs11Error::Unseal { .. }), "{err}");
    let err = token
        .decrypt("clavis-kek", b"record-1", &sealed[..20])
        .unwrap_err();
    assert!(matches!(err, Pkcs11Error::Malformed { .. }), "{err}");

    // Another handle on the token finds the same key by label.
    let other = hsm.open().unwrap();
    assert_eq!(
        other.decrypt("clavis-kek", b"record-1", &sealed).unwrap(),
        b"data key"
    );
    // A second wrapping key cannot open the first one's data.
    token.ensure_wrapping_key("clavis-kek-2").unwrap();
    let err = token
        .decrypt("clavis-kek-2", b"record-1", &sealed)
        .unwrap_err();
    assert!(matches!(err, Pkcs11Error::Unseal { .. }), "{err}");
    // Using a key that was never made is an error, not a new key.
    let err = token.encrypt("no-such-key", b"", b"x").unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
}

#[test]
fn a_wrong_pin_is_a_login_error_naming_the_return_code() {
    let hsm = SoftHsm::new();
    let err =
        Pkcs11Token::open(&hsm.module, &hsm.label, Zeroizing::new("0000".into())).unwrap_err();
    assert!(matches!(err, Pkcs11Error::Login { .. }), "{err}");
    assert_eq!(err.return_code(), Some("CKR_PIN_INCORRECT"));
    let text = err.to_string();
    assert!(text.contains(&hsm.label) && text.contains("PIN"), "{text}");
    assert!(!text.contains("0000"), "{text}");
}

#[test]
fn an_unknown_label_lists_the_tokens_present() {
    let hsm = SoftHsm::new();
    let err = Pkcs11Token::open(
        &hsm.module,
        "no-such-token",
        Zeroizing::new(hsm.pin.clone()),
    )
    .unwrap_err();
    assert!(matches!(err, Pkcs11Error::NoSuchToken { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("'no-such-token'"), "{text}");
    assert!(text.contains(&format!("'{}'", hsm.label)), "{text}");
}

#[test]
fn a_missing_module_says_so() {
    let missing = std::path::Path::new("/nonexistent/libpkcs11.so");
    let err = Pkcs11Token::open(missing, "x", Zeroizing::new("1234".into())).unwrap_err();
    assert!(matches!(err, Pkcs11Error::ModuleNotLoaded { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/libpkcs11.so"),
        "{err}"
    );
    // A file that is not a PKCS#11 module.
    let dir = tempfile::tempdir().unwrap();
    let not_a_module = dir.path().join("libfake.so");
    std::fs::write(&not_a_module, b"not a shared library").unwrap();
    let err = Pkcs11Token::open(&not_a_module, "x", Zeroizing::new("1".into())).unwrap_err();
    assert!(matches!(err, Pkcs11Error::ModuleNotLoaded { .. }), "{err}");
}

#[test]
fn debug_shows_the_label_but_never_the_pin() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    let shown = format!("{token:?}");
    assert!(shown.contains(&hsm.label), "{shown}");
    assert!(shown.contains(SOFTHSM_MODULE), "{shown}");
    assert!(!shown.contains(&hsm.pin), "{shown}");
}

/// What SoftHSM 2.6.1 does when another process deletes the keys from the
/// token while Clavis runs (a failure local to this token, safe to cause in
/// a shared test process): C_Sign and C_Encrypt on the cached handles
/// answer CKR_OBJECT_HANDLE_INVALID, C_FindObjects then finds nothing.
#[test]
fn keys_deleted_by_another_process_fail_every_call_without_a_fallback() {
    let hsm = SoftHsm::new();
    let token = hsm.open().unwrap();
    let key = token.generate_signing_key(Algorithm::Es256).unwrap();
    token.ensure_wrapping_key("kek").unwrap();
    let sealed = token.encrypt("kek", b"a", b"p").unwrap();
    token.sign(&key.key_id, key.alg, b"m").unwrap();

    hsm.pkcs11_tool(&["--delete-object", "--type", "privkey", "--id", &key.key_id]);
    hsm.pkcs11_tool(&["--delete-object", "--type", "secrkey", "--label", "kek"]);

    let err = token.sign(&key.key_id, key.alg, b"m").unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
    let err = token.encrypt("kek", b"a", b"p").unwrap_err();
    assert_eq!(
        err.return_code(),
        Some("CKR_OBJECT_HANDLE_INVALID"),
        "{err}"
    );
    let err = token.decrypt("kek", b"a", &sealed).unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
    // Only these keys are gone: the token still makes new ones.
    token.generate_signing_key(Algorithm::Es256).unwrap();
}

/// Process CPU time (user + system) in seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line, in clock ticks (100 Hz).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Signatures per CPU-second, token (SoftHSM) vs software, one thread:
/// `cargo test --release -p clavis --lib signatures_per_cpu_second -- --ignored --nocapture`.
#[test]
#[ignore]
fn signatures_per_cpu_second() {
    let hsm = SoftHsm::new();
    let token = Arc::new(hsm.open().unwrap());
    let message = [b'x'; 600]; // about a JWS signing input
    let run = |sign: &dyn Fn() -> usize| {
        let (wall, cpu) = (std::time::Instant::now(), cpu_seconds());
        let mut n = 0u64;
        while wall.elapsed().as_secs_f64() < 3.0 {
            assert!(sign() > 0);
            n += 1;
        }
        (
            n as f64 / (cpu_seconds() - cpu),
            n as f64 / wall.elapsed().as_secs_f64(),
        )
    };
    for alg in Algorithm::ALL {
        let made = token.generate_signing_key(alg).unwrap();
        let in_token = crate::keys::SigningKey::in_token(token.clone(), made).unwrap();
        let (software, _) = crate::keys::SigningKey::generate(alg).unwrap();
        let (t_cpu, t_wall) = run(&|| in_token.sign(&message).unwrap().len());
        let (s_cpu, s_wall) = run(&|| software.sign(&message).unwrap().len());
        println!(
            "{}: token {t_cpu:.0}/CPU-s ({t_wall:.0}/s wall), software {s_cpu:.0}/CPU-s \
             ({s_wall:.0}/s wall), token/software {:.2}",
            alg.as_str(),
            t_cpu / s_cpu
        );
    }
}
