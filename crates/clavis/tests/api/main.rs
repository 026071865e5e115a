//! One integration-test binary: every test starts a real Clavis on a random
//! port with a fresh SQLite file (see `helpers::spawn_app`).

mod bad_input;
mod cli;
mod helpers;
mod interop;
mod management;
mod secrets;
mod serve;
mod tenants;
mod token;
