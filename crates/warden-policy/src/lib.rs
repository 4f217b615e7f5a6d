#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! - [`schema`] — the Cedar schema and the names it declares;
//! - [`request`] — a gateway request ([`PolicyRequest`]) as Cedar entities and context;
//! - [`set`] — loading and validating a [`PolicySet`], and its [`Decision`]s;
//! - [`store`] — the live set ([`PolicyStore`]) and hot reload;
//! - [`testing`] — policy test files and [`run_tests`];
//! - [`error`] — [`PolicyError`].

pub mod error;
pub mod request;
pub mod schema;
pub mod set;
mod slices;
pub mod store;
pub mod testing;

pub use error::{Location, PolicyError};
pub use request::PolicyRequest;
pub use schema::{METHODS, SCHEMA_SRC};
pub use set::{Decision, Effect, PolicySet};
pub use store::PolicyStore;
pub use testing::{run_tests, CaseOutcome, TestReport};
