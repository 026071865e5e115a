//! Rules about application registrations that hold whatever the interface
//! (management API today, portal later): names, identifier URIs, app roles
//! and the rules for client secrets, plus expiry-warning webhooks and the
//! addresses they may not reach. Plain functions, no HTTP or SQL.

pub mod credential_policy;
pub mod internal_address;
pub mod public_url;
pub mod registration;
pub mod secret_lifetime;
pub mod webhook;
