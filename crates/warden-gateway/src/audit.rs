//! Every decision goes to the audit sink without making the request wait for I/O: a bounded
//! queue in front of a writer task.
//!
//! When the queue is full the route's fail mode decides, and the loss is never silent:
//! `closed` (the default) refuses the request with 503 and `Retry-After`, so no decision goes
//! unrecorded; `open` lets it through, counts it, and the writer records a `gap` entry with
//! the count as soon as it can.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::lock;

#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub time: i64,
    pub request_id: String,
    /// `allow`, `deny`, `gap` (decisions lost to a full queue), `alert` (a behaviour
    /// anomaly and the response to it) or `lift` (an admin lifted a restriction).
    pub decision: &'static str,
    /// The pipeline phase that decided.
    pub phase: &'static str,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub method: String,
    pub path: String,
    pub client_ip: IpAddr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_ids: Vec<String>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// For `alert` and `lift`: the anomaly (`velocity`, `new_network`, `novelty`,
    /// `denied_storm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<&'static str>,
    /// For `alert`: the response (`alert`, `downgrade`, `throttle`, `quarantine`); for
    /// `lift`: the restriction lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'static str>,
}

/// Where audit entries end up.
pub trait AuditWriter: Send + 'static {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()>;
}

/// JSON lines appended to a file, flushed per batch.
pub struct JsonlFile(std::io::BufWriter<std::fs::File>);

impl JsonlFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self(std::io::BufWriter::new(f)))
    }
}

impl AuditWriter for JsonlFile {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()> {
        for e in &events {
            serde_json::to_writer(&mut self.0, e)?;
            self.0.write_all(b"\n")?;
        }
        self.0.flush()
    }
}

/// Decisions into Warden's hash-chained audit log (`warden-audit`), the one the authority
/// writes too when both run in one process. Entries are handed over without waiting; only
/// when the log's own queue is full does this writer wait for room, so back-pressure reaches
/// the gateway's bounded queue (and its documented fail mode), never a request.
pub struct ChainedLog {
    log: warden_audit::AuditLog,
    runtime: tokio::runtime::Handle,
}

/// How often a batch held for a down log looks whether it can write again.
const LOG_RECHECK: std::time::Duration = std::time::Duration::from_millis(50);

impl ChainedLog {
    /// `runtime` drives the rare waits for room; the writer thread itself is not async.
    pub fn new(log: warden_audit::AuditLog, runtime: tokio::runtime::Handle) -> Self {
        Self { log, runtime }
    }
}

impl AuditWriter for ChainedLog {
    /// One hand-over per batch; when the log's queue cannot take the whole batch, or refuses
    /// one of its entries, entries go one at a time so that only that entry is replaced by
    /// a record of its refusal: one request can never make others go unrecorded.
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()> {
        use warden_audit::{AppendError, TryAppendError};
        let entries: Vec<warden_audit::Entry> = events.into_iter().map(to_entry).collect();
        loop {
            match self.log.try_append_all(&entries) {
                Ok(()) => return Ok(()),
                // The log is down (a full disk, say) and comes back by itself. The batch waits
                // for it, so the gateway's queue fills behind it and each route's `fail_mode`
                // decides, as for a full queue: nothing goes unrecorded unseen.
                Err(TryAppendError::Append(AppendError::Unavailable(_))) => {
                    while !self.log.status().is_writable() {
                        std::thread::sleep(LOG_RECHECK);
                    }
                }
                Err(TryAppendError::Append(e @ (AppendError::Closed | AppendError::Io(_)))) => {
                    return Err(std::io::Error::other(e))
                }
                Err(_) => break,
            }
        }
        for entry in entries {
            let entry = match self.log.try_append(&entry) {
                Ok(()) => continue,
                Err(TryAppendError::QueueFull) => entry,
                Err(TryAppendError::Append(
                    e @ (AppendError::TooLarge { .. } | AppendError::Encode),
                )) => {
                    tracing::error!(error = %e, request_id = ?entry.request_id, "audit entry refused; recording its refusal");
                    refused(entry, &e)
                }
                Err(TryAppendError::Append(e)) => return Err(std::io::Error::other(e)),
            };
            self.runtime
                .block_on(self.log.append(&entry))
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// What is left of an entry the log refused: who, what decision, and why it is short.
fn refused(entry: warden_audit::Entry, why: &warden_audit::AppendError) -> warden_audit::Entry {
    let mut short = warden_audit::Entry::new(entry.time, entry.kind, clip(entry.action, 32));
    short.decision = entry.decision;
    short.actor = entry.actor;
    short.subject = entry.subject;
    short.jti = entry.jti;
    short.client_ip = entry.client_ip;
    short.request_id = entry.request_id;
    short.reasons = vec![format!("audit: the full entry was refused: {why}")];
    short
}

/// Longest resource, reason and action kept in a chained entry: paths and reasons can carry
/// what a client sent, and the log refuses entries over 16 KiB.
const MAX_FIELD_BYTES: usize = 2048;
const MAX_REASONS: usize = 32;

/// `s` cut to at most `max` bytes at a character boundary, marked when cut.
fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max.saturating_sub(3);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

fn to_entry(e: AuditEvent) -> warden_audit::Entry {
    use warden_audit::{Decision, Kind};
    let kind = match e.decision {
        "alert" => Kind::Alert,
        "lift" => Kind::Lifecycle,
        _ => Kind::Decision,
    };
    let mut entry = warden_audit::Entry::new(
        e.time.saturating_mul(1000),
        kind,
        clip(e.method, MAX_FIELD_BYTES),
    );
    entry.decision = match e.decision {
        "allow" => Decision::Allow,
        "deny" => Decision::Deny,
        _ => Decision::NotApplicable,
    };
    let resource = match e.route {
        Some(r) => format!("{r} {}", e.path),
        None => e.path,
    };
    entry.resource = Some(clip(resource, MAX_FIELD_BYTES));
    entry.reasons = std::iter::once(format!("{}: {}", e.phase, e.reason))
        .chain(e.anomaly.map(|a| format!("anomaly: {a}")))
        .chain(e.response.map(|r| format!("response: {r}")))
        .chain(e.dropped.map(|n| format!("{n} decisions not recorded")))
        .chain(e.policy_ids.iter().map(|p| format!("policy: {p}")))
        .take(MAX_REASONS)
        .map(|r| clip(r, MAX_FIELD_BYTES))
        .collect();
    entry.actor = e.act.clone().or_else(|| e.sub.clone());
    entry.subject = e.sub;
    entry.act = e.act.into_iter().collect();
    entry.jti = e.jti;
    entry.client_ip = Some(e.client_ip);
    entry.request_id = Some(e.request_id);
    entry
}

/// Entries as structured log lines (target `warden::audit`), when no file is configured.
pub struct TracingWriter;

impl AuditWriter for TracingWriter {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()> {
        for e in &events {
            let line = serde_json::to_string(e).unwrap_or_default();
            tracing::info!(target: "warden::audit", "{line}");
        }
        Ok(())
    }
}

/// How often the writer takes what has queued up. Waking it per entry would cost a context
/// switch per request; a short timer turns that into one switch per batch. Longer is not
/// cheaper per request (measured at 20 ms), only burstier: on a shared core a batch's
/// encoding delays the requests that arrive meanwhile, which shows in the p99.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
const MAX_BATCH: usize = 4096;

struct Shared {
    queue: Mutex<Vec<AuditEvent>>,
    wake: Condvar,
    capacity: usize,
    /// Places held by [`AuditSlot`]s, counted against `capacity`; changed only under the
    /// queue's lock.
    reserved: AtomicUsize,
    closed: AtomicBool,
    /// Entries let through unrecorded since the writer last wrote a `gap` entry.
    dropped: AtomicU64,
    /// Entries queued and entries the writer is done with (written or failed), over the
    /// sink's life, so that a stop can wait for what was queued before it.
    queued: AtomicU64,
    done: Mutex<u64>,
    written: Condvar,
}

pub struct AuditSink {
    shared: Arc<Shared>,
    dropped_total: AtomicU64,
}

/// The queue had no room.
#[derive(Debug)]
pub struct QueueFull;

impl AuditSink {
    /// Starts the writer on its own thread (writers do file I/O).
    pub fn spawn(capacity: usize, mut writer: Box<dyn AuditWriter>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            reserved: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            done: Mutex::new(0),
            written: Condvar::new(),
        });
        let w = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || loop {
                let mut batch = {
                    let mut q = lock(&w.queue);
                    if q.is_empty() && !w.closed.load(Ordering::Acquire) {
                        q = match w.wake.wait_timeout(q, FLUSH_EVERY) {
                            Ok((g, _)) => g,
                            Err(p) => p.into_inner().0,
                        };
                    }
                    let take = q.len().min(MAX_BATCH);
                    q.drain(..take).collect::<Vec<_>>()
                };
                let taken = batch.len() as u64;
                let lost = w.dropped.swap(0, Ordering::AcqRel);
                if lost > 0 {
                    batch.push(gap_event(lost));
                }
                if batch.is_empty() {
                    if w.closed.load(Ordering::Acquire) {
                        return;
                    }
                    continue;
                }
                let entries = batch.len();
                if let Err(e) = writer.write_batch(batch) {
                    tracing::error!(error = %e, entries, "audit write failed");
                }
                *lock(&w.done) += taken;
                w.written.notify_all();
            })
            .ok();
        Self {
            shared,
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Queues an entry without waiting on I/O.
    pub fn try_record(&self, event: AuditEvent) -> Result<(), QueueFull> {
        let mut q = lock(&self.shared.queue);
        if q.len() + self.shared.reserved.load(Ordering::Relaxed) >= self.shared.capacity {
            return Err(QueueFull);
        }
        self.push(&mut q, event);
        Ok(())
    }

    /// Holds a place in the queue for an entry not yet written, so that what a request
    /// spends (a DPoP proof, a single-use token, rate budget) is spent only once its entry
    /// is sure to be taken.
    pub fn try_reserve(&self) -> Option<AuditSlot<'_>> {
        let q = lock(&self.shared.queue);
        let reserved = self.shared.reserved.load(Ordering::Relaxed);
        if q.len() + reserved >= self.shared.capacity {
            return None;
        }
        self.shared.reserved.store(reserved + 1, Ordering::Relaxed);
        Some(AuditSlot { sink: self })
    }

    fn push(&self, q: &mut Vec<AuditEvent>, event: AuditEvent) {
        q.push(event);
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        // Half full: do not wait for the timer.
        if q.len() == self.shared.capacity / 2 + 1 {
            self.shared.wake.notify_one();
        }
    }

    /// Counts an entry that a fail-open route let through without recording.
    pub fn count_dropped(&self) {
        self.shared.dropped.fetch_add(1, Ordering::AcqRel);
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Waits (blocking, at most `timeout`) until every entry queued before this call has
    /// been handed to the writer and written; whether it got there. A stop calls it before
    /// closing the log, so that the last decisions are under the final checkpoint.
    pub fn drain(&self, timeout: Duration) -> bool {
        let target = self.shared.queued.load(Ordering::Acquire);
        self.shared.wake.notify_one();
        let deadline = std::time::Instant::now() + timeout;
        let mut done = lock(&self.shared.done);
        while *done < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            done = match self.shared.written.wait_timeout(done, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// A place held in the audit queue ([`AuditSink::try_reserve`]); given back if unused.
pub struct AuditSlot<'a> {
    sink: &'a AuditSink,
}

impl AuditSlot<'_> {
    /// Queues the entry in the place held for it.
    pub fn record(self, event: AuditEvent) {
        let mut q = lock(&self.sink.shared.queue);
        release(&self.sink.shared);
        self.sink.push(&mut q, event);
        // The place is used: nothing to give back.
        std::mem::forget(self);
    }
}

impl Drop for AuditSlot<'_> {
    fn drop(&mut self) {
        let _q = lock(&self.sink.shared.queue);
        release(&self.sink.shared);
    }
}

/// Gives a held place back; the caller holds the queue's lock.
fn release(shared: &Shared) {
    let reserved = shared.reserved.load(Ordering::Relaxed);
    shared
        .reserved
        .store(reserved.saturating_sub(1), Ordering::Relaxed);
}

impl Drop for AuditSink {
    /// The writer drains what is queued, then stops.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

fn gap_event(dropped: u64) -> AuditEvent {
    AuditEvent {
        time: warden_core::time::Clock::now(&warden_core::time::SystemClock),
        request_id: String::new(),
        decision: "gap",
        phase: "audit",
        reason: format!("{dropped} decisions were not recorded: the audit queue was full"),
        sub: None,
        act: None,
        jti: None,
        route: None,
        method: String::new(),
        path: String::new(),
        client_ip: IpAddr::from([0, 0, 0, 0]),
        policy_ids: Vec::new(),
        status: 0,
        dropped: Some(dropped),
        anomaly: None,
        response: None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use warden_audit::{verify_dir, AuditLog, KeyRing, Options};
    use warden_core::SigningKey;

    use super::*;

    fn event(request_id: &str, path: String) -> AuditEvent {
        AuditEvent {
            time: 1_700_000_000,
            request_id: request_id.into(),
            decision: "deny",
            phase: "verify",
            reason: format!("no token for {path}"),
            sub: None,
            act: None,
            jti: None,
            route: Some("/crm/".into()),
            method: "GET".into(),
            path,
            client_ip: IpAddr::from([192, 0, 2, 7]),
            policy_ids: Vec::new(),
            status: 401,
            dropped: None,
            anomaly: None,
            response: None,
        }
    }

    #[test]
    fn one_oversized_request_never_costs_the_others_their_entries() {
        let dir = tempfile::TempDir::new().unwrap_or_else(|e| unreachable!("{e}"));
        let key = SigningKey::from_bytes(&[7u8; 32]).unwrap_or_else(|e| unreachable!("{e}"));
        let ring = KeyRing::new().with(key.public_key());
        let (log, _) = AuditLog::open(dir.path(), Arc::new(key), Options::default())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut writer = ChainedLog::new(log.clone(), runtime.handle().clone());

        // A path as long as the header limit allows, echoed in the reason too.
        let long = format!("/crm/{}", "a".repeat(15_000));
        // Policy ids are the operator's, but enough long ones exceed the log's limit even
        // after clipping: that entry is replaced by a record of its refusal.
        let mut many = event("req-3", "/crm/x".into());
        many.policy_ids = (0..20)
            .map(|i| format!("{i}{}", "p".repeat(2_000)))
            .collect();
        let batch = vec![
            event("req-1", "/crm/a".into()),
            event("req-2", long),
            many,
            event("req-4", "/crm/b".into()),
        ];
        writer
            .write_batch(batch)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let entries = runtime
            .block_on(log.close())
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(entries, 4);
        assert_eq!(
            verify_dir(dir.path(), &ring)
                .unwrap_or_else(|e| unreachable!("{e}"))
                .entries,
            4
        );
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v.get("entry").is_some())
            .collect();
        let ids: Vec<&str> = lines
            .iter()
            .filter_map(|v| v["entry"]["request_id"].as_str())
            .collect();
        assert_eq!(ids, ["req-1", "req-2", "req-3", "req-4"]);
        let clipped = lines[1]["entry"]["resource"].as_str().unwrap_or_default();
        assert!(
            clipped.len() <= MAX_FIELD_BYTES && clipped.ends_with("..."),
            "{clipped}"
        );
        let reasons = &lines[2]["entry"]["reasons"];
        assert!(
            reasons[0]
                .as_str()
                .is_some_and(|r| r.starts_with("audit: the full entry was refused")),
            "{reasons}"
        );
        assert_eq!(lines[2]["entry"]["decision"], "deny");
    }

    struct Slow(Arc<Mutex<Vec<String>>>);

    impl AuditWriter for Slow {
        fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()> {
            // Holds the batch a while, as a log behind on its fsyncs would.
            std::thread::sleep(Duration::from_millis(30));
            lock(&self.0).extend(events.into_iter().map(|e| e.request_id));
            Ok(())
        }
    }

    #[test]
    fn drain_returns_once_everything_queued_before_it_is_written() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = AuditSink::spawn(64, Box::new(Slow(Arc::clone(&kept))));
        for i in 0..5 {
            let queued = sink.try_record(event(&format!("req-{i}"), "/crm/a".into()));
            assert!(queued.is_ok());
        }
        assert!(sink.drain(Duration::from_secs(10)));
        assert_eq!(
            *lock(&kept),
            ["req-0", "req-1", "req-2", "req-3", "req-4"],
            "drain returned before the queue was written"
        );
        assert!(
            sink.drain(Duration::from_secs(10)),
            "nothing queued: at once"
        );
    }

    #[test]
    fn clipping_keeps_characters_whole() {
        assert_eq!(clip("abc".into(), 10), "abc");
        assert_eq!(clip("abcdefghij".into(), 8), "abcde...");
        let cut = clip("ééééé".into(), 8);
        assert!(cut.len() <= 8 && cut.ends_with("..."), "{cut}");
    }
}
