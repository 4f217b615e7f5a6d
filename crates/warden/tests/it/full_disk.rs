//! `warden serve` with its data directory on a small tmpfs that fills up while it works, then
//! frees up: every endpoint answers a clear, retryable 503 while the disk is full, nothing is
//! changed unrecorded, and the server recovers by itself, with the outage on record. Mounts a
//! tmpfs, so it needs root, as CI has.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use warden_test::tmpfs::Tmpfs;

use crate::{create_agent, json_of, serve, wait_started, warden, Server};

/// A plain HTTP/1.1 GET: status, headers (lowercased names) and body.
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The address `field` of `server.json` names: `authority_url` or `ops_url`.
fn server_addr(data: &Path, field: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("server.json")).unwrap()).unwrap();
    info[field]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned()
}

#[test]
fn a_full_disk_gets_retryable_answers_changes_nothing_unrecorded_and_recovers_by_itself() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    let work = tempfile::tempdir().unwrap();
    let log_path = work.path().join("serve.log");
    let mut cmd = serve(&data, None);
    cmd.stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let server = Server {
        child: cmd.spawn().unwrap(),
    };
    wait_started(&data);
    // Readiness and the figures are on the ops listener; the public port has neither.
    let addr = server_addr(&data, "ops_url");
    let public = server_addr(&data, "authority_url");
    assert_eq!(get(&public, "/readyz").0, 404);
    assert_eq!(get(&public, "/metrics").0, 404);
    assert_eq!(get(&public, "/healthz").0, 200);

    json_of(&warden(&data, &["tenant", "create", "acme", "--json"]));
    let (id, key) = create_agent(&data, work.path(), "acme", "mailer", "email:send");
    let token = |data: &Path| {
        warden(
            data,
            &["token", "--client-id", &id, "--key", key.to_str().unwrap()],
        )
    };
    assert!(token(&data).status.success());
    assert_eq!(get(&addr, "/readyz").0, 200);

    let filler = fs.fill();
    // Writes that fit in pages already allocated may still pass: ask until the disk says no.
    let mut refused = None;
    for _ in 0..200 {
        let out = token(&data);
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("token requests kept passing on a full disk");
    assert!(
        refused.contains("temporarily_unavailable"),
        "a full disk must be a retryable refusal, not a server error: {refused}\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    // Each refusal is audited too; the audit log's next write fails and takes it down.
    let mut ready = get(&addr, "/readyz");
    for _ in 0..200 {
        if ready.0 != 200 {
            break;
        }
        let _ = token(&data);
        ready = get(&addr, "/readyz");
    }
    let (status, head, body) = ready;
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(
        body.contains("No space left on device") || body.contains("disk is full"),
        "{body}"
    );
    assert!(!head.contains("500 internal"));

    // A change while full is refused, and not applied.
    let out = warden(&data, &["tenant", "create", "while-full", "--json"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("503"), "{said}");

    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(&addr, "/readyz").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the server did not recover by itself"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        token(&data).status.success(),
        "issuance resumes without a restart"
    );
    let tenants = json_of(&warden(&data, &["tenant", "list", "--json"]));
    let names: Vec<&str> = tenants
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["acme"], "the refused change was not applied");
    json_of(&warden(&data, &["tenant", "create", "after", "--json"]));

    let (status, _, metrics) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("warden_audit_writable 1"), "{metrics}");
    assert!(
        !metrics.contains("warden_audit_outages_total 0"),
        "{metrics}"
    );

    assert!(server.stop().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !log.contains("corrupt"),
        "a full disk is not corruption:\n{log}"
    );
    assert!(
        log.contains("No space left on device") || log.contains("disk is full"),
        "{log}"
    );

    let out = warden(&data, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let export = warden(&data, &["audit", "export"]);
    let lines = String::from_utf8_lossy(&export.stdout);
    let outages: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains(r#""action":"audit.outage""#))
        .collect();
    assert_eq!(
        outages.len(),
        1,
        "the outage is on record once: {outages:?}"
    );
    assert!(
        outages[0].contains("No space left on device"),
        "{}",
        outages[0]
    );
}
