//! What Warden's tests and benchmarks share, so that each writes only what it checks.
//!
//! - [`keys`]: Ed25519 keys, `private_key_jwt` assertions, DPoP proofs, reading a token's
//!   claims;
//! - [`http`]: "POST a form, read JSON", and a request cut short on the wire;
//! - [`authority`]: a real authority on a free loopback port, on an in-memory SQLite store,
//!   with a clock the test moves, and the admin and token calls a test makes of it;
//! - [`upstream`]: an echo upstream for gateways to forward to;
//! - [`gateway`]: a real gateway from a TOML text, auditing to memory;
//! - [`sse`]: a reader of server-sent events;
//! - [`wait`]: waiting for a condition, with a deadline, instead of sleeping;
//! - [`postgres`]: a fresh database on the throwaway server `scripts/postgres.sh` starts;
//! - [`tmpfs`]: a small filesystem that fills up, for disk-full faults.
//!
//! A failing helper panics with what it saw: that is how a test says it failed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support fails by panicking: unwrapping, indexing and panics are how it says so"
)]

pub mod authority;
pub mod gateway;
pub mod http;
pub mod keys;
pub mod postgres;
pub mod sse;
pub mod tmpfs;
pub mod upstream;
pub mod wait;

/// The instant every test clock starts at (2030-03-17), far from any real one.
pub const T0: i64 = 1_900_000_000;

/// The bootstrap admin token of every authority these helpers start.
pub const ADMIN: &str = "wadm_test-admin-token";
