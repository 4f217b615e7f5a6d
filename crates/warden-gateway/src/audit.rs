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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    fn write_batch(&mut self, events: &[AuditEvent]) -> std::io::Result<()>;
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
    fn write_batch(&mut self, events: &[AuditEvent]) -> std::io::Result<()> {
        for e in events {
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

impl ChainedLog {
    /// `runtime` drives the rare waits for room; the writer thread itself is not async.
    pub fn new(log: warden_audit::AuditLog, runtime: tokio::runtime::Handle) -> Self {
        Self { log, runtime }
    }
}

impl AuditWriter for ChainedLog {
    fn write_batch(&mut self, events: &[AuditEvent]) -> std::io::Result<()> {
        for e in events {
            let entry = to_entry(e);
            match self.log.try_append(&entry) {
                Ok(()) => {}
                Err(warden_audit::TryAppendError::QueueFull) => {
                    self.runtime
                        .block_on(self.log.append(&entry))
                        .map_err(std::io::Error::other)?;
                }
                Err(other) => return Err(std::io::Error::other(other)),
            }
        }
        Ok(())
    }
}

fn to_entry(e: &AuditEvent) -> warden_audit::Entry {
    use warden_audit::{Decision, Kind};
    let kind = match e.decision {
        "alert" => Kind::Alert,
        "lift" => Kind::Lifecycle,
        _ => Kind::Decision,
    };
    let mut entry = warden_audit::Entry::new(e.time.saturating_mul(1000), kind, e.method.clone());
    entry.decision = match e.decision {
        "allow" => Decision::Allow,
        "deny" => Decision::Deny,
        _ => Decision::NotApplicable,
    };
    entry.actor = e.act.clone().or_else(|| e.sub.clone());
    entry.subject = e.sub.clone();
    entry.act = e.act.iter().cloned().collect();
    entry.jti = e.jti.clone();
    entry.resource = Some(match &e.route {
        Some(r) => format!("{r} {}", e.path),
        None => e.path.clone(),
    });
    entry.reasons = std::iter::once(format!("{}: {}", e.phase, e.reason))
        .chain(e.anomaly.map(|a| format!("anomaly: {a}")))
        .chain(e.response.map(|r| format!("response: {r}")))
        .chain(e.dropped.map(|n| format!("{n} decisions not recorded")))
        .chain(e.policy_ids.iter().map(|p| format!("policy: {p}")))
        .collect();
    entry.client_ip = Some(e.client_ip);
    entry.request_id = Some(e.request_id.clone());
    entry
}

/// Entries as structured log lines (target `warden::audit`), when no file is configured.
pub struct TracingWriter;

impl AuditWriter for TracingWriter {
    fn write_batch(&mut self, events: &[AuditEvent]) -> std::io::Result<()> {
        for e in events {
            let line = serde_json::to_string(e).unwrap_or_default();
            tracing::info!(target: "warden::audit", "{line}");
        }
        Ok(())
    }
}

/// How often the writer takes what has queued up. Waking it per entry would cost a context
/// switch per request; a short timer turns that into one switch per batch.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
const MAX_BATCH: usize = 4096;

struct Shared {
    queue: Mutex<Vec<AuditEvent>>,
    wake: Condvar,
    capacity: usize,
    closed: AtomicBool,
    /// Entries let through unrecorded since the writer last wrote a `gap` entry.
    dropped: AtomicU64,
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
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
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
                if let Err(e) = writer.write_batch(&batch) {
                    tracing::error!(error = %e, entries = batch.len(), "audit write failed");
                }
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
        if q.len() >= self.shared.capacity {
            return Err(QueueFull);
        }
        q.push(event);
        // Half full: do not wait for the timer.
        if q.len() == self.shared.capacity / 2 + 1 {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Counts an entry that a fail-open route let through without recording.
    pub fn count_dropped(&self) {
        self.shared.dropped.fetch_add(1, Ordering::AcqRel);
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }
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
