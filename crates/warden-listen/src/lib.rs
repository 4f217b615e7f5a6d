#![doc = include_str!("../README.md")]

mod acceptor;
mod errors;
mod limit;
mod refusal;
mod throttle;

pub use acceptor::{Acceptor, Admitted};
pub use limit::{ConnectionLimit, Permit};
