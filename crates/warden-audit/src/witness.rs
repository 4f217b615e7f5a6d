//! Witnesses: every signed checkpoint, once durable in the log, is handed to places the log's
//! host does not control, so that a root attacker who cuts, empties or rewrites (and re-signs)
//! the log is caught by `verify` against what a witness kept.
//!
//! A witness receives the checkpoint line exactly as written (`{"checkpoint":{…},"sig":"…"}`,
//! see [`SignedCheckpoint::line`]); the same JSON is what a witness serves back on `GET` and
//! what [`parse_witness`] reads. This module must never block or fail the writer: a witness
//! that talks to the network queues and returns, and every failure is counted and logged.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::record::SignedCheckpoint;

/// Why a witness did not take a checkpoint (it is counted and logged, never fatal).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness `{name}` cannot write: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("witness `{name}` did not take the checkpoint: {reason}")]
    Refused { name: String, reason: String },
    #[error("witness `{name}` is still delivering after {waited_ms} ms")]
    Pending { name: String, waited_ms: u128 },
}

/// Keeps checkpoints somewhere the log's host cannot quietly rewrite. Implemented by
/// [`FileWitness`], [`UrlWitness`] and [`LatestCheckpoint`] (which a gateway fills from the
/// revocation stream).
pub trait Witness: Send + Sync {
    /// Names the witness in logs and errors (`file:/path`, `url:http://…`).
    fn name(&self) -> String;
    /// Takes a checkpoint that is durable in the log, on the writer thread: it must not
    /// wait on the network.
    fn witness(&self, checkpoint: &SignedCheckpoint) -> Result<(), WitnessError>;
    /// Waits up to `timeout` until every checkpoint handed over was delivered or given up;
    /// the writer calls it once, at close, so the final checkpoint leaves with the process.
    fn flush(&self, _timeout: Duration) -> Result<(), WitnessError> {
        Ok(())
    }
    /// Checkpoints it took but later failed to deliver (a network witness's given-up
    /// retries); failures to take one are counted by the log itself.
    fn failures(&self) -> u64 {
        0
    }
}

/// Reads what a witness kept: one checkpoint line, or several (an append-only list). A torn
/// last line (a crash mid-append) is ignored.
pub fn parse_witness(text: &str) -> Result<Vec<SignedCheckpoint>, serde_json::Error> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match SignedCheckpoint::parse(line) {
            Ok(cp) => out.push(cp),
            // Only the last line can be torn, and only when no newline ended it.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') && !out.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// An append-only list of checkpoint lines in a file outside the data directory: each one
/// is appended with `O_APPEND` and made durable before the next. Earlier lines stay, so an
/// attacker who can also write here cannot replace what was witnessed without leaving a
/// checkpoint the forged log contradicts (make the file append-only, `chattr +a`, or keep it
/// on another machine's mount).
#[derive(Debug)]
pub struct FileWitness {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl FileWitness {
    /// Opens (or creates) the list; its parent directory must exist.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }
}

impl Witness for FileWitness {
    fn name(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn witness(&self, checkpoint: &SignedCheckpoint) -> Result<(), WitnessError> {
        let mut line = checkpoint.line();
        line.push(b'\n');
        let mut file = lock(&self.file);
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|source| WitnessError::Io {
                name: self.name(),
                source,
            })
    }
}

/// Keeps the latest checkpoint of each log in memory (one per signing key: replicas of an
/// authority each sign their own log), for a server to answer `GET` with
/// ([`LatestCheckpoint::latest`]): how a gateway witnesses the logs it hears from.
/// An older checkpoint than the one kept for its key (a lower `count`) is refused, so a
/// replayed one, or one from a log that was cut back and re-signed, cannot replace it.
#[derive(Debug, Default)]
pub struct LatestCheckpoint {
    /// By `kid`; at most [`LatestCheckpoint::MAX_LOGS`], the least recently signed dropped.
    kept: Mutex<BTreeMap<String, SignedCheckpoint>>,
}

impl LatestCheckpoint {
    /// Logs kept at once: far more than an authority has replicas, and a bound on what a
    /// stream of made-up keys could make it hold.
    pub const MAX_LOGS: usize = 64;

    pub fn new() -> Self {
        Self::default()
    }

    /// The checkpoint lines to serve, exactly as signed, one a line, the most recently
    /// signed last; `None` before the first.
    pub fn latest(&self) -> Option<Vec<u8>> {
        let kept = lock(&self.kept);
        let mut all: Vec<&SignedCheckpoint> = kept.values().collect();
        all.sort_by_key(|c| c.checkpoint.time);
        let mut out = Vec::new();
        for (i, cp) in all.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(&cp.line());
        }
        (!all.is_empty()).then_some(out)
    }

    /// The latest checkpoint kept for the log signed by `kid`.
    pub fn latest_for(&self, kid: &str) -> Option<Vec<u8>> {
        lock(&self.kept).get(kid).map(SignedCheckpoint::line)
    }
}

impl Witness for LatestCheckpoint {
    fn name(&self) -> String {
        "memory".into()
    }

    fn witness(&self, checkpoint: &SignedCheckpoint) -> Result<(), WitnessError> {
        let mut kept = lock(&self.kept);
        let kid = &checkpoint.checkpoint.kid;
        if let Some(k) = kept.get(kid) {
            if k.checkpoint.count > checkpoint.checkpoint.count {
                return Err(WitnessError::Refused {
                    name: self.name(),
                    reason: format!(
                        "it covers {} entries, but a checkpoint of the same log covering {} was seen before: the log went back",
                        checkpoint.checkpoint.count, k.checkpoint.count
                    ),
                });
            }
        } else if kept.len() >= Self::MAX_LOGS {
            let oldest = kept
                .iter()
                .min_by_key(|(_, c)| c.checkpoint.time)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                kept.remove(&k);
            }
        }
        kept.insert(kid.clone(), checkpoint.clone());
        Ok(())
    }
}

/// How a [`UrlWitness`] retries one checkpoint before it gives up on it.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries per checkpoint, the first included. Default 4.
    pub attempts: u32,
    /// The wait after the first failure; doubles after each. Default 200 ms.
    pub backoff: Duration,
    /// One request's limit. Default 2 s.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
        }
    }
}

/// What the delivery thread has to do, shared with the writer.
#[derive(Default)]
struct Outbox {
    /// The newest checkpoint not yet taken by the thread; a newer one replaces it, since a
    /// witness needs only the latest.
    next: Option<SignedCheckpoint>,
    /// Checkpoints handed over, and those delivered or given up.
    handed: u64,
    settled: u64,
    closed: bool,
}

struct UrlShared {
    url: String,
    outbox: Mutex<Outbox>,
    changed: Condvar,
    failures: AtomicU64,
}

/// POSTs each checkpoint's JSON (`application/json`) to a URL from a thread of its own, with
/// bounded retry; a checkpoint that still fails is logged and counted
/// ([`UrlWitness::failures`]), and a newer one supersedes one still waiting. The writer never
/// waits on it, except for [`Witness::flush`] at close.
pub struct UrlWitness {
    shared: Arc<UrlShared>,
}

impl std::fmt::Debug for UrlWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlWitness")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl UrlWitness {
    /// Starts the delivery thread for `url` (`http://…`).
    pub fn spawn(url: &str, retry: Retry) -> io::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .build()
            .map_err(io::Error::other)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(UrlShared {
            url: url.to_owned(),
            outbox: Mutex::new(Outbox::default()),
            changed: Condvar::new(),
            failures: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("warden-audit-witness".into())
            .spawn(move || deliver_all(&s, &client, &runtime, retry))?;
        Ok(Self { shared })
    }
}

impl Drop for UrlWitness {
    fn drop(&mut self) {
        lock(&self.shared.outbox).closed = true;
        self.shared.changed.notify_all();
    }
}

impl Witness for UrlWitness {
    fn name(&self) -> String {
        format!("url:{}", self.shared.url)
    }

    fn witness(&self, checkpoint: &SignedCheckpoint) -> Result<(), WitnessError> {
        let mut outbox = lock(&self.shared.outbox);
        if outbox.next.replace(checkpoint.clone()).is_some() {
            // The one it replaces is settled unsent: the newer covers it.
            outbox.settled += 1;
        }
        outbox.handed += 1;
        drop(outbox);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Checkpoints that were given up after every retry failed.
    fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    fn flush(&self, timeout: Duration) -> Result<(), WitnessError> {
        let deadline = Instant::now() + timeout;
        let mut outbox = lock(&self.shared.outbox);
        while outbox.settled < outbox.handed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WitnessError::Pending {
                    name: self.name(),
                    waited_ms: timeout.as_millis(),
                });
            }
            outbox = match self.shared.changed.wait_timeout(outbox, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        Ok(())
    }
}

/// The delivery thread: takes the newest checkpoint, POSTs it with retry, settles it.
fn deliver_all(
    s: &UrlShared,
    client: &reqwest::Client,
    runtime: &tokio::runtime::Runtime,
    retry: Retry,
) {
    loop {
        let next = {
            let mut outbox = lock(&s.outbox);
            loop {
                if let Some(cp) = outbox.next.take() {
                    break cp;
                }
                if outbox.closed {
                    return;
                }
                outbox = match s.changed.wait(outbox) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
        };
        let body = next.line();
        let result = runtime.block_on(post_with_retry(client, &s.url, body, retry));
        if let Err(reason) = result {
            s.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                witness = %s.url,
                checkpoint = next.checkpoint.seq,
                entries = next.checkpoint.count,
                reason = %reason,
                "audit witness did not take a checkpoint; the next one will be offered"
            );
        }
        lock(&s.outbox).settled += 1;
        s.changed.notify_all();
    }
}

async fn post_with_retry(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    retry: Retry,
) -> Result<(), String> {
    let mut wait = retry.backoff;
    let mut last = String::new();
    for attempt in 1..=retry.attempts.max(1) {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        if attempt < retry.attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    Err(last)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Checkpoint, Digest};
    use warden_core::SigningKey;

    fn signed(count: u64) -> SignedCheckpoint {
        signed_by(&[7u8; 32], count)
    }

    fn signed_by(seed: &[u8; 32], count: u64) -> SignedCheckpoint {
        let key = SigningKey::from_bytes(seed).unwrap_or_else(|e| unreachable!("{e}"));
        let cp = Checkpoint {
            seq: count,
            count,
            head: Digest::GENESIS.to_b64(),
            time: 5,
            kid: crate::CheckpointSigner::kid(&key),
        };
        let line = String::from_utf8(cp.signed_line(&key)).unwrap_or_default();
        SignedCheckpoint::parse(&line).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_file_witness_keeps_every_checkpoint_and_reads_back() {
        let dir = tempfile::TempDir::new().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("witness.jsonl");
        let w = FileWitness::open(&path).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(w.witness(&signed(3)).is_ok());
        assert!(w.witness(&signed(9)).is_ok());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept = parse_witness(&text).unwrap_or_else(|e| unreachable!("{e}"));
        let counts: Vec<u64> = kept.iter().map(|c| c.checkpoint.count).collect();
        assert_eq!(counts, [3, 9]);
        // A torn last line is ignored, a bad complete one is not.
        let torn = format!("{text}{{\"checkpoint\":");
        assert_eq!(parse_witness(&torn).map(|v| v.len()).ok(), Some(2));
        assert!(parse_witness("not json\n").is_err());
    }

    #[test]
    fn the_latest_checkpoint_is_kept_and_never_replaced_by_an_older_one() {
        let w = LatestCheckpoint::new();
        assert!(w.latest().is_none());
        assert!(w.witness(&signed(5)).is_ok());
        assert!(w.witness(&signed(2)).is_err());
        let served = String::from_utf8(w.latest().unwrap_or_default()).unwrap_or_default();
        let back = parse_witness(&served).unwrap_or_default();
        assert_eq!(back.first().map(|c| c.checkpoint.count), Some(5));
    }

    #[test]
    fn each_log_keeps_its_own_latest_checkpoint() {
        let w = LatestCheckpoint::new();
        let other = signed_by(&[9u8; 32], 2);
        assert!(w.witness(&signed(5)).is_ok());
        // Another replica's log is younger, not older.
        assert!(w.witness(&other).is_ok());
        let served = String::from_utf8(w.latest().unwrap_or_default()).unwrap_or_default();
        let mut counts: Vec<u64> = parse_witness(&served)
            .unwrap_or_default()
            .iter()
            .map(|c| c.checkpoint.count)
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [2, 5]);
        let one = w.latest_for(&other.checkpoint.kid).unwrap_or_default();
        assert_eq!(one, other.line());
        assert!(w.witness(&signed(4)).is_err(), "still refused per log");
    }

    #[test]
    fn an_unreachable_url_is_counted_and_never_holds_the_writer_past_the_flush_bound() {
        // A port nothing listens on: bound and dropped.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let retry = Retry {
            attempts: 2,
            backoff: Duration::from_millis(1),
            timeout: Duration::from_millis(500),
        };
        let w = UrlWitness::spawn(&format!("http://127.0.0.1:{port}/cp"), retry)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(w.witness(&signed(1)).is_ok(), "handing over never fails");
        assert!(w.flush(Duration::from_secs(10)).is_ok());
        assert_eq!(w.failures(), 1);
    }
}
