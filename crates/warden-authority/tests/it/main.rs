//! The authority over real sockets: every endpoint, each named bad input, and rotation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod audit;
mod delegation;
mod honeytoken;
mod report;
mod support;
mod token;
