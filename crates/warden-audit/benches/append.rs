//! Durable append throughput and latency, and verification of a million-entry log.
//!
//! `cargo bench -p warden-audit --bench append`. Group `audit`:
//! - `append_durable_64_tasks`: 64 tasks each awaiting every ack (fsync before ack), on the
//!   real filesystem of the temp dir. Before criterion's run, one timed run of 200,000
//!   entries prints entries/s and p50/p99 time to acknowledge;
//! - `verify_1m`: `verify_dir` over 1,000,000 entries (with checkpoints every 10,000),
//!   signatures, sidecar anchors and strict entry parsing included.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark's setup fails by panicking"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tempfile::TempDir;
use warden_audit::{verify_dir, AuditLog, Decision, Entry, KeyRing, Kind, Options, TryAppendError};
use warden_core::SigningKey;

const TASKS: u64 = 64;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32]).unwrap()
}

fn entry(i: u64) -> Entry {
    let mut e = Entry::new(1_750_000_000_000 + i as i64, Kind::Decision, "GET");
    e.actor = Some("agent:01JBENCHAGENT".into());
    e.subject = Some("user:01JBENCHUSER".into());
    e.act = vec!["agent:01JBENCHAGENT".into()];
    e.jti = Some(format!("jti-{i:016}"));
    e.resource = Some(format!("/v1/orders/{i}"));
    e.decision = Decision::Allow;
    e.reasons = vec!["token".into(), "scope".into(), "policy".into()];
    e.client_ip = Some("203.0.113.9".parse().unwrap());
    e.request_id = Some(format!("req-{i:016}"));
    e
}

/// `per_task` appends from each of 64 tasks; returns the elapsed time and every latency.
async fn run(log: &AuditLog, per_task: u64) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task as usize);
                for i in 0..per_task {
                    let e = entry(t * 1_000_000_000 + i);
                    let s = Instant::now();
                    log.append(&e).await.unwrap();
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (start.elapsed(), all)
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = TempDir::new().unwrap();
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), Options::default()).unwrap();

    let n_per = 200_000 / TASKS;
    let (elapsed, mut lat) = rt.block_on(run(&log, n_per));
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    eprintln!(
        "durable append, {TASKS} tasks awaiting acks: {} entries in {elapsed:.2?} = {:.0} entries/s; ack p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(50),
        pct(99),
        lat[lat.len() - 1],
    );

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("append_durable_64_tasks", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS).max(1);
            let (elapsed, lat) = rt.block_on(run(&log, per_task));
            elapsed.mul_f64(iters as f64 / lat.len() as f64)
        });
    });
    g.finish();
    rt.block_on(log.close()).unwrap();
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = TempDir::new().unwrap();
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), Options::default()).unwrap();
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..1_000_000 {
            match log.try_append(&entry(i)) {
                Ok(()) => {}
                Err(TryAppendError::QueueFull) => {
                    log.append(&entry(i)).await.unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        log.close().await.unwrap();
    });
    let bytes = std::fs::metadata(dir.path().join("audit.jsonl"))
        .unwrap()
        .len();
    eprintln!(
        "wrote 1,000,000 entries ({} MiB) with try_append in {:.2?}",
        bytes >> 20,
        start.elapsed()
    );
    let keys = KeyRing::new().with(key().public_key());
    let once = Instant::now();
    let r = verify_dir(dir.path(), &keys).unwrap();
    eprintln!(
        "verify_dir of {} entries: {:.2?}",
        r.entries,
        once.elapsed()
    );
    assert_eq!(r.entries, 1_000_000);

    let mut g = c.benchmark_group("audit");
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("verify_1m", |b| {
        b.iter(|| verify_dir(dir.path(), &keys).unwrap());
    });
    g.finish();
}

criterion_group!(benches, append, verify);
criterion_main!(benches);
