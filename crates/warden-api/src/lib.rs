//! Warden's wire contract, shared by the authority that serves it and every program that
//! calls it (the CLI, gateways, later the console and the SDK): the `warden:` scopes and the
//! admin audience, credential files, the admin API's calls, request bodies and answers, the
//! bodies of the calls gateways make, the revocation stream's messages, problem bodies, and
//! [`client::ApiClient`], one typed client over any transport.
//!
//! It depends only on `warden-core`: no HTTP stack, no runtime. Input types are strict
//! (`deny_unknown_fields`), so a misspelt field is a 4xx, not a silently ignored one.

pub mod admin;
pub mod admin_token;
pub mod client;
pub mod credentials;
pub mod gateway;
pub mod problem;
pub mod scope;
pub mod stream;

pub use client::{ApiClient, ApiError, Transport};
pub use credentials::{Credentials, CredentialsError};
