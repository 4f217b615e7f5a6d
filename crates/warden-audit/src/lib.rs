#![doc = include_str!("../README.md")]

pub mod entry;
pub mod export;
mod health;
pub mod log;
pub mod record;
pub mod verify;
pub mod witness;

pub use entry::{Decision, Entry, Kind, Seq};
pub use export::{export, Batch, JsonLinesSink, Sink};
pub use health::{LogStats, LogStatus};
pub use log::{AppendError, AuditLog, OpenError, Options, TryAppendError};
pub use record::{CheckpointSigner, Digest, KeyRing, SignedCheckpoint};
pub use verify::{
    verify_dir, verify_dir_with, verify_file, Finding, Report, TornTail, VerifyError,
};
pub use witness::{
    parse_witness, FileWitness, LatestCheckpoint, UrlWitness, Witness, WitnessError,
};
