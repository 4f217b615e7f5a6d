//! Whether the log can write, and what its outages cost.
//!
//! A write or fsync that fails takes the log down: the writer cuts the file back to what was
//! durable and refuses entries at once (callers answer 503 and retry) instead of queuing what
//! it cannot store. It then probes with backoff by writing a record of the outage itself; the
//! first probe that is durable brings the log back up, so the chain says when it could not
//! record and how much it refused. This module owns the state and the probe's cadence; the
//! writer (`crate::log`) does the I/O.

use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::entry::{Decision, Entry, Kind};

/// First wait after a failed write before the log tries again.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(50);
/// Longest wait between two tries: a freed disk is noticed within this.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(2);

/// The log's state, as [`crate::AuditLog::status`] reports it.
#[derive(Debug, Clone)]
pub enum LogStatus {
    Writable,
    /// The last write failed; entries are refused until a probe write succeeds.
    Unwritable {
        /// Unix milliseconds of the first failure of this outage.
        since_ms: i64,
        cause: Arc<io::Error>,
    },
}

impl LogStatus {
    pub fn is_writable(&self) -> bool {
        matches!(self, Self::Writable)
    }
}

/// Counters over the log's life, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Times the log went down.
    pub outages: u64,
    /// Writes (batches or probes) that failed.
    pub failed_writes: u64,
    /// Entries refused because the log was down.
    pub refused_entries: u64,
}

#[derive(Default)]
pub(crate) struct Health {
    /// 0 while writable; else the unix milliseconds the outage began.
    down_since_ms: AtomicI64,
    cause: Mutex<Option<Arc<io::Error>>>,
    outages: AtomicU64,
    failed_writes: AtomicU64,
    refused: AtomicU64,
}

impl Health {
    pub(crate) fn is_down(&self) -> bool {
        self.down_since_ms.load(Ordering::Acquire) != 0
    }

    pub(crate) fn status(&self) -> LogStatus {
        let since_ms = self.down_since_ms.load(Ordering::Acquire);
        match (since_ms, self.cause()) {
            (0, _) | (_, None) => LogStatus::Writable,
            (since_ms, Some(cause)) => LogStatus::Unwritable { since_ms, cause },
        }
    }

    pub(crate) fn cause(&self) -> Option<Arc<io::Error>> {
        lock(&self.cause).clone()
    }

    pub(crate) fn stats(&self) -> LogStats {
        LogStats {
            outages: self.outages.load(Ordering::Relaxed),
            failed_writes: self.failed_writes.load(Ordering::Relaxed),
            refused_entries: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Counts `n` entries refused while down; returns the cause to refuse them with.
    pub(crate) fn refuse(&self, n: u64) -> Arc<io::Error> {
        self.refused.fetch_add(n, Ordering::Relaxed);
        self.cause()
            .unwrap_or_else(|| Arc::new(io::Error::other("audit log is down")))
    }

    /// Records a failed write; true when it begins an outage.
    pub(crate) fn write_failed(&self, cause: Arc<io::Error>, now_ms: i64) -> bool {
        self.failed_writes.fetch_add(1, Ordering::Relaxed);
        *lock(&self.cause) = Some(cause);
        let began = self
            .down_since_ms
            .compare_exchange(0, now_ms.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if began {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        began
    }

    pub(crate) fn recovered(&self) {
        self.down_since_ms.store(0, Ordering::Release);
        *lock(&self.cause) = None;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// When the writer next probes a down log: exponential backoff, capped.
#[derive(Debug)]
pub(crate) struct Retry {
    pub(crate) next: Instant,
    wait: Duration,
}

impl Retry {
    pub(crate) fn after_failure(now: Instant) -> Self {
        Self {
            next: now + FIRST_RETRY,
            wait: FIRST_RETRY,
        }
    }

    pub(crate) fn failed_again(&mut self, now: Instant) {
        self.wait = (self.wait * 2).min(MAX_RETRY);
        self.next = now + self.wait;
    }
}

/// The entry a probe writes: the outage on record, in the chain it interrupted.
pub(crate) fn outage_entry(now_ms: i64, since_ms: i64, cause: &io::Error, refused: u64) -> Entry {
    let mut e = Entry::new(now_ms, Kind::Alert, "audit.outage");
    e.decision = Decision::NotApplicable;
    e.reasons = vec![
        format!("the audit log could not write from {since_ms} to {now_ms} (unix ms)"),
        format!("cause: {cause}"),
        format!("{refused} entries refused while it could not write"),
    ];
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let t0 = Instant::now();
        let mut r = Retry::after_failure(t0);
        assert_eq!(r.next - t0, FIRST_RETRY);
        let mut last = FIRST_RETRY;
        for _ in 0..20 {
            r.failed_again(t0);
            let wait = r.next - t0;
            assert!(wait >= last && wait <= MAX_RETRY);
            last = wait;
        }
        assert_eq!(last, MAX_RETRY);
    }

    #[test]
    fn an_outage_begins_once_and_ends_on_recovery() {
        let h = Health::default();
        assert!(h.status().is_writable());
        let cause = Arc::new(io::Error::from_raw_os_error(28));
        assert!(h.write_failed(Arc::clone(&cause), 1_000));
        assert!(!h.write_failed(cause, 2_000));
        match h.status() {
            LogStatus::Unwritable { since_ms, .. } => assert_eq!(since_ms, 1_000),
            LogStatus::Writable => panic!("expected down"),
        }
        h.recovered();
        assert!(h.status().is_writable());
        assert_eq!(
            h.stats(),
            LogStats {
                outages: 1,
                failed_writes: 2,
                refused_entries: 0
            }
        );
    }
}
