//! "HSM gone" at run time: the SoftHSM token's directory is deleted while
//! the process has the token open. A test binary of its own, because
//! SoftHSM 2.6.1 then fails `C_GetSlotList` with CKR_GENERAL_ERROR for the
//! whole module, for the rest of the process: no other token could be
//! opened after this test.

use std::sync::Arc;

use clavis::keys::pkcs11::testing::SoftHsm;
use clavis::keys::pkcs11::Pkcs11Error;
use clavis::keys::{jws, Algorithm, SigningKey};
use clavis::oauth::error::OAuthError;

#[test]
fn a_deleted_token_directory_fails_every_operation_and_signing_answers_503() {
    let hsm = SoftHsm::new();
    let token = Arc::new(hsm.open().unwrap());
    let made = token.generate_signing_key(Algorithm::Es256).unwrap();
    let key = SigningKey::in_token(token.clone(), made.clone()).unwrap();
    token.ensure_wrapping_key("kek").unwrap();
    let sealed = token.encrypt("kek", b"a", b"p").unwrap();
    jws::encode(&key, &serde_json::json!({"sub":"a"})).unwrap();

    std::fs::remove_dir_all(hsm.token_dir()).unwrap();

    // Signing: C_Sign says CKR_OBJECT_HANDLE_INVALID, the lookup again
    // finds nothing; the token endpoint answers 503.
    let err = jws::encode(&key, &serde_json::json!({"sub":"a"})).unwrap_err();
    assert!(matches!(*err.source, Pkcs11Error::NotFound { .. }), "{err}");
    assert_eq!(OAuthError::from(err).kind.status(), 503);
    // Envelope encryption: the wrapping key is gone too.
    let err = token.encrypt("kek", b"a", b"p").unwrap_err();
    assert_eq!(
        err.return_code(),
        Some("CKR_OBJECT_HANDLE_INVALID"),
        "{err}"
    );
    let err = token.decrypt("kek", b"a", &sealed).unwrap_err();
    assert!(matches!(err, Pkcs11Error::NotFound { .. }), "{err}");
    // New keys cannot be made: CKR_GENERAL_ERROR.
    let err = token.generate_signing_key(Algorithm::Es256).unwrap_err();
    assert_eq!(err.return_code(), Some("CKR_GENERAL_ERROR"), "{err}");
    let err = token.ensure_wrapping_key("kek-2").unwrap_err();
    assert_eq!(err.return_code(), Some("CKR_GENERAL_ERROR"), "{err}");
    // And a restart of the provider fails at start-up.
    let err = hsm.open().unwrap_err();
    assert_eq!(err.return_code(), Some("CKR_GENERAL_ERROR"), "{err}");
    assert!(err.to_string().contains("C_GetSlotList"), "{err}");
}
