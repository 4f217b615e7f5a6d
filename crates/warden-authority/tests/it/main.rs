//! The authority over real sockets: every endpoint, each named bad input, and rotation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

mod admin;
mod admin_scopes;
mod audit;
mod client_secret;
mod clients;
mod connections;
mod cutoff;
mod delegation;
mod honeytoken;
mod journal;
mod ops;
mod people;
mod reinstate;
mod report;
mod revocation;
mod rotation;
mod support;
mod tenant_disable;
mod token;
