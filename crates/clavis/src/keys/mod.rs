//! Keys: the key-encryption key that seals everything recoverable at rest
//! ([`kek`]), token-signing keys ([`signing`]), compact JWS ([`jws`]),
//! each tenant's current signing key and JWKS ([`keyring`]), the rotation
//! timeline of signing keys ([`lifecycle`]) and the scheduler that rotates
//! them ([`rotation`]).

pub mod jws;
pub mod kek;
pub mod keyring;
pub mod lifecycle;
pub mod rotation;
pub mod signing;

pub use kek::{KekSource, KeyEncryptionKey};
pub use keyring::Keyring;
pub use signing::{Algorithm, SigningKey, VerifyingKey};
