//! Getting entries out: [`export`] copies stored entries since a time as JSON lines, and a
//! [`Sink`] receives every batch as soon as it is durable.
//!
//! Neither checks the chain (that is [`crate::verify`]); both pass on the stored line bytes
//! unchanged, so a receiver can re-hash them and check `prev` itself.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde::Deserialize;

use crate::entry::Entry;

/// The lines one commit made durable: entry lines, then any checkpoint lines, each ending in
/// `\n`, exactly as written to the log.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    bytes: &'a [u8],
    first_seq: u64,
    last_seq: u64,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(bytes: &'a [u8], first_seq: u64, last_seq: u64) -> Self {
        Self {
            bytes,
            first_seq,
            last_seq,
        }
    }

    /// The exact bytes written.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The first entry's seq; greater than [`Batch::last_seq`] when the batch holds only a
    /// checkpoint.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Each line, without its newline.
    pub fn lines(&self) -> impl Iterator<Item = &'a [u8]> {
        self.bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty())
    }
}

/// Receives every durable batch, in log order, on the writer thread: it must not block. A
/// sink that talks to the network (a webhook) queues the batch and returns. An error is
/// counted ([`crate::AuditLog::sink_failures`]) and never stops the log.
pub trait Sink: Send {
    fn deliver(&mut self, batch: &Batch<'_>) -> io::Result<()>;
}

/// Writes every line of every batch to a writer (stdout, a pipe, a file), checkpoints
/// included, so the receiving side can verify what it received.
#[derive(Debug)]
pub struct JsonLinesSink<W>(pub W);

impl<W: Write + Send> Sink for JsonLinesSink<W> {
    fn deliver(&mut self, batch: &Batch<'_>) -> io::Result<()> {
        self.0.write_all(batch.bytes())?;
        self.0.flush()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read audit log")]
    Read(#[source] io::Error),
    #[error("cannot write export")]
    Write(#[source] io::Error),
    #[error("line {line} is not an audit record")]
    Malformed { line: u64 },
}

/// Writes every entry line whose `time` is at least `since_ms` (unix ms) to `out`, as stored:
/// `{"seq":N,"prev":"…","entry":{…}}`, one per line. Checkpoints and a torn tail are
/// skipped. Returns how many entries were written.
pub fn export(log: &Path, since_ms: i64, mut out: impl Write) -> Result<u64, ExportError> {
    #[derive(Deserialize)]
    struct Line {
        entry: Option<Entry>,
    }
    let mut reader = BufReader::new(File::open(log).map_err(ExportError::Read)?);
    let mut buf = Vec::new();
    let mut line = 0;
    let mut written = 0;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(ExportError::Read)?
            == 0
        {
            break;
        }
        line += 1;
        if buf.last() != Some(&b'\n') {
            break;
        }
        let parsed: Line =
            serde_json::from_slice(&buf).map_err(|_| ExportError::Malformed { line })?;
        if parsed.entry.is_some_and(|e| e.time >= since_ms) {
            out.write_all(&buf).map_err(ExportError::Write)?;
            written += 1;
        }
    }
    out.flush().map_err(ExportError::Write)?;
    Ok(written)
}
