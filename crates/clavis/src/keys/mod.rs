//! Keys: the key-encryption key that seals everything recoverable at rest
//! ([`kek`]), token-signing keys ([`signing`]), compact JWS ([`jws`]) and
//! each tenant's current signing key and JWKS ([`keyring`]).

pub mod jws;
pub mod kek;
pub mod keyring;
pub mod signing;

pub use kek::KeyEncryptionKey;
pub use keyring::Keyring;
pub use signing::{Algorithm, SigningKey, VerifyingKey};
