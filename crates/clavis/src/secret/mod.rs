//! Client secrets: the wire format ([`format`]) and the keyed hash that is
//! stored instead of the value ([`hash`]).

pub mod format;
pub mod hash;

pub use format::{ClientSecret, SECRET_PREFIX};
pub use hash::{SecretHash, SecretHasher};
