//! Keys: the key-encryption key that seals everything recoverable at rest
//! ([`kek`]), token-signing keys ([`signing`]), compact JWS ([`jws`]),
//! each tenant's current signing key and JWKS ([`keyring`]), the rotation
//! timeline of signing keys ([`lifecycle`]), the scheduler that rotates
//! them ([`rotation`]) and PKCS#11 tokens (HSMs) that hold keys and sign
//! ([`pkcs11`]).

pub mod jws;
pub mod kek;
pub mod keyring;
pub mod lifecycle;
pub mod pkcs11;
pub mod rotation;
pub mod signing;

pub use kek::{KekSource, KeyEncryptionKey};
pub use keyring::Keyring;
pub use signing::{Algorithm, SigningKey, VerifyingKey};
