//! One integration-test binary whose suite runs twice: every test starts a
//! real Clavis on a random port with a fresh store — a SQLite file (module
//! `sqlite`) or its own PostgreSQL database (module `postgres`); see
//! `helpers::spawn_app`. Tests of the binary, the CLI and the Azure clients
//! run once (the store makes no difference to them); scale-out tests need
//! PostgreSQL.

// The same test files are compiled twice on purpose, once per backend.
#![allow(clippy::duplicate_mod)]

/// Which store a copy of the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The one log capture of this binary (for the secret canaries).
mod logs;

#[path = "."]
mod sqlite {
    mod at_rest;
    pub const BACKEND: crate::Backend = crate::Backend::Sqlite;
    mod agent;
    mod arm;
    mod authz_matrix;
    mod azure_identity_rs;
    mod azure_sdks;
    mod backup;
    mod bad_input;
    mod cli;
    mod cli_usability;
    mod compromise;
    mod crash;
    mod expiry;
    mod expiry_cli;
    mod helpers;
    mod interop;
    mod interop_node;
    mod kek_rewrap;
    mod key_providers;
    mod key_rotation;
    mod last_admin;
    mod log_budgets;
    mod management;
    mod metrics;
    mod pkcs11_provider;
    mod policies;
    mod readme;
    mod recovery;
    mod resource_servers;
    mod revocation;
    mod schema_conformance;
    mod secrets;
    mod serve;
    mod serve_output;
    mod signing_certificates;
    mod signins;
    mod snippets;
    mod tenants;
    mod throttle;
    mod token;
    mod transport;
    mod webhook_egress;
}

#[path = "."]
mod postgres {
    mod at_rest;
    pub const BACKEND: crate::Backend = crate::Backend::Postgres;
    mod arm;
    mod authz_matrix;
    mod bad_input;
    mod compromise;
    mod crash;
    mod expiry;
    mod expiry_nodes;
    mod faults;
    mod helpers;
    mod kek_nodes;
    mod kek_rewrap;
    mod key_rotation;
    mod key_rotation_nodes;
    mod last_admin;
    mod log_budgets;
    mod management;
    mod metrics;
    mod metrics_nodes;
    mod pkcs11_provider;
    mod policies;
    mod recovery;
    mod revocation;
    mod scale_out;
    mod schema_conformance;
    mod secrets;
    mod signing_certificates;
    mod signins;
    mod store_copy;
    mod tenants;
    mod throttle;
    mod throttle_nodes;
    mod token;
    mod webhook_egress;
}
