//! The writer: one std thread that owns the log file, numbers and chains entries, writes a
//! batch with one `write_all`, makes it durable with `sync_data`, and only then acknowledges
//! it, signs checkpoints and hands the batch to sinks.
//!
//! The writer is a plain thread, not a tokio task, so an fsync never stalls an async worker.
//! Callers serialize their entry before queuing, so the writer's serial work is formatting,
//! hashing and I/O. This module must not interpret entries; it only stores them.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use warden_core::time::{Clock, SystemClock};

use crate::entry::{Entry, Seq};
use crate::export::{Batch, Sink};
use crate::health::{outage_entry, Health, LogStats, LogStatus, Retry};
use crate::record::{
    checkpoint_line, write_entry_line, Checkpoint, CheckpointSigner, Digest, SignedCheckpoint,
    CHECKPOINT_FILE, LOG_FILE,
};
use crate::verify::{scan_chain, Finding, Report, VerifyError};
use crate::witness::Witness;

/// Limits and cadence of a log. Every field has a default.
pub struct Options {
    /// Entries queued or being written at once. [`AuditLog::append`] waits for room;
    /// [`AuditLog::try_append`] reports [`TryAppendError::QueueFull`] instead. Default 65,536.
    pub queue_capacity: usize,
    /// The most entries written (and fsynced) together. Default 8,192.
    pub max_batch: usize,
    /// Sign a checkpoint after this many entries. Default 10,000.
    pub checkpoint_every: u64,
    /// …or when this long has passed with unsigned entries. Default 60 s.
    pub checkpoint_interval: Duration,
    /// The largest serialized entry accepted. Default 16 KiB.
    pub max_entry_bytes: usize,
    /// Stamps checkpoints (unix seconds, written as milliseconds).
    pub clock: Arc<dyn Clock>,
    /// Receive every durable batch, on the writer thread, in order.
    pub sinks: Vec<Box<dyn Sink>>,
    /// Receive every checkpoint once it is durable (the last of a batch, when a batch
    /// signs several), on the writer thread.
    pub witnesses: Vec<Arc<dyn Witness>>,
    /// How long [`AuditLog::close`] waits for witnesses to take the final checkpoint.
    /// Default 5 s.
    pub witness_flush: Duration,
    /// Group commit: while several writers keep the log busy (an entry came in while the
    /// last batch was being made durable), the writer waits up to this long for as many
    /// entries as the last batch held before it syncs, so one sync covers every writer at
    /// work. One writer alone, waiting on each entry before it sends the next, never waits.
    /// Zero turns it off. Default 500 µs.
    pub commit_delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_batch: 8_192,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(60),
            max_entry_bytes: 16 * 1024,
            clock: Arc::new(SystemClock),
            sinks: Vec::new(),
            witnesses: Vec::new(),
            witness_flush: Duration::from_secs(5),
            commit_delay: Duration::from_micros(500),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch", &self.max_batch)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("sinks", &self.sinks.len())
            .field(
                "witnesses",
                &self.witnesses.iter().map(|w| w.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open audit log `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The existing log does not verify; it is not continued. Move it aside (and keep it as
    /// evidence) to start a new one.
    #[error("existing audit log `{path}` does not verify")]
    Tampered {
        path: PathBuf,
        #[source]
        finding: Finding,
    },
    #[error("invalid audit options: {0}")]
    Options(&'static str),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("entry is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("entry does not serialize")]
    Encode,
    #[error("audit log is closed")]
    Closed,
    /// The write or fsync of this entry's batch failed; the entry is not on record.
    #[error("audit log write failed: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The log is down after a failed write and refuses entries until it can write again
    /// (see [`AuditLog::status`]); retry later.
    #[error("audit log cannot write: {0}")]
    Unavailable(#[source] Arc<io::Error>),
}

impl AppendError {
    /// Whether the same entry may succeed later: the log failed, not the entry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io(_) | Self::Unavailable(_))
    }

    /// The I/O error behind a failed or refused write (ENOSPC on a full disk, say).
    pub fn io_cause(&self) -> Option<&io::Error> {
        match self {
            Self::Io(e) | Self::Unavailable(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TryAppendError {
    /// The bounded queue is full: the writer is behind. The entry was not queued; the caller
    /// decides whether to drop it (and count the drop) or to refuse its request.
    #[error("audit queue is full")]
    QueueFull,
    #[error(transparent)]
    Append(#[from] AppendError),
}

type Ack = oneshot::Sender<Result<Seq, AppendError>>;

enum Msg {
    Append {
        json: Vec<u8>,
        ack: Option<Ack>,
        /// Held until the entry is durable, so `queue_capacity` bounds everything in flight.
        _permit: OwnedSemaphorePermit,
    },
    /// Entries queued together without acknowledgement, holding one permit per entry.
    AppendAll {
        jsons: Vec<Vec<u8>>,
        _permit: OwnedSemaphorePermit,
    },
    /// Sign a checkpoint now; replies with the entries it covers.
    Checkpoint(oneshot::Sender<Result<u64, AppendError>>),
    Close(oneshot::Sender<Result<u64, AppendError>>),
}

struct Shared {
    tx: mpsc::Sender<Msg>,
    queue: Arc<Semaphore>,
    /// The queue's size: what `queue` had before any entry took a place.
    queue_capacity: usize,
    durable: AtomicU64,
    health: Health,
    max_entry_bytes: usize,
    sink_failures: AtomicU64,
    witness_failures: AtomicU64,
    /// The writer's witnesses, for the failures they count themselves.
    witnesses: Vec<Arc<dyn Witness>>,
    /// The newest checkpoint made durable by this process, for those who relay it.
    latest: tokio::sync::watch::Sender<Option<Arc<SignedCheckpoint>>>,
}

/// A handle on an open audit log. Cheap to clone; the writer stops when [`AuditLog::close`]
/// is called or the last handle is dropped (both sign a final checkpoint).
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("durable_seq", &self.durable_seq())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `dir`. The existing log's chain is checked first and a
    /// torn final line (a crash mid-write; never acknowledged) is cut; the returned report
    /// names it in `torn_tail`. A log whose chain is broken is refused.
    ///
    /// Checkpoint signatures are not checked here (older ones may be under a rotated key);
    /// use [`crate::verify_dir`] for that.
    pub fn open(
        dir: &Path,
        signer: Arc<dyn CheckpointSigner>,
        opts: Options,
    ) -> Result<(Self, Report), OpenError> {
        if opts.queue_capacity == 0 || opts.max_batch == 0 || opts.checkpoint_every == 0 {
            return Err(OpenError::Options(
                "queue_capacity, max_batch and checkpoint_every must be positive",
            ));
        }
        let path = dir.join(LOG_FILE);
        let io_err = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        if created {
            file.sync_all().map_err(io_err)?;
            sync_dir(dir).map_err(io_err)?;
        }
        let report = match scan_chain(&path) {
            Ok(r) => r,
            Err(VerifyError::Tampered(finding)) => {
                return Err(OpenError::Tampered { path, finding })
            }
            Err(VerifyError::Io { source, .. }) => return Err(io_err(source)),
            Err(VerifyError::Anchor { .. }) => unreachable_anchor(&path)?,
        };
        if report.torn_tail.is_some() {
            file.set_len(report.valid_len).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        let cp_path = dir.join(CHECKPOINT_FILE);
        let mut sidecar = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cp_path)
            .map_err(|source| OpenError::Io {
                path: cp_path.clone(),
                source,
            })?;
        cut_torn_sidecar(&cp_path, &mut sidecar).map_err(|source| OpenError::Io {
            path: cp_path.clone(),
            source,
        })?;
        file.flush().map_err(io_err)?;

        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            tx,
            queue: Arc::new(Semaphore::new(opts.queue_capacity)),
            queue_capacity: opts.queue_capacity,
            durable: AtomicU64::new(report.entries),
            health: Health::default(),
            max_entry_bytes: opts.max_entry_bytes,
            sink_failures: AtomicU64::new(0),
            witness_failures: AtomicU64::new(0),
            witnesses: opts.witnesses.clone(),
            latest: tokio::sync::watch::channel(None).0,
        });
        let writer = Writer {
            file,
            sidecar,
            signer,
            seq: report.entries,
            head: report.head,
            checkpoints: report.checkpoints,
            unsigned: report.entries - report.signed_entries,
            buf: Vec::with_capacity(1 << 20),
            shared: Arc::clone(&shared),
            clock: Arc::clone(&opts.clock),
            sinks: opts.sinks,
            witnesses: opts.witnesses,
            witness_flush: opts.witness_flush,
            commit_delay: opts.commit_delay,
            checkpoint_every: opts.checkpoint_every,
            checkpoint_interval: opts.checkpoint_interval,
            max_batch: opts.max_batch,
            durable_len: report.valid_len,
            sidecar_len: sidecar_len(&cp_path).map_err(|source| OpenError::Io {
                path: cp_path.clone(),
                source,
            })?,
            retry: None,
        };
        std::thread::Builder::new()
            .name("warden-audit-writer".into())
            .spawn(move || writer.run(&rx))
            .map_err(io_err)?;
        Ok((Self { shared }, report))
    }

    /// Appends an entry and resolves once it is durable (written and fsynced), with its
    /// sequence number. Waits for queue room when the writer is behind.
    pub async fn append(&self, entry: &Entry) -> Result<Seq, AppendError> {
        let json = self.encode(entry)?;
        let permit = Arc::clone(&self.shared.queue)
            .acquire_owned()
            .await
            .map_err(|_| AppendError::Closed)?;
        let (ack, done) = oneshot::channel();
        self.send(Msg::Append {
            json,
            ack: Some(ack),
            _permit: permit,
        })?;
        done.await.map_err(|_| AppendError::Closed)?
    }

    /// Queues an entry without waiting, for callers that must never block on the audit log
    /// (gateway decisions). `Ok` means queued, not durable; durability follows within one
    /// batch. When the queue is full the entry is refused with
    /// [`TryAppendError::QueueFull`].
    pub fn try_append(&self, entry: &Entry) -> Result<(), TryAppendError> {
        let json = self.encode(entry)?;
        let permit = self.try_reserve(1)?;
        self.send(Msg::Append {
            json,
            ack: None,
            _permit: permit,
        })?;
        Ok(())
    }

    /// [`AuditLog::try_append`] for several entries at once, in order, with one hand-over:
    /// all are queued, or none (`QueueFull` when the queue has no room for all of them, or
    /// the first entry that cannot be encoded).
    pub fn try_append_all(&self, entries: &[Entry]) -> Result<(), TryAppendError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.writable(entries.len())?;
        let jsons = entries
            .iter()
            .map(|e| self.encode(e))
            .collect::<Result<Vec<_>, _>>()?;
        let n = u32::try_from(jsons.len()).map_err(|_| TryAppendError::QueueFull)?;
        let permit = self.try_reserve(n)?;
        self.send(Msg::AppendAll {
            jsons,
            _permit: permit,
        })?;
        Ok(())
    }

    /// Room in the queue for `n` entries, without waiting.
    fn try_reserve(&self, n: u32) -> Result<OwnedSemaphorePermit, TryAppendError> {
        Arc::clone(&self.shared.queue)
            .try_acquire_many_owned(n)
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::NoPermits => TryAppendError::QueueFull,
                tokio::sync::TryAcquireError::Closed => AppendError::Closed.into(),
            })
    }

    /// The highest sequence number known durable.
    pub fn durable_seq(&self) -> Seq {
        Seq(self.shared.durable.load(Ordering::Acquire))
    }

    /// Whether the log can write now, or since when and why it cannot.
    pub fn status(&self) -> LogStatus {
        self.shared.health.status()
    }

    /// Outages, failed writes and entries refused over the log's life.
    pub fn stats(&self) -> LogStats {
        self.shared.health.stats()
    }

    /// Entries queued and not yet durable (each holds a place until it is).
    pub fn queued(&self) -> usize {
        self.shared
            .queue_capacity
            .saturating_sub(self.shared.queue.available_permits())
    }

    /// How many times a sink refused a batch.
    pub fn sink_failures(&self) -> u64 {
        self.shared.sink_failures.load(Ordering::Relaxed)
    }

    /// How many times a witness did not take a checkpoint, gave up delivering one (a
    /// [`crate::UrlWitness`] after its retries), or had not delivered the final one when the
    /// log closed.
    pub fn witness_failures(&self) -> u64 {
        let own: u64 = self.shared.witnesses.iter().map(|w| w.failures()).sum();
        self.shared.witness_failures.load(Ordering::Relaxed) + own
    }

    /// The newest checkpoint this process made durable (none before the first), changing
    /// with each: an authority relays it to its gateways, each a witness.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<Option<Arc<SignedCheckpoint>>> {
        self.shared.latest.subscribe()
    }

    /// Signs a checkpoint over everything queued before this call (none if nothing is
    /// unsigned); resolves with the entries it covers once it is durable.
    pub async fn checkpoint(&self) -> Result<u64, AppendError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Checkpoint(ack))?;
        done.await.map_err(|_| AppendError::Closed)?
    }

    /// Writes everything queued, signs a final checkpoint and stops the writer; resolves
    /// with the number of entries in the log. Other handles then get [`AppendError::Closed`].
    pub async fn close(&self) -> Result<u64, AppendError> {
        let (ack, done) = oneshot::channel();
        self.send(Msg::Close(ack))?;
        let n = done.await.map_err(|_| AppendError::Closed)??;
        self.shared.queue.close();
        Ok(n)
    }

    fn encode(&self, entry: &Entry) -> Result<Vec<u8>, AppendError> {
        self.writable(1)?;
        let json = serde_json::to_vec(entry).map_err(|_| AppendError::Encode)?;
        if json.len() > self.shared.max_entry_bytes {
            return Err(AppendError::TooLarge {
                len: json.len(),
                max: self.shared.max_entry_bytes,
            });
        }
        Ok(json)
    }

    /// Refuses at once while the log is down, rather than queuing what it cannot store.
    fn writable(&self, entries: usize) -> Result<(), AppendError> {
        let health = &self.shared.health;
        if !health.is_down() {
            return Ok(());
        }
        Err(AppendError::Unavailable(health.refuse(entries as u64)))
    }

    fn send(&self, msg: Msg) -> Result<(), AppendError> {
        self.shared.tx.send(msg).map_err(|_| AppendError::Closed)
    }
}

fn unreachable_anchor(path: &Path) -> Result<Report, OpenError> {
    // scan_chain reads no anchors; kept total rather than panicking.
    Err(OpenError::Io {
        path: path.to_owned(),
        source: io::Error::other("unexpected anchor error"),
    })
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The sidecar is appended to after the log's fsync; a crash can tear its last line too.
fn cut_torn_sidecar(path: &Path, file: &mut File) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        file.set_len(keep as u64)?;
        file.sync_all()?;
    }
    Ok(())
}

fn sidecar_len(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

type Pending = (Vec<u8>, Option<Ack>, Option<OwnedSemaphorePermit>);

struct Writer {
    file: File,
    sidecar: File,
    signer: Arc<dyn CheckpointSigner>,
    /// The last entry's seq (written, not necessarily durable yet).
    seq: u64,
    head: Digest,
    checkpoints: u64,
    /// Entries after the last checkpoint.
    unsigned: u64,
    buf: Vec<u8>,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    sinks: Vec<Box<dyn Sink>>,
    witnesses: Vec<Arc<dyn Witness>>,
    witness_flush: Duration,
    commit_delay: Duration,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    max_batch: usize,
    /// The log's length when it was last made durable: a failed write is cut back to it.
    durable_len: u64,
    sidecar_len: u64,
    /// Set while the log is down: when to probe next.
    retry: Option<Retry>,
}

/// Where the chain stood before a batch, restored when the batch's write fails.
#[derive(Clone, Copy)]
struct ChainState {
    seq: u64,
    head: Digest,
    checkpoints: u64,
    unsigned: u64,
}

enum Control {
    None,
    Checkpoint(oneshot::Sender<Result<u64, AppendError>>),
    Close(oneshot::Sender<Result<u64, AppendError>>),
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let mut last_checkpoint = Instant::now();
        let mut batch = Vec::with_capacity(self.max_batch);
        // An entry that came in while the last batch was being made durable: other writers
        // are at work, so the next sync waits a moment for more of them.
        let mut came_during_sync: Option<Msg> = None;
        // The entries of the last batch: how many writers were at work, so how many to wait
        // for before syncing.
        let mut last_batch = 0;
        loop {
            let wait = match &self.retry {
                Some(r) => r.next.saturating_duration_since(Instant::now()),
                None => self
                    .checkpoint_interval
                    .saturating_sub(last_checkpoint.elapsed()),
            };
            let busy = came_during_sync.is_some();
            let received = match came_during_sync.take() {
                Some(m) => Ok(m),
                None => rx.recv_timeout(wait),
            };
            let first = match received {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if self.retry.is_some() {
                        self.probe();
                    } else if self.unsigned > 0 {
                        let _ = self.commit(&mut Vec::new(), true);
                    }
                    last_checkpoint = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if self.retry.is_some() {
                        self.probe();
                    }
                    let _ = self.commit(&mut Vec::new(), true);
                    self.flush_witnesses();
                    return;
                }
            };
            let mut control = Control::None;
            let mut msg = Some(first);
            let gather_until =
                (busy && !self.commit_delay.is_zero()).then(|| Instant::now() + self.commit_delay);
            while let Some(m) = msg.take() {
                match m {
                    Msg::Append { json, ack, _permit } => batch.push((json, ack, Some(_permit))),
                    Msg::AppendAll { jsons, _permit } => {
                        let mut permit = Some(_permit);
                        let last = jsons.len().saturating_sub(1);
                        for (i, json) in jsons.into_iter().enumerate() {
                            // The group's permits go with its last entry: all are released
                            // together, once the batch is durable.
                            let held = if i == last { permit.take() } else { None };
                            batch.push((json, None, held));
                        }
                    }
                    Msg::Checkpoint(ack) => control = Control::Checkpoint(ack),
                    Msg::Close(ack) => control = Control::Close(ack),
                }
                if !matches!(control, Control::None) || batch.len() >= self.max_batch {
                    break;
                }
                msg = rx.try_recv().ok();
                if msg.is_none() && batch.len() < last_batch {
                    if let Some(until) = gather_until {
                        let left = until.saturating_duration_since(Instant::now());
                        if !left.is_zero() {
                            msg = rx.recv_timeout(left).ok();
                        }
                    }
                }
            }
            if self.retry.is_some() && !matches!(control, Control::None) {
                // A checkpoint or a close is worth a probe of its own.
                self.probe();
            }
            let force = !matches!(control, Control::None)
                || (self.unsigned > 0 && last_checkpoint.elapsed() >= self.checkpoint_interval);
            let signed_before = self.checkpoints;
            last_batch = batch.len();
            let result = self.commit(&mut batch, force);
            if self.checkpoints != signed_before {
                last_checkpoint = Instant::now();
            }
            came_during_sync = rx.try_recv().ok();
            match control {
                Control::None => {}
                Control::Checkpoint(ack) => {
                    let _ = ack.send(result.map(|()| self.seq));
                }
                Control::Close(ack) => {
                    // The final checkpoint leaves with the process, or the wait is bounded.
                    self.flush_witnesses();
                    let _ = ack.send(result.map(|()| self.seq));
                    return;
                }
            }
        }
    }

    /// Writes `batch` (and a checkpoint when due or `force`d with entries unsigned), makes it
    /// durable, acknowledges it, then feeds sinks. Empties `batch`. While the log is down the
    /// batch is refused without touching the file.
    fn commit(&mut self, batch: &mut Vec<Pending>, force: bool) -> Result<(), AppendError> {
        if self.retry.is_some() {
            let err = AppendError::Unavailable(self.shared.health.refuse(batch.len() as u64));
            refuse(batch, &err);
            return Err(err);
        }
        let before = self.chain_state();
        let first_seq = self.seq + 1;
        self.buf.clear();
        let mut cp_lines: Vec<(usize, usize)> = Vec::new();
        for (json, _, _) in batch.iter() {
            self.seq += 1;
            let start = self.buf.len();
            write_entry_line(&mut self.buf, self.seq, &self.head, json);
            self.head = Digest::of_line(self.buf.get(start..).unwrap_or_default());
            self.buf.push(b'\n');
            self.unsigned += 1;
            if self.unsigned >= self.checkpoint_every {
                cp_lines.push(self.push_checkpoint());
            }
        }
        if force && self.unsigned > 0 {
            cp_lines.push(self.push_checkpoint());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut side = Vec::new();
        for &(s, e) in &cp_lines {
            side.extend_from_slice(self.buf.get(s..e).unwrap_or_default());
        }
        if let Err(e) = self.write_durably(&side) {
            let err = AppendError::Io(self.went_down(e, before));
            refuse(batch, &err);
            return Err(err);
        }
        self.shared.durable.store(self.seq, Ordering::Release);
        for (i, (_, ack, _)) in batch.drain(..).enumerate() {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(Seq(first_seq + i as u64)));
            }
        }
        if let Some(&(s, e)) = cp_lines.last() {
            self.hand_to_witnesses(s, e);
        }
        let b = Batch::new(&self.buf, first_seq, self.seq);
        for sink in &mut self.sinks {
            if sink.deliver(&b).is_err() {
                self.shared.sink_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Hands the durable checkpoint line at `buf[s..e]` to every witness; a refusal is
    /// counted and logged, never returned.
    fn hand_to_witnesses(&self, s: usize, e: usize) {
        let line = self.buf.get(s..e).unwrap_or_default();
        let parsed = std::str::from_utf8(line)
            .ok()
            .and_then(|l| SignedCheckpoint::parse(l.trim_end()).ok());
        let Some(cp) = parsed else {
            // The writer built this line itself; it always parses.
            return;
        };
        for w in &self.witnesses {
            if let Err(e) = w.witness(&cp) {
                self.shared.witness_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, checkpoint = cp.checkpoint.seq, "audit witness refused a checkpoint");
            }
        }
        self.shared.latest.send_replace(Some(Arc::new(cp)));
    }

    fn flush_witnesses(&self) {
        for w in &self.witnesses {
            if let Err(e) = w.flush(self.witness_flush) {
                self.shared.witness_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "audit witness did not take the final checkpoint in time");
            }
        }
    }

    /// Appends the buffer to the log and `side` to the sidecar, each made durable; the log
    /// first, never after: the sidecar must not claim entries the log might lose.
    fn write_durably(&mut self, side: &[u8]) -> io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        if !side.is_empty() {
            self.sidecar.write_all(side)?;
            self.sidecar.sync_data()?;
        }
        self.durable_len += self.buf.len() as u64;
        self.sidecar_len += side.len() as u64;
        Ok(())
    }

    /// A write failed: the chain goes back to where it stood, both files are cut back to
    /// what was durable (a failed fsync leaves their tails unknown), and the log refuses
    /// entries until a probe succeeds.
    fn went_down(&mut self, e: io::Error, before: ChainState) -> Arc<io::Error> {
        self.restore(before);
        let e = Arc::new(e);
        if let Err(cut) = self.cut_back() {
            // The next probe cuts again before it writes; nothing is appended past a tail
            // that was not cut.
            tracing::warn!(error = %cut, "audit log: cutting back a failed write failed; will retry");
        }
        let now_ms = self.clock.now().saturating_mul(1000);
        if self.shared.health.write_failed(Arc::clone(&e), now_ms) {
            tracing::error!(
                error = %e,
                durable_entries = self.seq,
                "audit log cannot write; refusing entries until it can (retrying with backoff)"
            );
            self.retry = Some(Retry::after_failure(Instant::now()));
        } else if let Some(r) = &mut self.retry {
            r.failed_again(Instant::now());
        } else {
            self.retry = Some(Retry::after_failure(Instant::now()));
        }
        e
    }

    fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.durable_len)?;
        self.file.sync_all()?;
        self.sidecar.set_len(self.sidecar_len)?;
        self.sidecar.sync_all()
    }

    /// Tries to bring a down log back: writes the outage's own record (with a checkpoint
    /// over it) and, once that is durable, accepts entries again.
    fn probe(&mut self) {
        let Some(cause) = self.shared.health.cause() else {
            self.retry = None;
            return;
        };
        if let Err(e) = self.cut_back() {
            self.shared
                .health
                .write_failed(Arc::new(e), self.clock.now().saturating_mul(1000));
            if let Some(r) = &mut self.retry {
                r.failed_again(Instant::now());
            }
            return;
        }
        let since_ms = match self.shared.health.status() {
            LogStatus::Unwritable { since_ms, .. } => since_ms,
            LogStatus::Writable => 0,
        };
        let stats = self.shared.health.stats();
        let now_ms = self.clock.now().saturating_mul(1000);
        let entry = outage_entry(now_ms, since_ms, &cause, stats.refused_entries);
        let Ok(json) = serde_json::to_vec(&entry) else {
            return;
        };
        let pending = self.retry.take();
        match self.commit(&mut vec![(json, None, None)], true) {
            Ok(()) => {
                self.shared.health.recovered();
                tracing::info!(
                    down_ms = now_ms.saturating_sub(since_ms),
                    refused_entries = stats.refused_entries,
                    cause = %cause,
                    "audit log writable again; the outage is on record"
                );
            }
            Err(_) => {
                // Still down: back off from where this outage's retries stood.
                self.retry = pending.map(|mut r| {
                    r.failed_again(Instant::now());
                    r
                });
                if self.retry.is_none() {
                    self.retry = Some(Retry::after_failure(Instant::now()));
                }
            }
        }
    }

    fn chain_state(&self) -> ChainState {
        ChainState {
            seq: self.seq,
            head: self.head,
            checkpoints: self.checkpoints,
            unsigned: self.unsigned,
        }
    }

    fn restore(&mut self, s: ChainState) {
        self.seq = s.seq;
        self.head = s.head;
        self.checkpoints = s.checkpoints;
        self.unsigned = s.unsigned;
    }

    /// Appends a signed checkpoint line to the buffer; returns its byte range (with newline).
    fn push_checkpoint(&mut self) -> (usize, usize) {
        self.checkpoints += 1;
        let cp = Checkpoint {
            seq: self.checkpoints,
            count: self.seq,
            head: self.head.to_b64(),
            time: self.clock.now().saturating_mul(1000),
            kid: self.signer.kid(),
        };
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&checkpoint_line(self.signer.as_ref(), &cp));
        self.buf.push(b'\n');
        self.unsigned = 0;
        (start, self.buf.len())
    }
}

fn refuse(batch: &mut Vec<Pending>, err: &AppendError) {
    for (_, ack, _) in batch.drain(..) {
        if let Some(ack) = ack {
            let _ = ack.send(Err(err.clone()));
        }
    }
}
