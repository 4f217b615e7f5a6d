//! kill -9 during heavy writing: every acknowledged entry survives and the log verifies.
//!
//! The parent re-runs this test binary with `CHILD_DIR` set; in the child, `crash_child`
//! writes entries from many tasks and prints `ACK <seq>` for each acknowledged one. The
//! parent reads acks, SIGKILLs the child mid-stream, and checks the log; three rounds, so
//! recovery after a crash is itself crashed into.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use warden_audit::{export, verify_dir, AuditLog};

use crate::{entry, key, opts, ring};

const CHILD_DIR: &str = "WARDEN_AUDIT_CRASH_CHILD_DIR";

/// Not a test on its own: does nothing unless the crash test started this process.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let (log, _) = AuditLog::open(dir.as_ref(), Arc::new(key()), opts(997)).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        for t in 0..32u64 {
            let log = log.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let seq = log.append(&entry(t * 1_000_000 + i)).await.unwrap();
                    if tx.send(seq.0).is_err() {
                        return;
                    }
                }
            });
        }
        let stdout = std::io::stdout();
        while let Some(seq) = rx.recv().await {
            let mut out = stdout.lock();
            writeln!(out, "ACK {seq}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn kill_9_loses_no_acknowledged_entry() {
    let dir = TempDir::new().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = HashSet::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let before = acked.len();
        let started = Instant::now();
        let mut line = String::new();
        while acked.len() < before + 3_000 && started.elapsed() < Duration::from_secs(60) {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some((_, n)) = line.trim_end().split_once("ACK ") {
                acked.insert(n.parse::<u64>().unwrap());
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acks printed before the kill are still in the pipe: they count too.
        for l in reader.lines() {
            if let Some((_, n)) = l.unwrap().split_once("ACK ") {
                acked.insert(n.parse::<u64>().unwrap());
            }
        }
        assert!(
            acked.len() > before,
            "round {round}: the child acknowledged nothing"
        );

        let report = verify_dir(dir.path(), &ring()).unwrap();
        let max = acked.iter().copied().max().unwrap();
        assert!(
            report.entries >= max,
            "round {round}: {report:?}, max ack {max}"
        );

        let mut out = Vec::new();
        export(&dir.path().join("audit.jsonl"), i64::MIN, &mut out).unwrap();
        let present: HashSet<u64> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        let lost: Vec<_> = acked.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: lost acknowledged entries {lost:?}"
        );

        // Reopening cuts any torn tail; the log then verifies without one.
        let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), opts(997)).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(log.close())
            .unwrap();
        let r = verify_dir(dir.path(), &ring()).unwrap();
        assert_eq!(r.torn_tail, None);
    }
}
