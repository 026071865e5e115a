//! Keys: the key provider ([`provider`]) with its key-encryption keys
//! ([`kek`]) and the envelope encryption that seals everything recoverable
//! at rest ([`envelope`], [`aead`]), token-signing keys ([`signing`]), compact JWS ([`jws`]),
//! each tenant's current signing key and JWKS ([`keyring`]) with a
//! self-signed certificate per key ([`certificate`]), the rotation
//! timeline of signing keys ([`lifecycle`]), the scheduler that rotates
//! them ([`rotation`]) and PKCS#11 tokens (HSMs) that hold keys and sign
//! ([`pkcs11`]).

pub mod aead;
pub mod certificate;
pub mod envelope;
pub mod jws;
pub mod kek;
pub mod keyring;
pub mod lifecycle;
pub mod pkcs11;
pub mod provider;
pub mod rewrap;
pub mod rotation;
pub mod signing;

pub use kek::{KekSource, KeyEncryptionKey};
pub use keyring::Keyring;
pub use provider::{KeyProvider, ProviderError};
pub use signing::{Algorithm, SigningKey, VerifyingKey};
