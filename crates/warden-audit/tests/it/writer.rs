//! The writer: numbering, durability, reopening, back-pressure, checkpoints, sinks, export.

use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use warden_audit::{
    export, verify_dir, AppendError, AuditLog, Batch, Entry, JsonLinesSink, Kind, OpenError,
    Options, Seq, Sink, TryAppendError,
};

use crate::{entry, key, log_lines, opts, ring, write_lines, write_log};

#[tokio::test]
async fn appends_are_numbered_durable_and_continue_after_reopen() {
    let dir = TempDir::new().unwrap();
    let (log, report) = AuditLog::open(dir.path(), Arc::new(key()), opts(1_000)).unwrap();
    assert_eq!(report.entries, 0);
    assert_eq!(log.append(&entry(1)).await.unwrap(), Seq(1));
    assert_eq!(log.append(&entry(2)).await.unwrap(), Seq(2));
    assert_eq!(log.durable_seq(), Seq(2));
    assert_eq!(log.close().await.unwrap(), 2);
    assert!(matches!(
        log.append(&entry(3)).await,
        Err(AppendError::Closed)
    ));

    let (log, report) = AuditLog::open(dir.path(), Arc::new(key()), opts(1_000)).unwrap();
    assert_eq!((report.entries, report.checkpoints), (2, 1));
    assert_eq!(log.append(&entry(3)).await.unwrap(), Seq(3));
    log.close().await.unwrap();
    let r = verify_dir(dir.path(), &ring()).unwrap();
    assert_eq!((r.entries, r.checkpoints, r.signed_entries), (3, 2, 3));
}

#[tokio::test]
async fn concurrent_appends_all_land() {
    let dir = TempDir::new().unwrap();
    write_log(dir.path(), 500, 64).await;
    let r = verify_dir(dir.path(), &ring()).unwrap();
    assert_eq!(r.entries, 500);
    assert_eq!(r.signed_entries, 500);
    assert!(r.checkpoints >= 7, "{r:?}");
}

#[tokio::test]
async fn checkpoints_every_n_entries_exactly() {
    let dir = TempDir::new().unwrap();
    crate::write_ordered(dir.path(), 25, 10).await;
    let lines = log_lines(dir.path());
    let counts: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with(r#"{"checkpoint""#))
        .map(|l| {
            warden_audit::SignedCheckpoint::parse(l)
                .unwrap()
                .checkpoint
                .count
        })
        .collect();
    assert_eq!(counts, vec![10, 20, 25]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("checkpoints.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[tokio::test]
async fn checkpoint_interval_signs_idle_entries() {
    let dir = TempDir::new().unwrap();
    let options = Options {
        checkpoint_interval: Duration::from_millis(20),
        ..Options::default()
    };
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), options).unwrap();
    log.append(&entry(1)).await.unwrap();
    let mut signed = false;
    for _ in 0..200 {
        if log_lines(dir.path()).len() == 2 {
            signed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(signed, "no checkpoint after the interval");
    log.close().await.unwrap();
    assert_eq!(verify_dir(dir.path(), &ring()).unwrap().checkpoints, 1);
}

#[tokio::test]
async fn explicit_checkpoint_covers_queued_entries() {
    let dir = TempDir::new().unwrap();
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), opts(1_000)).unwrap();
    for i in 1..=5 {
        log.try_append(&entry(i)).unwrap();
    }
    assert_eq!(log.checkpoint().await.unwrap(), 5);
    assert_eq!(log.durable_seq(), Seq(5));
    let r = verify_dir(dir.path(), &ring()).unwrap();
    assert_eq!((r.entries, r.signed_entries), (5, 5));
    log.close().await.unwrap();
}

/// Blocks the writer inside `deliver` until released, so the queue fills deterministically.
struct GateSink {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

impl Sink for GateSink {
    fn deliver(&mut self, _: &Batch<'_>) -> std::io::Result<()> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        Ok(())
    }
}

/// A log with `queue_capacity` slots whose writer reports each durable batch on `entered`
/// and then waits for a message on `release`.
fn gated_log(
    dir: &std::path::Path,
    queue_capacity: usize,
) -> (AuditLog, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let options = Options {
        queue_capacity,
        sinks: vec![Box::new(GateSink {
            entered: entered_tx,
            release: release_rx,
        })],
        ..Options::default()
    };
    let (log, _) = AuditLog::open(dir, Arc::new(key()), options).unwrap();
    (log, entered, release)
}

#[tokio::test]
async fn try_append_reports_queue_full_and_never_waits() {
    let dir = TempDir::new().unwrap();
    let (log, entered, release) = gated_log(dir.path(), 2);
    log.try_append(&entry(1)).unwrap();
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    // Entry 1 is durable; the writer is held in the sink. Two slots, then back-pressure.
    assert_eq!(log.durable_seq(), Seq(1));
    log.try_append(&entry(2)).unwrap();
    log.try_append(&entry(3)).unwrap();
    assert!(matches!(
        log.try_append(&entry(4)),
        Err(TryAppendError::QueueFull)
    ));
    // An awaiting append waits for room instead.
    let waiting = {
        let log = log.clone();
        tokio::spawn(async move { log.append(&entry(4)).await })
    };
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    assert_eq!(waiting.await.unwrap().unwrap(), Seq(4));
    drop(release);
    log.close().await.unwrap();
    assert_eq!(verify_dir(dir.path(), &ring()).unwrap().entries, 4);
}

#[tokio::test]
async fn try_append_all_queues_all_in_order_or_none() {
    let dir = TempDir::new().unwrap();
    let (log, entered, release) = gated_log(dir.path(), 4);
    log.try_append_all(&[entry(1), entry(2), entry(3)]).unwrap();
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(log.durable_seq(), Seq(3), "one group, one batch");
    // The writer is held; four slots. Five entries do not fit: none is queued.
    assert!(matches!(
        log.try_append_all(&[entry(4), entry(5), entry(6), entry(7), entry(8)]),
        Err(TryAppendError::QueueFull)
    ));
    log.try_append_all(&[entry(4), entry(5)]).unwrap();
    log.try_append_all(&[entry(6), entry(7)]).unwrap();
    assert!(matches!(
        log.try_append_all(&[entry(8)]),
        Err(TryAppendError::QueueFull)
    ));
    // One entry that cannot be encoded refuses the whole group.
    let mut big = entry(9);
    big.reasons = vec!["r".repeat(2 << 20)];
    assert!(matches!(
        log.try_append_all(&[entry(8), big]),
        Err(TryAppendError::Append(AppendError::TooLarge { .. }))
    ));
    assert!(log.try_append_all(&[]).is_ok());
    drop(release);
    assert_eq!(log.close().await.unwrap(), 7);
    assert_eq!(verify_dir(dir.path(), &ring()).unwrap().entries, 7);
    let ids: Vec<String> = log_lines(dir.path())
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["entry"]["request_id"].as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(ids, (1..=7).map(|i| format!("req-{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn oversized_entries_are_refused() {
    let dir = TempDir::new().unwrap();
    let options = Options {
        max_entry_bytes: 200,
        ..Options::default()
    };
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), options).unwrap();
    let mut big = Entry::new(1, Kind::Alert, "x");
    big.reasons = vec!["r".repeat(300)];
    assert!(matches!(
        log.append(&big).await,
        Err(AppendError::TooLarge { max: 200, .. })
    ));
    assert!(matches!(
        log.try_append(&big),
        Err(TryAppendError::Append(AppendError::TooLarge { .. }))
    ));
    log.close().await.unwrap();
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn sink_receives_every_durable_byte() {
    let dir = TempDir::new().unwrap();
    let out = Shared::default();
    let options = Options {
        checkpoint_every: 7,
        sinks: vec![Box::new(JsonLinesSink(out.clone()))],
        ..Options::default()
    };
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), options).unwrap();
    let tasks: Vec<_> = (1..=50)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(&entry(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    log.close().await.unwrap();
    let file = std::fs::read(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(*out.0.lock().unwrap(), file);
    assert_eq!(log.sink_failures(), 0);
}

#[tokio::test]
async fn export_since_a_time() {
    let dir = TempDir::new().unwrap();
    crate::write_ordered(dir.path(), 10, 4).await;
    let mut out = Vec::new();
    // entry(i) has time 1000 + i.
    let n = export(&dir.path().join("audit.jsonl"), 1_007, &mut out).unwrap();
    assert_eq!(n, 4);
    let text = String::from_utf8(out).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![7, 8, 9, 10]);
    assert!(text.lines().all(|l| l.contains(r#""entry":{"time":"#)));
}

#[tokio::test]
async fn open_cuts_a_torn_tail_and_continues() {
    let dir = TempDir::new().unwrap();
    crate::write_ordered(dir.path(), 3, 1_000).await;
    let path = dir.path().join("audit.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"seq":4,"prev":"#).unwrap();
    drop(f);
    let (log, report) = AuditLog::open(dir.path(), Arc::new(key()), opts(1_000)).unwrap();
    let torn = report.torn_tail.unwrap();
    assert_eq!(torn.line, 5);
    assert_eq!(report.entries, 3);
    assert_eq!(log.append(&entry(4)).await.unwrap(), Seq(4));
    log.close().await.unwrap();
    let r = verify_dir(dir.path(), &ring()).unwrap();
    assert_eq!((r.entries, r.torn_tail), (4, None));
}

#[tokio::test]
async fn open_refuses_a_tampered_log() {
    let dir = TempDir::new().unwrap();
    crate::write_ordered(dir.path(), 5, 1_000).await;
    let mut lines = log_lines(dir.path());
    lines.remove(1);
    write_lines(dir.path(), &lines);
    match AuditLog::open(dir.path(), Arc::new(key()), opts(1_000)) {
        Err(OpenError::Tampered { finding, .. }) => assert_eq!(
            finding,
            warden_audit::Finding::Deleted {
                first: 2,
                last: 2,
                line: 2
            }
        ),
        other => panic!("expected Tampered, got {other:?}"),
    }
}

/// Counts the durable batches holding entries (one sync each) and the entries they held.
struct SyncCounter(Arc<Mutex<(u64, u64)>>);

impl Sink for SyncCounter {
    fn deliver(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        let held = (batch.last_seq() + 1).saturating_sub(batch.first_seq());
        if held > 0 {
            let mut c = self.0.lock().unwrap();
            c.0 += 1;
            c.1 += held;
        }
        Ok(())
    }
}

fn counted_log(
    dir: &std::path::Path,
    commit_delay: Duration,
) -> (AuditLog, Arc<Mutex<(u64, u64)>>) {
    let counts = Arc::new(Mutex::new((0, 0)));
    let (log, _) = AuditLog::open(
        dir,
        Arc::new(key()),
        Options {
            sinks: vec![Box::new(SyncCounter(Arc::clone(&counts)))],
            commit_delay,
            ..Options::default()
        },
    )
    .unwrap();
    (log, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writer_is_never_held_for_company() {
    // A group-commit window far longer than the test: were a writer that waits on each
    // entry held for company, 50 entries would take minutes.
    let dir = TempDir::new().unwrap();
    let (log, counts) = counted_log(dir.path(), Duration::from_secs(10));
    let appends = async {
        for i in 0..50 {
            log.append(&entry(i)).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(5), appends)
        .await
        .expect("a lone writer waited for others");
    log.close().await.unwrap();
    assert_eq!(*counts.lock().unwrap(), (50, 50), "one sync per entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_at_work_together_share_syncs() {
    // Sixteen writers, each waiting for its entry to be durable before the next, as sixteen
    // token requests in flight do.
    let dir = TempDir::new().unwrap();
    let (log, counts) = counted_log(dir.path(), Options::default().commit_delay);
    let writers: Vec<_> = (0..16u64)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    log.append(&entry(w * 1000 + i)).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    log.close().await.unwrap();
    let (syncs, entries) = *counts.lock().unwrap();
    assert_eq!(entries, 800);
    assert!(entries >= syncs * 2, "{entries} entries took {syncs} syncs");
    verify_dir(dir.path(), &ring()).unwrap();
}
