//! Integration tests: tampering with real log files, the writer's durability and
//! back-pressure, sinks and export, and a kill -9 crash test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

mod crash;
mod full_disk;
mod tamper;
mod witness;
mod writer;

use std::path::Path;
use std::sync::Arc;

use warden_audit::{AuditLog, Decision, Entry, KeyRing, Kind, Options};
use warden_core::SigningKey;

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32]).unwrap()
}

pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[43u8; 32]).unwrap()
}

pub fn ring() -> KeyRing {
    KeyRing::new().with(key().public_key())
}

pub fn entry(i: u64) -> Entry {
    let mut e = Entry::new(1_000 + i as i64, Kind::Decision, "GET");
    e.actor = Some(format!("agent:a{i}"));
    e.subject = Some("user:u1".into());
    e.act = vec![format!("agent:a{i}"), "user:u1".into()];
    e.jti = Some(format!("jti-{i}"));
    e.resource = Some(format!("/orders/{i}"));
    e.decision = Decision::Deny;
    e.reasons = vec!["scope".into(), "policy:office-hours".into()];
    e.client_ip = Some("192.0.2.7".parse().unwrap());
    e.request_id = Some(format!("req-{i}"));
    e
}

pub fn opts(checkpoint_every: u64) -> Options {
    Options {
        checkpoint_every,
        ..Options::default()
    }
}

/// Writes `n` entries (`entry(1..=n)`) and closes the log (a final checkpoint).
pub async fn write_log(dir: &Path, n: u64, checkpoint_every: u64) {
    let (log, _) = AuditLog::open(dir, Arc::new(key()), opts(checkpoint_every)).unwrap();
    let mut pending = Vec::new();
    for i in 1..=n {
        let log = log.clone();
        pending.push(tokio::spawn(async move { log.append(&entry(i)).await }));
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    log.close().await.unwrap();
}

/// Writes `n` entries strictly in order (so entry i has seq i).
pub async fn write_ordered(dir: &Path, n: u64, checkpoint_every: u64) {
    let (log, _) = AuditLog::open(dir, Arc::new(key()), opts(checkpoint_every)).unwrap();
    for i in 1..=n {
        log.try_append(&entry(i)).unwrap();
    }
    log.close().await.unwrap();
}

pub fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn write_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join("audit.jsonl"), text).unwrap();
}
