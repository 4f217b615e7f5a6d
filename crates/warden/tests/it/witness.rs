//! The audit log against a root attacker, over the real binary: every clean stop of
//! `warden serve` leaves a final checkpoint over every entry, handed to the witnesses the
//! operator named; a log that was cut, emptied, or rewritten and re-signed with the host's
//! own key passes `warden audit verify` alone, and is caught with `--witness` (a file, and a
//! URL served by a small HTTP server here); a standalone gateway keeps its decisions in a
//! log of its own that verifies after a stop.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_audit::{CheckpointSigner as _, Digest, LatestCheckpoint, SignedCheckpoint, Witness};

use super::{json_of, serve, wait_started, warden, Server, BIN};

const MASTER: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// A witness server: keeps the latest checkpoint POSTed to `/checkpoint` and answers GET
/// with it, as a gateway's ops port will.
struct UrlWitness {
    url: String,
    kept: Arc<LatestCheckpoint>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn url_witness() -> UrlWitness {
    use axum::routing::post;
    let kept = Arc::new(LatestCheckpoint::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/checkpoint", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let k = Arc::clone(&kept);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let put = Arc::clone(&k);
            let app = axum::Router::new().route(
                "/checkpoint",
                post(move |body: String| async move {
                    match SignedCheckpoint::parse(&body) {
                        Ok(cp) if put.witness(&cp).is_ok() => axum::http::StatusCode::NO_CONTENT,
                        _ => axum::http::StatusCode::BAD_REQUEST,
                    }
                })
                .get(move || async move {
                    match k.latest() {
                        Some(line) => (axum::http::StatusCode::OK, line),
                        None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    UrlWitness {
        url,
        kept,
        _stop: stop,
    }
}

/// `warden serve` on `data` with the master key fixed (the attacker reads the audit key
/// with it), handing checkpoints to `file` and `url`.
fn start_witnessed(data: &Path, file: &Path, url: Option<&str>) -> Server {
    let _ = std::fs::remove_file(data.join("server.json"));
    let mut cmd = serve(data, Some(MASTER));
    cmd.arg("--audit-witness-file").arg(file);
    if let Some(url) = url {
        cmd.args(["--audit-witness-url", url]);
    }
    let server = Server {
        child: cmd.stderr(Stdio::null()).spawn().unwrap(),
    };
    wait_started(data);
    server
}

fn verify(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["audit", "verify", "--json"])
        .args(args)
        .output()
        .unwrap()
}

fn checkpoints_in(text: &str) -> Vec<SignedCheckpoint> {
    text.lines()
        .filter(|l| l.starts_with(r#"{"checkpoint""#))
        .map(|l| SignedCheckpoint::parse(l).unwrap())
        .collect()
}

#[test]
fn every_clean_stop_signs_every_entry_and_hands_it_to_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let witness_dir = tempfile::tempdir().unwrap();
    let witness = witness_dir.path().join("witness.jsonl");
    let log = data.join("audit").join("audit.jsonl");
    const STOPS: usize = 8;
    for round in 0..STOPS {
        let server = start_witnessed(&data, &witness, None);
        for t in 0..3 {
            json_of(&warden(
                &data,
                &["tenant", "create", &format!("t{round}-{t}"), "--json"],
            ));
        }
        let status = server.stop();
        assert!(status.success(), "round {round}: {status}");

        let text = std::fs::read_to_string(&log).unwrap();
        let entries = text.lines().filter(|l| l.starts_with(r#"{"seq""#)).count() as u64;
        let last = text.lines().last().unwrap();
        let cp = SignedCheckpoint::parse(last)
            .unwrap_or_else(|e| panic!("round {round}: the log ends in {last:?}: {e}"));
        assert_eq!(cp.checkpoint.count, entries, "round {round}");
        let verified = json_of(&warden(&data, &["audit", "verify", "--json"]));
        assert_eq!(verified["status"], "ok", "round {round}: {verified}");
        assert_eq!(verified["unsigned_entries"], 0, "round {round}: {verified}");
        assert_eq!(verified["entries"], entries, "round {round}: {verified}");
        let witnessed = checkpoints_in(&std::fs::read_to_string(&witness).unwrap());
        assert_eq!(
            witnessed.last().map(|c| c.checkpoint.count),
            Some(entries),
            "round {round}: the witness has the final checkpoint"
        );
    }
}

/// The log an attacker writes with the host's key: `entries` (entry JSON bodies) chained
/// from genesis, one checkpoint over them all, and the sidecar to match.
fn forge(audit: &Path, key: &warden_core::SigningKey, entries: &[String]) {
    let mut log = String::new();
    let mut head = Digest::GENESIS;
    for (i, e) in entries.iter().enumerate() {
        let line = format!(
            r#"{{"seq":{},"prev":"{}","entry":{e}}}"#,
            i + 1,
            head.to_b64()
        );
        head = Digest::of_line(line.as_bytes());
        log.push_str(&line);
        log.push('\n');
    }
    let mut sidecar = String::new();
    if !entries.is_empty() {
        let cp = warden_audit::record::Checkpoint {
            seq: 1,
            count: entries.len() as u64,
            head: head.to_b64(),
            time: 1_900_000_000_000,
            kid: key.kid(),
        };
        let line = String::from_utf8(cp.signed_line(key)).unwrap() + "\n";
        log.push_str(&line);
        sidecar.push_str(&line);
    }
    std::fs::write(audit.join("audit.jsonl"), log).unwrap();
    std::fs::write(audit.join("checkpoints.jsonl"), sidecar).unwrap();
}

fn entry_bodies(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(r#"{"seq""#))
        // The entry's exact bytes: `{"seq":N,"prev":"…","entry":BODY}`.
        .map(|l| {
            let at = l.find(r#","entry":"#).unwrap() + r#","entry":"#.len();
            l[at..l.len() - 1].to_owned()
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["audit.jsonl", "checkpoints.jsonl"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn a_cut_emptied_or_re_signed_log_passes_alone_and_is_caught_by_each_witness() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let witness_dir = tempfile::tempdir().unwrap();
    let file = witness_dir.path().join("witness.jsonl");
    let url = url_witness();
    // Two runs, so that the log holds two checkpoints (one per clean stop).
    for run in 0..2 {
        let server = start_witnessed(&data, &file, Some(&url.url));
        for t in 0..4 {
            json_of(&warden(
                &data,
                &["tenant", "create", &format!("r{run}-{t}"), "--json"],
            ));
        }
        assert!(server.stop().success());
    }
    let audit = data.join("audit");
    let entries = entry_bodies(&audit.join("audit.jsonl"));
    assert!(entries.len() >= 8, "{entries:?}");
    // The URL witness took the final checkpoint before the server exited.
    let served = url
        .kept
        .latest()
        .expect("the URL witness holds a checkpoint");
    let served = SignedCheckpoint::parse(std::str::from_utf8(&served).unwrap()).unwrap();
    assert_eq!(served.checkpoint.count, entries.len() as u64);

    let key_file = data.join("audit.pub.jwk");
    let key_arg = key_file.to_str().unwrap();
    let file_arg = file.to_str().unwrap();
    // The host's own audit key, as root reads it.
    let host = warden_authority::data_dir::DataDir::existing(&data);
    let signing = host
        .audit_key(&host.master_key(Some(MASTER)).unwrap())
        .unwrap();

    let untouched = verify(&["--data-dir", data.to_str().unwrap(), "--witness", file_arg]);
    let report = json_of(&untouched);
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["unsigned_entries"], 0, "{report}");
    let report = json_of(&verify(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--witness",
        &url.url,
    ]));
    assert_eq!(report["status"], "ok", "{report}");

    let third = entries.len() / 3;
    let mut rewritten = entries.clone();
    let victim = entries
        .iter()
        .position(|e| e.contains("/admin/v1/tenants"))
        .unwrap();
    rewritten[victim] = rewritten[victim].replacen("/admin/v1/tenants", "/admin/v1/tenantz", 1);
    let cut = entries.len() - third;
    let attacks: [(&str, Vec<String>, String); 3] = [
        (
            "cut by a third",
            entries[..cut].to_vec(),
            format!("log ends after entry {cut}"),
        ),
        ("emptied", Vec::new(), "log ends after entry 0".into()),
        ("rewritten and re-signed", rewritten, "was edited".into()),
    ];
    for (name, forged, finding) in attacks {
        let attacked = dir.path().join(name.replace(' ', "-"));
        copy_dir(&audit, &attacked);
        forge(&attacked, &signing, &forged);
        let log_dir = attacked.to_str().unwrap();
        // Alone, the forged log is whole: chained, signed, nothing after its checkpoint.
        let alone = verify(&["--log-dir", log_dir, "--key", key_arg]);
        assert_eq!(alone.status.code(), Some(0), "{name}: {alone:?}");
        for witness in [file_arg, url.url.as_str()] {
            let out = verify(&["--log-dir", log_dir, "--key", key_arg, "--witness", witness]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name} passed against witness {witness}: {out:?}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("does not verify") && err.contains(&finding),
                "{name}, {witness}: {err}"
            );
        }
    }
}

#[test]
fn a_log_with_entries_no_checkpoint_signs_is_not_ok() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        // Killed (SIGKILL): no final checkpoint.
        let _server = super::start(&data);
        json_of(&warden(&data, &["tenant", "create", "acme", "--json"]));
    }
    let out = warden(&data, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "unsigned", "{report}");
    assert!(
        report["unsigned_entries"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("after the last signed checkpoint"), "{err}");
    let out = warden(&data, &["audit", "verify", "--allow-unsigned"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // The next clean stop signs them, even one that comes the moment the server has
    // published its address, before it runs (held there on purpose): the stop signal is
    // listened for before the server starts.
    std::fs::remove_file(data.join("server.json")).unwrap();
    let child = serve(&data, None)
        .env("WARDEN_FAULT", "hold-after-publish:800")
        .spawn()
        .unwrap();
    wait_started(&data);
    let status = Server { child }.stop();
    assert!(
        status.success(),
        "a stop while starting ended it with {status}"
    );
    let report = json_of(&warden(&data, &["audit", "verify", "--json"]));
    assert_eq!(report["status"], "ok", "{report}");
}

#[test]
fn a_witness_file_inside_the_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = serve(&data, None)
        .arg("--audit-witness-file")
        .arg(data.join("witness.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("witness") && err.contains("inside"), "{err}");
}

/// A standalone `warden gateway` following `data`'s authority as break-glass, with `args`
/// besides: until `warden gateway on URL (ops: URL, …)` is printed; both URLs.
fn start_gateway(
    data: &Path,
    config: &Path,
    args: &[&std::ffi::OsStr],
) -> (Server, String, String) {
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("server.json")).unwrap()).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "gateway",
            "--authority",
            info["authority_url"].as_str().unwrap(),
        ])
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(data.join("admin.token"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the gateway did not start");
        if let Some(rest) = line.strip_prefix("warden gateway on ") {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            let ops = rest
                .split("(ops: ")
                .nth(1)
                .and_then(|r| r.split([',', ')']).next())
                .unwrap()
                .to_owned();
            return (server, url, ops);
        }
    }
}

#[test]
fn a_standalone_gateway_keeps_its_decisions_in_a_log_that_verifies_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let authority = super::start(&data);
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        "[gateway]\n[[gateway.route]]\nprefix = \"/crm/\"\nupstream = \"http://127.0.0.1:9\"\naudience = \"crm\"\n[gateway.route.scopes]\nGET = \"crm:contacts:read\"\n",
    )
    .unwrap();
    let audit_dir: PathBuf = dir.path().join("gateway-audit");
    let (gateway, url, ops) = start_gateway(
        &data,
        &config,
        &[
            "--audit-dir".as_ref(),
            audit_dir.as_os_str(),
            "--ops-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ],
    );
    for i in 0..3 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{url}/crm/contacts/{i}"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    }
    // Its own log's state is on its /metrics: the three decisions durable, writable.
    let (_, text) = until(&format!("{ops}/metrics"), |_, text| {
        metric(text, "warden_gateway_audit_log_durable_entries") >= Some(3)
    });
    assert!(
        metric(&text, "warden_gateway_audit_log_durable_entries") >= Some(3),
        "{text}"
    );
    assert_eq!(metric(&text, "warden_gateway_audit_log_writable"), Some(1));
    assert_eq!(
        metric(&text, "warden_gateway_audit_witness_failures_total"),
        Some(0)
    );
    assert!(gateway.stop().success());
    drop(authority);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(audit_dir.join("audit.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let report = json_of(&verify(&["--log-dir", audit_dir.to_str().unwrap()]));
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["unsigned_entries"], 0, "{report}");
    let text = std::fs::read_to_string(audit_dir.join("audit.jsonl")).unwrap();
    for i in 0..3 {
        let path = format!("/crm/contacts/{i}");
        assert!(
            text.lines()
                .any(|l| l.contains(r#""kind":"decision""#) && l.contains(&path)),
            "no decision for {path} in {text}"
        );
    }
    // `audit export --log-dir` reads the same log: its three decisions, nothing of the
    // authority's.
    let out = Command::new(BIN)
        .args(["audit", "export", "--log-dir", audit_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let exported = String::from_utf8(out.stdout).unwrap();
    let decisions: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["entry"]["kind"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 3, "{exported}");
    assert!(!exported.contains("/admin/v1/"), "{exported}");
    // The gateway's log is signed by its own key, not the authority's.
    let authority_key = data.join("audit.pub.jwk");
    let out = verify(&[
        "--log-dir",
        audit_dir.to_str().unwrap(),
        "--key",
        authority_key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// GET `url` with curl: the status and the body.
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.parse().unwrap_or(0), body.to_owned())
}

/// Polls `url` until `done` holds of its answer, at most 20 s; the last answer.
fn until(url: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(url);
        if done(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn a_gateway_on_the_stream_witnesses_the_log_and_sounds_the_alarm_when_it_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The same address across the restart below, so the gateway finds the authority again.
    let [port] = super::free_ports::<1>();
    let start = |data: &Path| {
        let _ = std::fs::remove_file(data.join("server.json"));
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--ops-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("WARDEN_MASTER_KEY", MASTER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_started(data);
        Server { child }
    };
    let authority = start(&data);
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        "[gateway]\n[[gateway.route]]\nprefix = \"/crm/\"\nupstream = \"http://127.0.0.1:9\"\naudience = \"crm\"\n[gateway.route.scopes]\nGET = \"crm:contacts:read\"\n",
    )
    .unwrap();
    let [ops_port] = super::free_ports::<1>();
    let ops_addr = format!("127.0.0.1:{ops_port}");
    let (gateway, _, _) = start_gateway(
        &data,
        &config,
        &["--ops-listen".as_ref(), ops_addr.as_ref()],
    );
    let witness = format!("http://{ops_addr}/audit/checkpoint");
    let metrics = format!("http://{ops_addr}/metrics");
    // Before the authority signs anything, the gateway says it holds nothing.
    let (status, body) = get(&witness);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no audit checkpoint"), "{body}");
    for t in 0..10 {
        json_of(&warden(
            &data,
            &["tenant", "create", &format!("t{t}"), "--json"],
        ));
    }
    assert!(authority.stop().success());

    // The stop sent its checkpoint to the gateway before it closed the stream.
    let entries = entry_bodies(&data.join("audit").join("audit.jsonl"));
    let (status, body) = get(&witness);
    assert_eq!(status, 200, "{body}");
    let kept = warden_audit::parse_witness(&body).unwrap();
    assert_eq!(kept.len(), 1, "{body}");
    let count = kept[0].checkpoint.count;
    assert!(
        count >= 10 && count <= entries.len() as u64,
        "{count} of {}: {body}\n{}",
        entries.len(),
        std::fs::read_to_string(data.join("audit").join("audit.jsonl")).unwrap()
    );

    let data_arg = data.to_str().unwrap();
    let untouched = json_of(&verify(&["--data-dir", data_arg, "--witness", &witness]));
    assert_eq!(untouched["status"], "ok", "{untouched}");

    // Cut back to half of what the gateway saw, and re-signed with the host's own key: far
    // enough that the restart below does not write the log past it again (a log that grows
    // back past a witnessed count is caught by `verify --witness`, not by the gateway).
    let host = warden_authority::data_dir::DataDir::existing(&data);
    let signing = host
        .audit_key(&host.master_key(Some(MASTER)).unwrap())
        .unwrap();
    let cut = usize::try_from(count).unwrap() / 2;
    forge(&data.join("audit"), &signing, &entries[..cut]);
    let alone = verify(&["--data-dir", data_arg]);
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    let caught = verify(&["--data-dir", data_arg, "--witness", &witness]);
    assert_eq!(caught.status.code(), Some(1), "{caught:?}");
    let err = String::from_utf8_lossy(&caught.stderr);
    assert!(
        err.contains("does not verify") && err.contains(&format!("log ends after entry {cut}")),
        "{err}"
    );

    // The authority restarted on the cut log: its next checkpoint covers fewer entries than
    // the gateway saw, so the gateway refuses it, keeps what it had and counts the alarm.
    let authority = start(&data);
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("server.json")).unwrap()).unwrap();
    let ops = format!("{}/metrics", info["ops_url"].as_str().unwrap());
    let (_, text) = until(&ops, |_, text| {
        metric(text, "warden_authority_revocation_subscribers") == Some(1)
    });
    assert_eq!(
        metric(&text, "warden_authority_revocation_subscribers"),
        Some(1),
        "the gateway did not come back to the stream"
    );
    json_of(&warden(&data, &["tenant", "create", "after", "--json"]));
    assert!(authority.stop().success());
    let (_, text) = until(&metrics, |_, text| {
        metric(text, "warden_gateway_audit_checkpoint_regressions_total") == Some(1)
    });
    assert_eq!(
        metric(&text, "warden_gateway_audit_checkpoint_regressions_total"),
        Some(1),
        "{text}"
    );
    let (_, body) = get(&witness);
    let still = warden_audit::parse_witness(&body).unwrap();
    assert_eq!(
        still[0].checkpoint.count, count,
        "the older checkpoint was not kept"
    );
    assert!(gateway.stop().success());
}
