//! The OAuth 2.0 protocol as Entra ID v2.0 speaks it, free of HTTP framework
//! and database: request parsing ([`request`]), scopes ([`scope`]), errors
//! with Entra's numeric codes ([`error`]), access-token claims ([`claims`]),
//! one file per grant ([`client_credentials`]) and the throttling of failed
//! client authentication ([`throttle`]).

pub mod claims;
pub mod client_auth;
pub mod client_credentials;
pub mod error;
pub mod introspection;
pub mod request;
pub mod scope;
pub mod throttle;

pub use error::{OAuthError, OAuthErrorKind};
