//! The `warden` binary as a user runs it: a real `warden serve` process, admin commands
//! finding it through the data directory, and their failures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

#[cfg(unix)]
mod admins;
#[cfg(unix)]
mod crash;
#[cfg(unix)]
mod descriptors;
mod exit_codes;
#[cfg(target_os = "linux")]
mod full_disk;
#[cfg(unix)]
mod witness;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_warden");

struct Server {
    child: Child,
}

impl Server {
    /// Stops the server as an operator does, with SIGTERM, and waits for it to exit.
    fn stop(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Dropped, a server is killed (SIGKILL): what a crash leaves. [`Server::stop`] is a clean stop.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, master_key: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data)
    .env_remove("WARDEN_MASTER_KEY")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(k) = master_key {
        cmd.env("WARDEN_MASTER_KEY", k);
    }
    cmd
}

/// Starts `warden serve` and waits until it has published its address.
fn start(data: &Path) -> Server {
    let child = serve(data, None).spawn().unwrap();
    wait_started(data);
    Server { child }
}

fn warden(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until the server in `data` has published its address.
fn wait_started(data: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("server.json").exists() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Generates a key in `dir` and creates agent `name` of `tenant` with it; returns the
/// agent's id and the private key file.
fn create_agent(
    data: &Path,
    dir: &Path,
    tenant: &str,
    name: &str,
    scopes: &str,
) -> (String, std::path::PathBuf) {
    let key = dir.join(format!("{name}.jwk"));
    assert!(warden(data, &["keygen", "--out", key.to_str().unwrap()])
        .status
        .success());
    let public = dir.join(format!("{name}.jwk.pub"));
    let agent = json_of(&warden(
        data,
        &[
            "principal",
            "create",
            "--tenant",
            tenant,
            "--kind",
            "agent",
            "--name",
            name,
            "--scopes",
            scopes,
            "--public-key",
            public.to_str().unwrap(),
            "--json",
        ],
    ));
    (agent["id"].as_str().unwrap().to_owned(), key)
}

#[test]
fn admin_commands_drive_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _server = start(&data);

    let tenant = json_of(&warden(&data, &["tenant", "create", "acme", "--json"]));
    assert!(tenant["id"].as_str().unwrap().starts_with("tnt_"));

    let key = dir.path().join("agent.jwk");
    assert!(warden(&data, &["keygen", "--out", key.to_str().unwrap()])
        .status
        .success());
    let public = dir.path().join("agent.jwk.pub");
    let agent = json_of(&warden(
        &data,
        &[
            "principal",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "agent",
            "--name",
            "mailer",
            "--scopes",
            "crm:contacts:read email:send",
            "--public-key",
            public.to_str().unwrap(),
            "--json",
        ],
    ));
    let id = agent["id"].as_str().unwrap();
    assert!(id.starts_with("agt_"));

    // The private key file is refused where a public key is expected: it must never be sent.
    let out = warden(
        &data,
        &[
            "principal",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "agent",
            "--name",
            "leaky",
            "--public-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("private key"));

    let token = json_of(&warden(
        &data,
        &[
            "token",
            "--client-id",
            id,
            "--key",
            key.to_str().unwrap(),
            "--scope",
            "email:send",
            "--json",
        ],
    ));
    assert_eq!(token["scope"], "email:send");

    let out = warden(
        &data,
        &[
            "token",
            "--client-id",
            id,
            "--key",
            key.to_str().unwrap(),
            "--scope",
            "crm:contacts:delete",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid_scope"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");

    let before = json_of(&warden(&data, &["keys", "list", "--json"]));
    let after = json_of(&warden(&data, &["keys", "rotate", "--json"]));
    let states = |v: &Value| {
        let mut s: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["state"].as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s
    };
    assert_eq!(states(&before), ["active", "next"]);
    assert_eq!(states(&after), ["active", "next", "retired"]);

    let out = warden(&data, &["tenant", "create", "acme"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));

    // Delegation and revocation.
    let user = json_of(&warden(
        &data,
        &[
            "principal",
            "create",
            "--tenant",
            "acme",
            "--kind",
            "user",
            "--name",
            "ann",
            "--scopes",
            "email:send",
            "--json",
        ],
    ));
    let user = user["id"].as_str().unwrap();
    let grant = json_of(&warden(
        &data,
        &[
            "delegation",
            "grant",
            "--user",
            user,
            "--agent",
            id,
            "--scopes",
            "email:send",
            "--json",
        ],
    ));
    let grant_id = grant["id"].as_str().unwrap();
    assert!(grant_id.starts_with("dlg_"), "{grant}");
    let listed = json_of(&warden(
        &data,
        &["delegation", "list", "--tenant", "acme", "--json"],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let revoked = json_of(&warden(
        &data,
        &[
            "delegation",
            "revoke",
            grant_id,
            "--reason",
            "done",
            "--json",
        ],
    ));
    assert_eq!(revoked["kind"], "grant", "{revoked}");
    let out = warden(&data, &["delegation", "revoke", grant_id]);
    assert!(!out.status.success(), "a grant is revoked once");

    let revoked = json_of(&warden(
        &data,
        &[
            "revoke",
            "--principal",
            id,
            "--reason",
            "laptop stolen",
            "--json",
        ],
    ));
    assert_eq!(revoked["kind"], "principal");
    assert_eq!(revoked["reason"], "laptop stolen");
    assert!(revoked["seq"].as_i64().unwrap() > 0);

    // A revoked agent gets no new token, with its key or any other, until it is reinstated;
    // reinstated with a new key, the old one stays refused.
    let token_with = |key: &Path| {
        warden(
            &data,
            &["token", "--client-id", id, "--key", key.to_str().unwrap()],
        )
    };
    let out = token_with(&key);
    assert!(!out.status.success(), "a revoked agent was issued a token");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid_client") && err.contains("revoked"),
        "{err}"
    );
    let shown = json_of(&warden(&data, &["principal", "show", id, "--json"]));
    assert_eq!(shown["revoked"]["reason"], "laptop stolen", "{shown}");
    let new_key = dir.path().join("agent-2.jwk");
    assert!(
        warden(&data, &["keygen", "--out", new_key.to_str().unwrap()])
            .status
            .success()
    );
    let new_public = dir.path().join("agent-2.jwk.pub");
    let reinstated = json_of(&warden(
        &data,
        &[
            "principal",
            "reinstate",
            id,
            "--public-key",
            new_public.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(reinstated.get("revoked").is_none(), "{reinstated}");
    assert!(token_with(&new_key).status.success());
    assert!(
        !token_with(&key).status.success(),
        "the leaked key came back"
    );
    let out = warden(&data, &["principal", "reinstate", id]);
    assert!(!out.status.success(), "reinstating what is not revoked");
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));
    let revoked = json_of(&warden(&data, &["revoke", "--token", "some-jti", "--json"]));
    assert_eq!(revoked["kind"], "token");
    assert!(
        !warden(&data, &["revoke"]).status.success(),
        "a target is required"
    );
    assert!(!warden(&data, &["revoke", "--principal", "agt_nope"])
        .status
        .success());

    // Honeytokens and the access review.
    let bait = json_of(&warden(
        &data,
        &[
            "honeytoken",
            "create",
            "--tenant",
            "acme",
            "--name",
            "billing-export",
            "--json",
        ],
    ));
    assert!(bait["client_secret"].as_str().unwrap().starts_with("wsec_"));
    assert!(bait["access_token"].as_str().unwrap().starts_with("eyJ"));
    let report = json_of(&warden(&data, &["report", "access", "--tenant", "acme"]));
    let rows = report.as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["principal"] == id && r["scopes"] == "crm:contacts:read email:send"));
    let csv = warden(&data, &["report", "access", "--format", "csv"]);
    assert!(csv.status.success());
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(csv.starts_with("tenant,principal,kind,name,owner"), "{csv}");
    assert!(csv.contains(id), "{csv}");
    assert_eq!(csv.lines().count(), rows.len() + 1, "one row per principal");
}

#[test]
fn admin_commands_without_a_server_fail_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = warden(dir.path(), &["tenant", "create", "acme"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no server is an error, not a failed check"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warden serve"), "{err}");
}

#[test]
fn a_wrong_master_key_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_a = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let key_b = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA";
    // First start creates keys sealed under A.
    let mut first = serve(&data, Some(key_a)).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("server.json").exists() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The key file was not needed, so none was written.
    assert!(!data.join("master.key").exists());

    let out = serve(&data, Some(key_b)).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARDEN_MASTER_KEY"), "{err}");

    let out = serve(&data, Some("too-short")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("base64url"));
}

#[test]
fn invalid_gateway_config_is_refused_at_start_with_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        "[gateway]\n\n[[gateway.route]]\nprefix = \"/crm/\"\nupstream = \"http://127.0.0.1:9\"\naudience = \"crm\"\n[gateway.route.scopes]\nGET = \"crm::read\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--gateway-ops-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warden.toml:8:") && err.contains("crm::read"),
        "{err}"
    );
}

#[test]
fn serve_with_a_config_runs_the_gateway_in_front_of_an_upstream() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    // An upstream that reports each request it received.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let (seen_tx, seen) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for s in upstream.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = vec![0u8; 16 * 1024];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = seen_tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let gw_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\n[[gateway.route]]\nprefix = \"/crm/\"\nupstream = \"http://{upstream_addr}\"\naudience = \"crm\"\n[gateway.route.scopes]\nGET = \"crm:contacts:read\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "127.0.0.1:0",
            "--gateway-listen",
            &format!("127.0.0.1:{gw_port}"),
            "--gateway-ops-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child };
    wait_started(&data);
    json_of(&warden(&data, &["tenant", "create", "acme", "--json"]));
    let (id, key) = create_agent(&data, dir.path(), "acme", "a", "crm:contacts:read");
    let token = json_of(&warden(
        &data,
        &[
            "token",
            "--client-id",
            &id,
            "--key",
            key.to_str().unwrap(),
            "--json",
        ],
    ));
    let token = token["access_token"].as_str().unwrap();

    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
    write!(s, "GET /crm/contacts HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let upstream_saw = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(upstream_saw
        .to_ascii_lowercase()
        .contains("authorization: bearer "));
    assert!(
        !upstream_saw.contains(token),
        "the upstream saw the external token"
    );

    // A DPoP-bound token from the CLI, presented with a fresh proof from the CLI.
    let dpop_key = dir.path().join("dpop.jwk");
    assert!(
        warden(&data, &["keygen", "--out", dpop_key.to_str().unwrap()])
            .status
            .success()
    );
    let bound = json_of(&warden(
        &data,
        &[
            "token",
            "--client-id",
            &id,
            "--key",
            key.to_str().unwrap(),
            "--dpop-key",
            dpop_key.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(bound["token_type"], "DPoP", "{bound}");
    let bound = bound["access_token"].as_str().unwrap();
    let url = format!("http://127.0.0.1:{gw_port}/crm/contacts");
    let proof = Command::new(BIN)
        .args([
            "dpop-proof",
            "--key",
            dpop_key.to_str().unwrap(),
            "--url",
            &url,
            "--token",
            bound,
        ])
        .output()
        .unwrap();
    assert!(
        proof.status.success(),
        "{}",
        String::from_utf8_lossy(&proof.stderr)
    );
    let proof = String::from_utf8(proof.stdout).unwrap();
    let send = |authorization: &str, proof: Option<&str>| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
        let proof = proof.map_or(String::new(), |p| format!("DPoP: {}\r\n", p.trim()));
        write!(s, "GET /crm/contacts HTTP/1.1\r\nHost: 127.0.0.1:{gw_port}\r\nAuthorization: {authorization}\r\n{proof}Connection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    };
    let stolen = send(&format!("Bearer {bound}"), None);
    assert!(stolen.starts_with("HTTP/1.1 401"), "{stolen}");
    let answer = send(&format!("DPoP {bound}"), Some(&proof));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let replayed = send(&format!("DPoP {bound}"), Some(&proof));
    assert!(replayed.starts_with("HTTP/1.1 401"), "{replayed}");

    // The gateway's decision joined the authority's audit chain (it is written without
    // holding the request, so wait for it).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = warden(&data, &["audit", "export"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(r#""kind":"decision""#) && text.contains(r#""decision":"allow""#) {
            break;
        }
        assert!(Instant::now() < deadline, "no gateway decision in {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it runs, the last entries await their checkpoint; a clean stop signs them all.
    let running = warden(&data, &["audit", "verify", "--json", "--allow-unsigned"]);
    assert_eq!(running.status.code(), Some(0), "{running:?}");
    assert!(server.stop().success());
    let verified = json_of(&warden(&data, &["audit", "verify", "--json"]));
    assert_eq!(verified["status"], "ok", "{verified}");
    assert_eq!(verified["unsigned_entries"], 0, "{verified}");
    // The built-in gateway ran as a principal of its own, its credentials kept private.
    let credentials = std::fs::metadata(data.join("gateway.credentials.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&credentials.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn policy_test_passes_on_the_examples_and_fails_on_a_wrong_expectation() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let out = Command::new(BIN)
        .args(["policy", "test"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(" passed, 0 failed"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("p.cedar"),
        "@id(\"all\")\npermit (principal, action, resource);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests/t.json"),
        r#"[{"name": "wrongly expects deny", "principal": {"id": "agt_AAAAAAAAAAAAAAAAAAAAAA", "kind": "agent", "tenant": "tnt_AAAAAAAAAAAAAAAAAAAAAA"},
            "action": "GET", "resource": {"route": "/crm/", "path": "/crm/a"},
            "context": {"client_ip": "127.0.0.1", "time": 1900000000, "scopes": []}, "expect": "deny"}]"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["policy", "test"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a mismatch is a failed check");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 failed"));
}

/// `N` distinct ports free a moment ago. Use them at once: other tests bind ports too.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// GET through a gateway with `curl`; the HTTP status.
fn status_via(gateway_port: u16, token: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://127.0.0.1:{gateway_port}/crm/x"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

/// Waits up to 10 s for `want`; the last status seen.
fn until_status(gateway_port: u16, token: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status_via(gateway_port, token);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two authority replicas on one PostgreSQL, each with its gateway: a revocation made
/// through one replica is enforced by the other replica's gateway.
#[test]
fn replicas_on_one_postgresql_share_revocations() {
    let Some(database) = warden_test::postgres::server_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        for s in upstream.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = vec![0u8; 16 * 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let [port_a, gw_a] = free_ports();
    let issuer = format!("http://127.0.0.1:{port_a}");
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nissuer = \"{issuer}\"\n[[gateway.route]]\nprefix = \"/crm/\"\nupstream = \"http://{upstream_addr}\"\naudience = \"crm\"\n[gateway.route.scopes]\nGET = \"crm:contacts:read\"\n"
        ),
    )
    .unwrap();
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let replica = |name: &str, port: u16, gateway_port: u16| {
        let data = dir.path().join(name);
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--ops-listen",
                "127.0.0.1:0",
                "--gateway-ops-listen",
                "127.0.0.1:0",
            ])
            .args(["--issuer", &issuer, "--database", &database])
            .args(["--gateway-listen", &format!("127.0.0.1:{gateway_port}")])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .env("WARDEN_MASTER_KEY", master)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !data.join("server.json").exists() {
            assert!(Instant::now() < deadline, "replica {name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        (server, data)
    };
    // One after the other: the first creates the signing keys the second loads. Each
    // replica's ports are picked just before it starts, so that no other test's server can
    // take them in between.
    let (_a, data_a) = replica("a", port_a, gw_a);
    let [port_b, gw_b] = free_ports();
    let (_b, data_b) = replica("b", port_b, gw_b);

    json_of(&warden(&data_a, &["tenant", "create", "acme", "--json"]));
    let (id, key) = create_agent(&data_a, dir.path(), "acme", "a", "crm:contacts:read");
    let id = id.as_str();
    let token = |data: &Path| {
        json_of(&warden(
            data,
            &[
                "token",
                "--client-id",
                id,
                "--key",
                key.to_str().unwrap(),
                "--json",
            ],
        ))["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let t = token(&data_a);
    assert_eq!(until_status(gw_a, &t, 200), 200);
    assert_eq!(
        until_status(gw_b, &t, 200),
        200,
        "replica b's gateway accepts a's token"
    );

    // Revoked through replica b; both gateways refuse.
    json_of(&warden(&data_b, &["revoke", "--principal", id, "--json"]));
    assert_eq!(until_status(gw_a, &t, 401), 401, "replica a's gateway");
    assert_eq!(until_status(gw_b, &t, 401), 401, "replica b's gateway");
}

/// The audit log of a real server: every change is on it, `audit verify` accepts it, and
/// names the entry someone edited afterwards; `audit export` prints the entries.
#[test]
fn audit_verify_accepts_the_servers_log_and_names_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let server = start(&data);
        json_of(&warden(&data, &["tenant", "create", "acme", "--json"]));
        json_of(&warden(&data, &["tenant", "create", "globex", "--json"]));
        assert!(server.stop().success());
    }
    let verified = json_of(&warden(&data, &["audit", "verify", "--json"]));
    assert_eq!(verified["status"], "ok", "{verified}");
    assert!(verified["entries"].as_u64().unwrap() >= 2, "{verified}");

    let out = warden(&data, &["audit", "export"]);
    assert!(out.status.success());
    let exported = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(exported.contains("POST /admin/v1/tenants"), "{exported}");
    let out = warden(&data, &["audit", "export", "--since", "1h"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), exported);
    assert!(!warden(&data, &["audit", "export", "--since", "soon"])
        .status
        .success());

    // Someone rewrites history: the first tenant creation becomes another.
    let log = data.join("audit").join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let edited = text.replacen("POST /admin/v1/tenants", "POST /admin/v1/tenantz", 1);
    assert_ne!(text, edited);
    std::fs::write(&log, edited).unwrap();
    let out = warden(&data, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "a break is a failed check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not verify") && err.contains("line 1"),
        "{err}"
    );
}
