//! Each tampering done for real to a log file, with the exact finding expected.

use tempfile::TempDir;
use warden_audit::record::Checkpoint;
use warden_audit::{verify_dir, verify_file, Digest, Finding, KeyRing, VerifyError};

use crate::{key, log_lines, other_key, ring, write_lines, write_ordered};

/// 10 entries (lines 1–10) and the closing checkpoint (line 11).
async fn ten() -> (TempDir, Vec<String>) {
    let dir = TempDir::new().unwrap();
    write_ordered(dir.path(), 10, 1_000).await;
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 11);
    (dir, lines)
}

fn finding(dir: &TempDir) -> Finding {
    match verify_dir(dir.path(), &ring()) {
        Err(VerifyError::Tampered(f)) => f,
        other => panic!("expected a finding, got {other:?}"),
    }
}

fn entry_line(seq: u64, prev: &str, body: &str) -> String {
    format!(r#"{{"seq":{seq},"prev":"{prev}","entry":{body}}}"#)
}

fn hash(line: &str) -> String {
    Digest::of_line(line.as_bytes()).to_b64()
}

#[tokio::test]
async fn untouched_log_verifies() {
    let (dir, _) = ten().await;
    let r = verify_dir(dir.path(), &ring()).unwrap();
    assert_eq!(
        (r.entries, r.checkpoints, r.signed_entries, r.anchors),
        (10, 1, 10, 1)
    );
    assert_eq!(r.torn_tail, None);
}

#[tokio::test]
async fn edited_entry_is_named() {
    let (dir, mut lines) = ten().await;
    lines[3] = lines[3].replace(r#""decision":"deny""#, r#""decision":"allow""#);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Edited { seq: 4, line: 4 });
}

#[tokio::test]
async fn edited_first_entry_is_named() {
    let (dir, mut lines) = ten().await;
    lines[0] = lines[0].replace("agent:a1", "agent:zz");
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Edited { seq: 1, line: 1 });
}

#[tokio::test]
async fn edited_last_entry_is_caught_by_the_checkpoint() {
    let (dir, mut lines) = ten().await;
    lines[9] = lines[9].replace("/orders/10", "/orders/11");
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Edited { seq: 10, line: 10 });
}

#[tokio::test]
async fn edited_prev_field_is_named() {
    let (dir, mut lines) = ten().await;
    let bogus = Digest::of_line(b"bogus").to_b64();
    let prev = lines[5].split('"').nth(5).unwrap().to_owned();
    lines[5] = lines[5].replace(&prev, &bogus);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Edited { seq: 6, line: 6 });
}

#[tokio::test]
async fn deleted_entry_is_named() {
    let (dir, mut lines) = ten().await;
    lines.remove(4);
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::Deleted {
            first: 5,
            last: 5,
            line: 5
        }
    );
}

#[tokio::test]
async fn deleted_range_is_named() {
    let (dir, mut lines) = ten().await;
    lines.drain(2..6);
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::Deleted {
            first: 3,
            last: 6,
            line: 3
        }
    );
}

#[tokio::test]
async fn inserted_forgery_with_a_valid_link_is_named() {
    let (dir, mut lines) = ten().await;
    // Claims seq 7 and links correctly to entry 6: only the real entry 7 gives it away.
    let forged = entry_line(
        7,
        &hash(&lines[5]),
        r#"{"time":1,"kind":"approval","action":"grant","decision":"allow"}"#,
    );
    lines.insert(6, forged);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Inserted { seq: 7, line: 7 });
}

#[tokio::test]
async fn inserted_forgery_with_a_bad_link_is_named() {
    let (dir, mut lines) = ten().await;
    let forged = entry_line(
        7,
        &Digest::GENESIS.to_b64(),
        r#"{"time":1,"kind":"approval","action":"grant"}"#,
    );
    lines.insert(6, forged);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Inserted { seq: 7, line: 7 });
}

#[tokio::test]
async fn replayed_entry_is_an_insertion() {
    let (dir, mut lines) = ten().await;
    let copy = lines[2].clone();
    lines.insert(6, copy);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Inserted { seq: 3, line: 7 });
}

#[tokio::test]
async fn inserted_line_with_a_far_seq_is_named() {
    let (dir, mut lines) = ten().await;
    let forged = entry_line(
        500,
        &hash(&lines[5]),
        r#"{"time":1,"kind":"alert","action":"x"}"#,
    );
    lines.insert(6, forged);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Inserted { seq: 500, line: 7 });
}

#[tokio::test]
async fn swapped_entries_are_reordered() {
    let (dir, mut lines) = ten().await;
    lines.swap(3, 4);
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::Reordered {
            seq: 5,
            expected: 4,
            line: 4
        }
    );
}

#[tokio::test]
async fn moved_entry_is_reordered() {
    let (dir, mut lines) = ten().await;
    let moved = lines.remove(2);
    lines.insert(7, moved);
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::Reordered {
            seq: 4,
            expected: 3,
            line: 3
        }
    );
}

#[tokio::test]
async fn rewritten_seq_is_an_edit() {
    let (dir, mut lines) = ten().await;
    lines[4] = lines[4].replacen(r#"{"seq":5,"#, r#"{"seq":9,"#, 1);
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Edited { seq: 5, line: 5 });
}

/// 30 entries, checkpoints after 10, 20 and 30: entries 1–10 are lines 1–10, checkpoint 1
/// is line 11, entries 11–20 lines 12–21, checkpoint 2 line 22, 21–30 lines 23–32,
/// checkpoint 3 line 33.
async fn thirty() -> (TempDir, Vec<String>) {
    let dir = TempDir::new().unwrap();
    write_ordered(dir.path(), 30, 10).await;
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 33);
    assert!(lines[10].starts_with(r#"{"checkpoint""#));
    (dir, lines)
}

#[tokio::test]
async fn truncation_after_a_checkpoint_is_caught_by_the_sidecar() {
    let (dir, lines) = thirty().await;
    assert_eq!(
        verify_dir(dir.path(), &ring()).unwrap().anchors,
        3,
        "every checkpoint is also in checkpoints.jsonl"
    );
    // Cut after entry 25 (line 27).
    write_lines(dir.path(), &lines[..27]);
    assert_eq!(
        finding(&dir),
        Finding::Truncated {
            present: 25,
            covered: 30,
            checkpoint: 3
        }
    );
    // Cutting mid-line too: the torn part does not hide the truncation.
    let mut text = lines[..27].join("\n");
    text.push('\n');
    text.push_str(&lines[27][..20]);
    std::fs::write(dir.path().join("audit.jsonl"), text).unwrap();
    assert_eq!(
        finding(&dir),
        Finding::Truncated {
            present: 25,
            covered: 30,
            checkpoint: 3
        }
    );
    // Without the sidecar, the cut log is a valid shorter log: why anchors matter.
    let r = verify_file(&dir.path().join("audit.jsonl"), &ring(), &[]).unwrap();
    assert_eq!((r.entries, r.signed_entries), (25, 20));
}

#[tokio::test]
async fn an_anchor_names_an_edit_under_it() {
    let (dir, mut lines) = thirty().await;
    // Edit entry 20 and delete the in-log checkpoint 2 and 3 after it: the sidecar's
    // checkpoint 2 still names entry 20's head.
    lines[20] = lines[20].replace("/orders/20", "/orders/99");
    write_lines(dir.path(), &lines[..21]);
    assert_eq!(finding(&dir), Finding::Edited { seq: 20, line: 21 });
}

#[tokio::test]
async fn torn_tail_is_not_tampering() {
    let (dir, lines) = ten().await;
    let mut text = lines.join("\n");
    text.push('\n');
    let full = text.len() as u64;
    text.push_str(r#"{"seq":11,"prev":"abc"#);
    std::fs::write(dir.path().join("audit.jsonl"), &text).unwrap();
    let r = verify_dir(dir.path(), &ring()).unwrap();
    let torn = r.torn_tail.unwrap();
    assert_eq!((torn.line, torn.offset, torn.len), (12, full, 21));
    assert_eq!(r.entries, 10);
}

#[tokio::test]
async fn bad_checkpoint_signature_is_named() {
    let (dir, mut lines) = ten().await;
    let sig_at = lines[10].find(r#""sig":""#).unwrap() + 7;
    let mut bytes = lines[10].clone().into_bytes();
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    lines[10] = String::from_utf8(bytes).unwrap();
    write_lines(dir.path(), &lines);
    std::fs::remove_file(dir.path().join("checkpoints.jsonl")).unwrap();
    assert_eq!(
        finding(&dir),
        Finding::BadSignature {
            checkpoint: 1,
            line: 11
        }
    );
}

#[tokio::test]
async fn edited_checkpoint_count_breaks_its_signature() {
    let (dir, mut lines) = ten().await;
    lines[10] = lines[10].replace(r#""count":10"#, r#""count":9"#);
    write_lines(dir.path(), &lines);
    std::fs::remove_file(dir.path().join("checkpoints.jsonl")).unwrap();
    assert_eq!(
        finding(&dir),
        Finding::BadSignature {
            checkpoint: 1,
            line: 11
        }
    );
}

#[tokio::test]
async fn checkpoint_by_an_unknown_key_is_named() {
    let (dir, mut lines) = ten().await;
    let cp = Checkpoint {
        seq: 2,
        count: 10,
        head: hash(&lines[9]),
        time: 0,
        kid: other_key().public_key().thumbprint(),
    };
    lines.push(String::from_utf8(cp.signed_line(&other_key())).unwrap());
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::UnknownKey {
            checkpoint: 2,
            line: 12,
            kid: other_key().public_key().thumbprint()
        }
    );
    // Trusting both keys, the same log verifies (key rotation).
    let both = KeyRing::new()
        .with(key().public_key())
        .with(other_key().public_key());
    assert_eq!(verify_dir(dir.path(), &both).unwrap().checkpoints, 2);
}

#[tokio::test]
async fn checkpoint_with_a_wrong_count_is_named() {
    let (dir, mut lines) = ten().await;
    let cp = Checkpoint {
        seq: 2,
        count: 7,
        head: hash(&lines[9]),
        time: 0,
        kid: key().public_key().thumbprint(),
    };
    lines.push(String::from_utf8(cp.signed_line(&key())).unwrap());
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::CheckpointMismatch {
            checkpoint: 2,
            line: 12,
            count: 7,
            entries: 10
        }
    );
}

#[tokio::test]
async fn checkpoint_with_a_wrong_head_names_the_entry_it_covers() {
    // A validly signed head is authoritative: the entry it names is the one that changed.
    let (dir, mut lines) = ten().await;
    let cp = Checkpoint {
        seq: 2,
        count: 10,
        head: Digest::GENESIS.to_b64(),
        time: 0,
        kid: key().public_key().thumbprint(),
    };
    lines.push(String::from_utf8(cp.signed_line(&key())).unwrap());
    write_lines(dir.path(), &lines);
    assert_eq!(finding(&dir), Finding::Edited { seq: 10, line: 10 });
}

#[tokio::test]
async fn deleted_checkpoint_is_named() {
    let (dir, mut lines) = thirty().await;
    lines.remove(10);
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::CheckpointOutOfSequence {
            checkpoint: 2,
            expected: 1,
            line: 21
        }
    );
}

#[tokio::test]
async fn malformed_lines_are_named() {
    let (dir, mut lines) = ten().await;
    let original = lines[2].clone();
    lines[2] = "not json".into();
    write_lines(dir.path(), &lines);
    assert!(matches!(finding(&dir), Finding::Malformed { line: 3, .. }));
    // An entry field the format does not know is refused, not ignored.
    lines[2] = original.replace(r#""kind""#, r#""extra":1,"kind""#);
    write_lines(dir.path(), &lines);
    assert!(matches!(finding(&dir), Finding::Malformed { line: 3, .. }));
    // A signature that is not base64 is a bad signature.
    let mut l = ten().await;
    let s = l.1[10].find(r#""sig":""#).unwrap() + 7;
    l.1[10].replace_range(s..s + 1, "!");
    write_lines(l.0.path(), &l.1);
    std::fs::remove_file(l.0.path().join("checkpoints.jsonl")).unwrap();
    assert_eq!(
        finding(&l.0),
        Finding::BadSignature {
            checkpoint: 1,
            line: 11
        }
    );
}

#[tokio::test]
async fn swapped_last_entries_are_reordered() {
    let (dir, mut lines) = ten().await;
    lines.swap(8, 9);
    write_lines(dir.path(), &lines);
    assert_eq!(
        finding(&dir),
        Finding::Reordered {
            seq: 10,
            expected: 9,
            line: 9
        }
    );
}
