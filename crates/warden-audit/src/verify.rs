//! Checking a log: every entry's link to the one before, every checkpoint's signature,
//! count and head, and the signed checkpoints kept outside the log. Stops at the first
//! break and names it.
//!
//! Verification streams the file once and keeps O(1) state, except when it meets a break:
//! it then reads a bounded window ahead to tell a deletion from a reordering or an insertion.
//! It never repairs anything; cutting a torn tail is [`crate::AuditLog::open`]'s job.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::entry::Entry;
use crate::record::{
    verify_checkpoint, Checkpoint, Digest, KeyRing, SignatureProblem, SignedCheckpoint,
    CHECKPOINT_FILE, LOG_FILE,
};

/// The longest line a verifier reads; a longer one is malformed (the writer refuses entries
/// over [`crate::Options::max_entry_bytes`], far below this).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How many lines past a break are read to classify it.
const DIAGNOSIS_WINDOW: usize = 100_000;

/// The first place where a log stops being what its writer wrote, 1-based lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// The bytes of entry `seq` changed after they were chained: its successor's `prev`, or a
    /// signed checkpoint's `head`, no longer matches.
    #[error("entry {seq} (line {line}) was edited")]
    Edited { seq: u64, line: u64 },
    /// Entries `first..=last` are missing; line `line` is where they should have been.
    #[error("entries {first}..={last} were deleted before line {line}")]
    Deleted { first: u64, last: u64, line: u64 },
    /// Line `line`, claiming `seq`, was not written by the writer: the chain continues around it.
    #[error("line {line} (claiming entry {seq}) was inserted")]
    Inserted { seq: u64, line: u64 },
    /// Entry `seq` appears at line `line`, where entry `expected` belongs; the missing
    /// entries appear later.
    #[error("entry {seq} at line {line} is out of order; entry {expected} belongs there")]
    Reordered { seq: u64, expected: u64, line: u64 },
    /// The log ends after entry `present`, but checkpoint `checkpoint` (signed) covers
    /// entries up to `covered`: entries `present + 1..=covered` were cut.
    #[error("log ends after entry {present}, but signed checkpoint {checkpoint} covers {covered}")]
    Truncated {
        present: u64,
        covered: u64,
        checkpoint: u64,
    },
    /// A complete line that is not a valid record.
    #[error("line {line} is malformed: {reason}")]
    Malformed { line: u64, reason: String },
    /// A checkpoint whose signature does not verify under the key its `kid` names.
    #[error("checkpoint {checkpoint} (line {line}) has a bad signature")]
    BadSignature { checkpoint: u64, line: u64 },
    /// A checkpoint signed by a key the verifier does not trust.
    #[error("checkpoint {checkpoint} (line {line}) is signed by unknown key `{kid}`")]
    UnknownKey {
        checkpoint: u64,
        line: u64,
        kid: String,
    },
    /// A signed checkpoint whose `count` is not the number of entries before it.
    #[error(
        "checkpoint {checkpoint} (line {line}) claims {count} entries, but {entries} precede it"
    )]
    CheckpointMismatch {
        checkpoint: u64,
        line: u64,
        count: u64,
        entries: u64,
    },
    /// Checkpoint numbers must run 1, 2, 3…; a gap or repeat means one was removed or copied.
    #[error("checkpoint {checkpoint} at line {line}; checkpoint {expected} was expected")]
    CheckpointOutOfSequence {
        checkpoint: u64,
        expected: u64,
        line: u64,
    },
}

/// Verification failed: the log could not be read, or it was tampered with.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{path}` line {line} is not a checkpoint: {reason}")]
    Anchor {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("audit log tampered: {0}")]
    Tampered(Finding),
}

/// An incomplete final line: the writer crashed mid-write, before it acknowledged anything
/// in that line. Safe to cut at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    pub line: u64,
    /// Byte offset where the torn line starts (the length to truncate the file to).
    pub offset: u64,
    pub len: u64,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Entries in the log: the `seq` of the last one.
    pub entries: u64,
    /// The hash of the last entry's line ([`Digest::GENESIS`] for an empty log).
    pub head: Digest,
    /// Checkpoints in the log, all verified.
    pub checkpoints: u64,
    /// Entries covered by the last checkpoint; entries after it are chained but unsigned.
    pub signed_entries: u64,
    /// Checkpoints from outside the log that were checked against it.
    pub anchors: u64,
    /// The most entries any of those anchors covers (0 without anchors).
    pub anchored_entries: u64,
    pub torn_tail: Option<TornTail>,
    /// Bytes of complete lines (where the next write goes, once a torn tail is cut).
    pub valid_len: u64,
}

impl Report {
    /// Entries after the last checkpoint in the log: chained, but signed by nothing yet. A
    /// running server has up to a minute's; a clean stop leaves none; a crash, or a log cut
    /// together with its later checkpoints, leaves some — only a witness tells those apart.
    pub fn unsigned_entries(&self) -> u64 {
        self.entries.saturating_sub(self.signed_entries)
    }
}

/// Verifies `dir/audit.jsonl`, using `dir/checkpoints.jsonl` (if present) as anchors, so a
/// log cut after a checkpoint is caught.
pub fn verify_dir(dir: &Path, keys: &KeyRing) -> Result<Report, VerifyError> {
    verify_dir_with(dir, keys, &[])
}

/// [`verify_dir`], also checking the log against `witnessed` checkpoints kept elsewhere
/// (see [`crate::witness`]): the log must hold at least as many entries as each covers, with
/// the same head at that count, or it was cut, emptied or rewritten.
pub fn verify_dir_with(
    dir: &Path,
    keys: &KeyRing,
    witnessed: &[SignedCheckpoint],
) -> Result<Report, VerifyError> {
    let anchors_path = dir.join(CHECKPOINT_FILE);
    let mut anchors = if anchors_path.exists() {
        read_anchors(&anchors_path)?
    } else {
        Vec::new()
    };
    anchors.extend_from_slice(witnessed);
    verify_file(&dir.join(LOG_FILE), keys, &anchors)
}

/// Reads signed checkpoints, one per line (a `checkpoints.jsonl`, or lines a sink kept).
/// A torn last line is ignored.
pub fn read_anchors(path: &Path) -> Result<Vec<SignedCheckpoint>, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io_err)?;
    let mut out = Vec::new();
    let complete = text.rfind('\n').map_or("", |i| text.get(..i).unwrap_or(""));
    for (i, line) in complete.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(
            SignedCheckpoint::parse(line).map_err(|e| VerifyError::Anchor {
                path: path.to_owned(),
                line: i as u64 + 1,
                reason: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// Verifies one log file against `keys`, checking each of `anchors` (signed checkpoints
/// kept elsewhere) against it. Every anchor must verify too.
pub fn verify_file(
    path: &Path,
    keys: &KeyRing,
    anchors: &[SignedCheckpoint],
) -> Result<Report, VerifyError> {
    // Several anchors may cover the same count (the sidecar's copy and a witness's): each
    // is checked, so a rewritten sidecar cannot stand in for what a witness kept.
    let mut by_count: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
    for a in anchors {
        let cp = a
            .verify(keys)
            .map_err(|p| VerifyError::Tampered(signature_finding(p, &a.checkpoint, 0)))?;
        by_count.entry(cp.count).or_default().push(cp.clone());
    }
    scan(path, Some(keys), &by_count)
}

/// The chain check alone, signatures unchecked: what `open` needs to continue a log whose
/// older checkpoints may be signed by rotated-out keys.
pub(crate) fn scan_chain(path: &Path) -> Result<Report, VerifyError> {
    scan(path, None, &BTreeMap::new())
}

fn signature_finding(p: SignatureProblem, cp: &Checkpoint, line: u64) -> Finding {
    match p {
        SignatureProblem::UnknownKey => Finding::UnknownKey {
            checkpoint: cp.seq,
            line,
            kid: cp.kid.clone(),
        },
        SignatureProblem::BadSignature => Finding::BadSignature {
            checkpoint: cp.seq,
            line,
        },
    }
}

/// The fields of any line, borrowed: the fast path parses this and the entry, nothing more.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    prev: Option<&'a str>,
    #[serde(borrow)]
    entry: Option<&'a RawValue>,
    #[serde(borrow)]
    checkpoint: Option<&'a RawValue>,
    #[serde(borrow)]
    sig: Option<&'a str>,
}

enum Record<'a> {
    Entry {
        seq: u64,
        prev: Digest,
    },
    Checkpoint {
        cp: Checkpoint,
        raw: &'a RawValue,
        sig: &'a str,
    },
}

fn parse_record(line: &[u8]) -> Result<Record<'_>, String> {
    let raw: RawLine<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    match raw {
        RawLine {
            seq: Some(seq),
            prev: Some(prev),
            entry: Some(entry),
            checkpoint: None,
            sig: None,
        } => {
            let prev = Digest::from_b64(prev).ok_or("`prev` is not a SHA-256 digest")?;
            serde_json::from_str::<Entry>(entry.get()).map_err(|e| format!("entry: {e}"))?;
            Ok(Record::Entry { seq, prev })
        }
        RawLine {
            seq: None,
            prev: None,
            entry: None,
            checkpoint: Some(raw),
            sig: Some(sig),
        } => {
            let cp = serde_json::from_str(raw.get()).map_err(|e| format!("checkpoint: {e}"))?;
            Ok(Record::Checkpoint { cp, raw, sig })
        }
        _ => Err("neither an entry nor a checkpoint".into()),
    }
}

struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    line: u64,
    offset: u64,
}

enum Next {
    Line,
    Torn,
    TooLong,
    End,
}

impl Lines {
    /// Reads the next line into `self.buf` (without its newline).
    fn next(&mut self) -> io::Result<Next> {
        self.buf.clear();
        let start = self.offset;
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(Next::End);
        }
        self.line += 1;
        self.offset = start + n as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            Ok(Next::Line)
        } else if n > MAX_LINE_BYTES {
            Ok(Next::TooLong)
        } else {
            // read_until stops short of a newline only at the end of the file.
            self.offset = start;
            Ok(Next::Torn)
        }
    }
}

/// Chain state while scanning.
struct Chain {
    /// The seq the next entry must carry.
    expected: u64,
    head: Digest,
    head_line: u64,
    /// The head before the last entry was accepted, to spot an accepted intruder.
    prior_head: Digest,
    checkpoints: u64,
    signed_entries: u64,
}

fn scan(
    path: &Path,
    keys: Option<&KeyRing>,
    anchors: &BTreeMap<u64, Vec<Checkpoint>>,
) -> Result<Report, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut lines = Lines {
        reader: BufReader::with_capacity(1 << 16, file),
        buf: Vec::with_capacity(1024),
        line: 0,
        offset: 0,
    };
    let mut c = Chain {
        expected: 1,
        head: Digest::GENESIS,
        head_line: 0,
        prior_head: Digest::GENESIS,
        checkpoints: 0,
        signed_entries: 0,
    };
    let tampered = |f| Err(VerifyError::Tampered(f));
    let mut torn_tail = None;
    loop {
        match lines.next().map_err(io_err)? {
            Next::End => break,
            Next::Torn => {
                torn_tail = Some(TornTail {
                    line: lines.line,
                    offset: lines.offset,
                    len: lines.buf.len() as u64,
                });
                break;
            }
            Next::TooLong => {
                return tampered(Finding::Malformed {
                    line: lines.line,
                    reason: format!("longer than {MAX_LINE_BYTES} bytes"),
                })
            }
            Next::Line => {}
        }
        let line = lines.line;
        let record = match parse_record(&lines.buf) {
            Ok(r) => r,
            Err(reason) => return tampered(Finding::Malformed { line, reason }),
        };
        match record {
            Record::Entry { seq, prev } => {
                if seq == c.expected && prev == c.head {
                    c.prior_head = c.head;
                    c.head = Digest::of_line(&lines.buf);
                    c.head_line = line;
                    c.expected += 1;
                    let kept = anchors.get(&seq).map_or(&[][..], Vec::as_slice);
                    if kept
                        .iter()
                        .any(|a| Digest::from_b64(&a.head) != Some(c.head))
                    {
                        return tampered(Finding::Edited { seq, line });
                    }
                    continue;
                }
                let here = Digest::of_line(&lines.buf);
                let ahead = look_ahead(&mut lines).map_err(io_err)?;
                return tampered(diagnose(&c, line, seq, prev, here, &ahead));
            }
            Record::Checkpoint { cp, raw, sig } => {
                if let Some(keys) = keys {
                    let problem = match keys.find(&cp.kid) {
                        None => Some(SignatureProblem::UnknownKey),
                        Some(k) if !verify_checkpoint(k, raw.get().as_bytes(), sig) => {
                            Some(SignatureProblem::BadSignature)
                        }
                        Some(_) => None,
                    };
                    if let Some(p) = problem {
                        return tampered(signature_finding(p, &cp, line));
                    }
                }
                if cp.seq != c.checkpoints + 1 {
                    return tampered(Finding::CheckpointOutOfSequence {
                        checkpoint: cp.seq,
                        expected: c.checkpoints + 1,
                        line,
                    });
                }
                let entries = c.expected - 1;
                if cp.count != entries {
                    return tampered(Finding::CheckpointMismatch {
                        checkpoint: cp.seq,
                        line,
                        count: cp.count,
                        entries,
                    });
                }
                if Digest::from_b64(&cp.head) != Some(c.head) {
                    // The signature makes the checkpoint authoritative: the entry changed.
                    return tampered(Finding::Edited {
                        seq: cp.count,
                        line: c.head_line,
                    });
                }
                c.checkpoints += 1;
                c.signed_entries = cp.count;
            }
        }
    }
    let present = c.expected - 1;
    if let Some((&covered, a)) = anchors.range(present + 1..).next_back() {
        return tampered(Finding::Truncated {
            present,
            covered,
            checkpoint: a.iter().map(|a| a.seq).max().unwrap_or(0),
        });
    }
    Ok(Report {
        entries: present,
        head: c.head,
        checkpoints: c.checkpoints,
        signed_entries: c.signed_entries,
        anchors: anchors.values().map(|v| v.len() as u64).sum(),
        anchored_entries: anchors.keys().next_back().copied().unwrap_or(0),
        torn_tail,
        valid_len: lines.offset,
    })
}

/// An entry line past a break, reduced to what classification needs.
struct Ahead {
    seq: u64,
    prev: Digest,
    hash: Digest,
}

fn look_ahead(lines: &mut Lines) -> io::Result<Vec<Ahead>> {
    let mut out = Vec::new();
    while out.len() < DIAGNOSIS_WINDOW {
        match lines.next()? {
            Next::Line => {}
            Next::TooLong => continue,
            Next::Torn | Next::End => break,
        }
        if let Ok(Record::Entry { seq, prev }) = parse_record(&lines.buf) {
            out.push(Ahead {
                seq,
                prev,
                hash: Digest::of_line(&lines.buf),
            });
        }
    }
    Ok(out)
}

/// Names the break at `line` (carrying `seq` and `prev`, hashing to `here`), given the
/// entry lines that follow it.
fn diagnose(
    c: &Chain,
    line: u64,
    seq: u64,
    prev: Digest,
    here: Digest,
    ahead: &[Ahead],
) -> Finding {
    let e = c.expected;
    let next = ahead.first();
    // The chain resumes right after this line as if it were not there.
    let resumes_around = next.is_some_and(|n| n.seq == e && n.prev == c.head);
    if seq == e {
        // Right number, wrong link.
        if resumes_around {
            return Finding::Inserted { seq, line };
        }
        if e == 1 || next.is_some_and(|n| n.prev != here) {
            // Its successor does not link to it either: this line's own bytes changed.
            return Finding::Edited { seq, line };
        }
        return Finding::Edited {
            seq: e - 1,
            line: c.head_line,
        };
    }
    if seq < e {
        // A number already used. If this line links where the last accepted one did and
        // its successor links to this one, the accepted line was the intruder.
        if seq + 1 == e && prev == c.prior_head && next.is_some_and(|n| n.prev == here) {
            return Finding::Inserted {
                seq,
                line: c.head_line,
            };
        }
        return Finding::Inserted { seq, line };
    }
    // seq > e: entries e..seq are missing here.
    if ahead.iter().any(|a| a.hash == prev) {
        // It links to a line further on: it was moved ahead of it.
        return Finding::Reordered {
            seq,
            expected: e,
            line,
        };
    }
    if next.is_some_and(|n| n.seq == e + 1 && n.prev != here) && !ahead.iter().any(|a| a.seq == e) {
        // Followed by e + 1, which does not link to it: entry e with its number rewritten.
        return Finding::Edited { seq: e, line };
    }
    if resumes_around || ahead.iter().any(|a| a.seq == seq) {
        return Finding::Inserted { seq, line };
    }
    if ahead.iter().any(|a| a.seq >= e && a.seq < seq) {
        return Finding::Reordered {
            seq,
            expected: e,
            line,
        };
    }
    Finding::Deleted {
        first: e,
        last: seq - 1,
        line,
    }
}
