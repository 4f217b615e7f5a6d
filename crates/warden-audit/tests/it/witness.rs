//! Witnesses fed by the real writer: every checkpoint reaches a file witness and a URL
//! witness (a small HTTP server here), the final one before `close` resolves, and a log cut
//! after the fact is caught against what they kept, even with the sidecar cut to match.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use warden_audit::witness::Retry;
use warden_audit::{
    parse_witness, verify_dir, verify_dir_with, AuditLog, FileWitness, Finding, UrlWitness,
    VerifyError, Witness,
};

use crate::{entry, key, opts, ring};

/// An HTTP server that keeps every body POSTed to it; the first `refuse` POSTs get a 503.
async fn receiver(refuse: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let k = Arc::clone(&kept);
    let app = axum::Router::new().route(
        "/cp",
        axum::routing::post(move |body: String| async move {
            let mut r = refused.lock().unwrap();
            if *r < refuse {
                *r += 1;
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            k.lock().unwrap().push(body);
            StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checkpoint_reaches_the_witnesses_and_a_cut_log_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let file = outside.path().join("witness.jsonl");
    // The URL witness fails twice first: the bounded retry gets it through.
    let (url, posted) = receiver(2).await;
    let retry = Retry {
        attempts: 4,
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(2),
    };
    let url_witness = Arc::new(UrlWitness::spawn(&url, retry).unwrap());
    let mut o = opts(5);
    o.witnesses = vec![
        Arc::new(FileWitness::open(&file).unwrap()) as Arc<dyn Witness>,
        Arc::clone(&url_witness) as Arc<dyn Witness>,
    ];
    let (log, _) = AuditLog::open(dir.path(), Arc::new(key()), o).unwrap();
    for i in 1..=12 {
        log.append(&entry(i)).await.unwrap();
    }
    assert_eq!(log.close().await.unwrap(), 12);
    assert_eq!(log.witness_failures(), 0);

    let in_file = parse_witness(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let counts: Vec<u64> = in_file.iter().map(|c| c.checkpoint.count).collect();
    assert_eq!(
        counts,
        [5, 10, 12],
        "every checkpoint, the final one included"
    );
    let last_posted = posted.lock().unwrap().last().cloned().unwrap();
    let from_url = parse_witness(&last_posted).unwrap();
    assert_eq!(
        from_url[0].checkpoint.count, 12,
        "delivered before close resolved"
    );

    let report = verify_dir_with(dir.path(), &ring(), &in_file).unwrap();
    assert_eq!((report.entries, report.unsigned_entries()), (12, 0));
    assert_eq!(report.anchored_entries, 12);

    // Root cuts the last third and the sidecar's last checkpoint: alone, the log verifies.
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().take(12).collect(); // 10 entries, 2 checkpoints
    std::fs::write(dir.path().join("audit.jsonl"), kept.join("\n") + "\n").unwrap();
    let side = std::fs::read_to_string(dir.path().join("checkpoints.jsonl")).unwrap();
    let side: Vec<&str> = side.lines().take(2).collect();
    std::fs::write(dir.path().join("checkpoints.jsonl"), side.join("\n") + "\n").unwrap();
    let alone = verify_dir(dir.path(), &ring()).unwrap();
    assert_eq!((alone.entries, alone.unsigned_entries()), (10, 0));
    for witnessed in [&in_file, &from_url] {
        match verify_dir_with(dir.path(), &ring(), witnessed) {
            Err(VerifyError::Tampered(Finding::Truncated {
                present, covered, ..
            })) => assert_eq!((present, covered), (10, 12)),
            other => panic!("a cut log passed its witness: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_rewritten_sidecar_cannot_stand_in_for_a_witness_at_the_same_count() {
    let dir = tempfile::tempdir().unwrap();
    crate::write_ordered(dir.path(), 4, 100).await;
    let honest =
        parse_witness(&std::fs::read_to_string(dir.path().join("checkpoints.jsonl")).unwrap())
            .unwrap();
    // The attacker rewrites entry 2, re-chains, and re-signs both files with the host's key.
    let mut lines = crate::log_lines(dir.path());
    lines.truncate(4);
    lines[1] = lines[1].replace("/orders/2", "/orders/9");
    let mut head = warden_audit::Digest::GENESIS;
    for (i, l) in lines.iter_mut().enumerate() {
        let at = l.find(r#","entry":"#).unwrap();
        *l = format!(
            r#"{{"seq":{},"prev":"{}"{}"#,
            i + 1,
            head.to_b64(),
            &l[at..]
        );
        head = warden_audit::Digest::of_line(l.as_bytes());
    }
    let cp = warden_audit::record::Checkpoint {
        seq: 1,
        count: 4,
        head: head.to_b64(),
        time: 0,
        kid: warden_audit::CheckpointSigner::kid(&key()),
    };
    let cp_line = String::from_utf8(cp.signed_line(&key())).unwrap();
    lines.push(cp_line.clone());
    crate::write_lines(dir.path(), &lines);
    std::fs::write(dir.path().join("checkpoints.jsonl"), cp_line + "\n").unwrap();
    assert_eq!(verify_dir(dir.path(), &ring()).unwrap().entries, 4);
    assert!(matches!(
        verify_dir_with(dir.path(), &ring(), &honest),
        Err(VerifyError::Tampered(Finding::Edited { seq: 4, .. }))
    ));
}
