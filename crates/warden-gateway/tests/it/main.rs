//! The gateway over real sockets, in front of a real authority and a real upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

mod behaviour;
mod credentials;
mod dpop;
mod limits;
mod ops;
mod pipeline;
mod policy;
mod revocation;
mod support;
mod tenant;
