//! A real full disk: the log on a 1 MiB tmpfs that a filler file fills. The log must refuse
//! entries at once while it cannot write, come back by itself once space is freed, and leave
//! a chain that verifies with the outage on record. Needs root (it mounts a tmpfs), as CI has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_audit::{verify_dir, AppendError, AuditLog, LogStatus, TryAppendError};

use warden_test::tmpfs::{Tmpfs, ENOSPC};

use crate::{entry, key, log_lines, opts, ring};

#[tokio::test]
async fn a_full_disk_refuses_entries_then_recovers_by_itself_with_the_outage_on_record() {
    let fs = Tmpfs::mount("1m");
    let dir = fs.path().join("audit");
    let (log, _) = AuditLog::open(&dir, Arc::new(key()), opts(1_000)).unwrap();
    for i in 1..=3 {
        log.append(&entry(i)).await.unwrap();
    }
    let filler = fs.fill();

    // The file's last page may still have room: write until the disk says no.
    let mut written = 3;
    let failure = loop {
        written += 1;
        assert!(written < 10_000, "the full tmpfs never refused a write");
        match log.append(&entry(written)).await {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let written = written - 1;
    assert!(matches!(failure, AppendError::Io(_)), "{failure:?}");
    assert_eq!(failure.io_cause().unwrap().raw_os_error(), Some(ENOSPC));
    assert!(failure.is_retryable());
    assert!(
        failure.to_string().contains("No space left on device"),
        "{failure}"
    );

    // Down: refused at once, with the cause, through both entry points.
    match log.status() {
        LogStatus::Unwritable { cause, .. } => assert_eq!(cause.raw_os_error(), Some(ENOSPC)),
        LogStatus::Writable => panic!("the log should be down"),
    }
    let refused = log.append(&entry(9_001)).await.unwrap_err();
    assert!(
        matches!(refused, AppendError::Unavailable(_)),
        "{refused:?}"
    );
    assert!(matches!(
        log.try_append(&entry(9_002)),
        Err(TryAppendError::Append(AppendError::Unavailable(_)))
    ));
    assert!(log.stats().refused_entries >= 2);
    assert_eq!(log.stats().outages, 1);

    // Space comes back: the log notices by itself, with no restart and no call.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.status().is_writable() {
        assert!(Instant::now() < deadline, "the log did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seq = log.append(&entry(10_000)).await.unwrap();
    // The written entries, the outage record, this one: nothing in between was lost or
    // half-written.
    assert_eq!(seq.0, written + 2);
    log.close().await.unwrap();

    let report = verify_dir(&dir, &ring()).unwrap();
    assert_eq!(report.entries, written + 2);
    assert!(report.torn_tail.is_none());
    let outage: Vec<_> = log_lines(&dir)
        .into_iter()
        .filter(|l| l.contains(r#""action":"audit.outage""#))
        .collect();
    assert_eq!(outage.len(), 1, "{outage:?}");
    assert!(
        outage[0].contains("No space left on device") && outage[0].contains("entries refused"),
        "{}",
        outage[0]
    );

    // Reopened, the log continues the same chain.
    let (log, report) = AuditLog::open(&dir, Arc::new(key()), opts(1_000)).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(log.append(&entry(10_001)).await.unwrap().0, written + 3);
    log.close().await.unwrap();
}
