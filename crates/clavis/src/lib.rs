//! Clavis: a self-hosted identity service for applications that speaks
//! Entra ID v2.0's token endpoints and Microsoft Graph's management shapes.
//!
//! # Layout
//! A token request flows `http::token` → `oauth::request` (parse) →
//! `oauth::client_credentials` (check client via the cached `directory`,
//! pick the resource, collect roles) → `keys` (sign). A management call
//! flows `graph::caller` (verify the bearer token, roles) → `graph::<resource>`
//! (validate with `domain`, build an audit event) → `directory::commit`
//! (store change + audit in one transaction, then drop caches).
//! Storage lives in the `clavis-store` crate; the CLI in `clavis-cli`.

/// `App::build(config, clock)`: data dir, keys, store, bootstrap, listener.
pub mod app;
/// The Azure Resource Manager routes the Azure CLI signs in with: cloud
/// metadata, no subscriptions, the caller's tenant.
pub mod arm;
/// Audit events: who did what to which object, with which outcome.
pub mod audit;
/// Refused management calls by callers without a role: itemised within a
/// budget, the rest summarised (so they cannot grow the audit log unbounded).
pub mod audit_refusals;
/// `clavis backup` / `clavis restore`: consistent SQLite snapshots, restored
/// into a fresh data directory.
pub mod backup;
/// First start of an empty store: default tenant and bootstrap admin.
pub mod bootstrap;
/// The built-in management API application and its roles.
pub mod builtin;
/// Time as a parameter (system clock, manual clock for tests).
pub mod clock;
/// What a compromised client secret was used for: the report behind
/// `reportCompromisedPassword`, built from the sign-in and audit logs.
pub mod compromise_report;
/// `clavis serve` flags and the resolved configuration.
pub mod config;
/// The data directory: private, and served by one process at a time.
pub mod data_dir;
/// The token path's cached view of tenants, clients and resources.
pub mod directory;
/// Registration rules: names, identifier URIs, app roles, secret lifetimes.
pub mod domain;
/// Secret expiry warnings: the scheduler, signed webhooks, retries.
pub mod expiry;
/// Strict form decoding shared by the token endpoint and query strings.
pub mod form;
/// Entry points for the fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing;
/// Management API in Microsoft Graph shapes.
pub mod graph;
/// Router, protocol endpoints, health, OpenAPI, TLS.
pub mod http;
/// Key-encryption key, signing keys, JWS, per-tenant keyring, key rotation,
/// PKCS#11 tokens (HSMs).
pub mod keys;
/// How `backup`, `restore` and `store copy` print a failure: each cause
/// once, and a hint (`createdb …`, the URL to check).
pub mod local_error;
/// Retention and size budgets of the sign-in log, the audit log and the
/// revoked tokens, applied every ten minutes.
pub mod log_retention;
/// This server as a node of the installation: its heartbeat row, the
/// installation's key-encryption key it follows.
pub mod node;
/// OAuth 2.0 protocol: request parsing, scopes, errors, grants, claims.
pub mod oauth;
/// `clavis admin recover`: the break-glass way back in for an operator
/// holding the data directory and key.
pub mod recovery;
/// Client secret format and keyed hash.
pub mod secret;
/// The sign-in log, batched off the token path.
pub mod signin_log;
/// `clavis store copy`: move an installation between stores.
pub mod store_copy;
/// Shares the throttle's failure counts between nodes, once a second.
pub mod throttle_sync;

pub use app::App;
pub use config::{Config, ServeArgs, Tls};
