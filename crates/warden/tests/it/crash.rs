//! A real `warden serve` killed with SIGKILL between a change's commit and its answer, for
//! every mutating lifecycle call: after a restart on the same data directory, a retry with
//! the same `Idempotency-Key` gets the original answer replayed, the change is applied
//! exactly once, and the killed call's audit entry reaches the audit log, which still
//! verifies.
//!
//! The window is hit deterministically with the server's one fault hook:
//! `WARDEN_FAULT=hold-answer-after-commit:PREFIX` holds the answer of any change made under a
//! key beginning with `PREFIX` once it has committed, and says so on stderr; the test then
//! kills the process from outside.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{json_of, serve, warden, Server};

/// Keys under which the server holds the answer of a committed change.
const FAULT_PREFIX: &str = "killed-";

/// A server armed with the fault, and its stderr, line by line.
struct Armed {
    server: Server,
    url: String,
    token: String,
    stderr: mpsc::Receiver<String>,
}

fn start_armed(data: &Path, database: Option<&str>, master_key: Option<&str>) -> Armed {
    // A killed server leaves its address file behind: wait for the new one.
    let _ = std::fs::remove_file(data.join("server.json"));
    let mut cmd = serve(data, master_key);
    cmd.env(
        "WARDEN_FAULT",
        format!("hold-answer-after-commit:{FAULT_PREFIX}"),
    );
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let mut child = cmd.spawn().unwrap();
    // Read stderr all along, or a full pipe would stall the server's logging.
    let (tx, stderr) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("server.json").exists() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("server.json")).unwrap()).unwrap();
    Armed {
        server,
        url: info["authority_url"].as_str().unwrap().to_owned(),
        token: std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned(),
        stderr,
    }
}

/// An answer as the client read it off the socket.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: String,
    replayed: bool,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// One HTTP/1.1 exchange; `None` when the connection ends without an answer.
fn http(
    url: &str,
    auth: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Option<Answer> {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let key = key.map_or(String::new(), |k| format!("Idempotency-Key: {k}\r\n"));
    let typed = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\n{key}{typed}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        replayed: head
            .to_ascii_lowercase()
            .contains("\r\nidempotent-replayed: true"),
        body: body.to_owned(),
    })
}

impl Armed {
    fn admin(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Answer {
        http(
            &self.url,
            &format!("Bearer {}", self.token),
            method,
            &format!("/admin/v1{path}"),
            key,
            body,
        )
        .unwrap_or_else(|| panic!("no answer to {method} {path}"))
    }

    /// Sends a change under a fault key, waits until the server says it committed and is
    /// holding the answer, and kills it with SIGKILL. The client never gets an answer.
    fn kill_after_commit(mut self, method: &str, path: &str, key: &str, body: Option<&Value>) {
        let (url, auth) = (self.url.clone(), format!("Bearer {}", self.token));
        let (method_, path_, key_) = (
            method.to_owned(),
            format!("/admin/v1{path}"),
            key.to_owned(),
        );
        let body_ = body.cloned();
        let client = std::thread::spawn(move || {
            http(&url, &auth, &method_, &path_, Some(&key_), body_.as_ref())
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains("fault injected") && line.contains(key) => break,
                Ok(_) => {}
                Err(_) => panic!("{method} {path}: the server never reported the commit"),
            }
        }
        // Child::kill is SIGKILL on Unix: nothing after the commit runs.
        self.server.child.kill().unwrap();
        self.server.child.wait().unwrap();
        assert_eq!(
            client.join().unwrap(),
            None,
            "{method} {path}: answered despite the kill"
        );
    }
}

/// The revocation events the server streams, up to its first heartbeat.
fn revocations(server: &Armed) -> Vec<Value> {
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /revocations/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("event: heartbeat") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.split("\n\n")
        .filter(|block| block.contains("event: revocation"))
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// What one case sends.
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// The status the answer must have.
    status: u16,
}

fn call(method: &'static str, path: impl Into<String>, body: Option<Value>, status: u16) -> Call {
    Call {
        method,
        path: path.into(),
        body,
        status,
    }
}

/// The state every case builds on, made on the first server with ordinary calls.
struct World {
    /// Makes the names that are unique across the whole database unique to this run (a
    /// shared PostgreSQL outlives it).
    run: String,
    tenant: String,
    user: String,
    agent: String,
    jwk: Value,
}

impl World {
    fn globex(&self) -> String {
        format!("globex-{}", self.run)
    }
    fn gateway_kid(&self) -> String {
        format!("gw-killed-{}", self.run)
    }
    fn jti(&self) -> String {
        format!("killed-jti-{}", self.run)
    }
}

/// The cases in order: each may use what earlier answers returned (`ids`).
fn case(n: usize, w: &World, ids: &BTreeMap<&'static str, String>) -> Option<(&'static str, Call)> {
    let t = &w.tenant;
    let agent = &w.agent;
    let globex = w.globex();
    Some(match n {
        0 => (
            "tenant",
            call("POST", "/tenants", Some(json!({ "name": globex })), 201),
        ),
        1 => (
            "disable tenant",
            call("POST", format!("/tenants/{globex}/disable"), None, 200),
        ),
        2 => (
            "enable tenant",
            call("POST", format!("/tenants/{globex}/enable"), None, 200),
        ),
        3 => (
            "token ttl",
            call(
                "PUT",
                format!("/tenants/{t}/token-ttl"),
                Some(json!({ "max_token_ttl_secs": 600 })),
                200,
            ),
        ),
        4 => (
            "principal",
            call(
                "POST",
                format!("/tenants/{t}/principals"),
                Some(json!({ "kind": "service", "name": "mailer", "scopes": "email:send" })),
                201,
            ),
        ),
        5 => (
            "scopes",
            call(
                "PUT",
                format!("/principals/{agent}/scopes"),
                Some(json!({ "scopes": "email:send crm:read" })),
                200,
            ),
        ),
        6 => (
            "public key",
            call(
                "PUT",
                format!("/principals/{agent}/public-key"),
                Some(json!({ "public_key": w.jwk })),
                200,
            ),
        ),
        7 => (
            "secret",
            call("POST", format!("/principals/{agent}/secret"), None, 201),
        ),
        8 => ("rotate", call("POST", "/keys/rotate", None, 200)),
        9 => (
            "gateway key",
            call(
                "PUT",
                format!("/gateway-keys/{}", w.gateway_kid()),
                Some(json!({ "gateway": "gw", "public_key": w.jwk, "ttl_secs": 600 })),
                200,
            ),
        ),
        10 => (
            "grant",
            call(
                "POST",
                "/delegations",
                Some(json!({ "user": w.user, "agent": agent, "scopes": "email:send" })),
                201,
            ),
        ),
        11 => (
            "revoke grant",
            call(
                "POST",
                format!("/delegations/{}/revoke", ids["grant"]),
                Some(json!({ "reason": "killed-grant" })),
                200,
            ),
        ),
        12 => (
            "revoke token",
            call(
                "POST",
                "/tokens/revoke",
                Some(json!({ "jti": w.jti() })),
                200,
            ),
        ),
        13 => (
            "revoke principal",
            call(
                "POST",
                format!("/principals/{agent}/revoke"),
                Some(json!({ "reason": "killed-revoke" })),
                200,
            ),
        ),
        14 => (
            "disable principal",
            call("POST", format!("/principals/{agent}/disable"), None, 200),
        ),
        15 => (
            "enable principal",
            call("POST", format!("/principals/{agent}/enable"), None, 200),
        ),
        16 => (
            "honeytoken",
            call(
                "POST",
                format!("/tenants/{t}/honeytokens"),
                Some(json!({ "name": "billing-export" })),
                201,
            ),
        ),
        _ => return None,
    })
}

/// What each case's change must have left, exactly once, seen through a fresh server;
/// `prior` is what `/keys` listed before the call.
fn check(name: &str, s: &Armed, w: &World, replayed: &Answer, prior: &Value) {
    let named = |list: &Value, name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let events =
        |want: &dyn Fn(&Value) -> bool| revocations(s).into_iter().filter(|e| want(e)).count();
    let v = replayed.json();
    match name {
        "tenant" => {
            let tenants = s.admin("GET", "/tenants", None, None).json();
            assert_eq!(
                named(&tenants, &w.globex()),
                [v],
                "one tenant, the one replayed"
            );
        }
        "disable tenant" | "enable tenant" => {
            let shown = s.admin("GET", &format!("/tenants/{}", w.globex()), None, None);
            assert_eq!(shown.json(), v);
            assert_eq!(v["disabled"], name == "disable tenant");
        }
        "principal" => {
            let list = s.admin(
                "GET",
                &format!("/tenants/{}/principals", w.tenant),
                None,
                None,
            );
            assert_eq!(
                named(&list.json(), "mailer"),
                [v],
                "one principal, the one replayed"
            );
        }
        "token ttl" | "scopes" | "public key" | "disable principal" | "enable principal" => {
            let path = if name == "token ttl" {
                format!("/tenants/{}", w.tenant)
            } else {
                format!("/principals/{}", w.agent)
            };
            assert_eq!(s.admin("GET", &path, None, None).json(), v, "{name}");
            if name == "disable principal" {
                let n = events(&|e| {
                    e["principal"] == w.agent.as_str() && e["reason"] == "principal disabled"
                });
                assert_eq!(n, 1, "one revocation for the disable");
            }
        }
        "secret" => {
            // The secret replayed is the one that works: no second secret was made.
            let secret = v["client_secret"].as_str().unwrap();
            assert!(
                token_with_secret(s, &w.agent, secret),
                "the replayed secret works"
            );
        }
        "rotate" => {
            let keys = s.admin("GET", "/keys", None, None).json();
            assert_eq!(keys, v, "the key list is the one replayed");
            // One rotation: the next key became active, and one key more is listed.
            let kid = |list: &Value, state: &str| {
                list.as_array()
                    .unwrap()
                    .iter()
                    .find(|k| k["state"] == state)
                    .map(|k| k["kid"].clone())
            };
            assert_eq!(
                kid(&keys, "active"),
                kid(prior, "next"),
                "{prior} then {keys}"
            );
            let len = |list: &Value| list.as_array().unwrap().len();
            assert_eq!(len(&keys), len(prior) + 1, "{prior} then {keys}");
        }
        "gateway key" => {
            let jwks = http(&s.url, "", "GET", "/.well-known/jwks.json", None, None).unwrap();
            let kid = w.gateway_kid();
            assert_eq!(jwks.body.matches(kid.as_str()).count(), 1, "{}", jwks.body);
        }
        "grant" => {
            let list = s.admin(
                "GET",
                &format!("/tenants/{}/delegations", w.tenant),
                None,
                None,
            );
            assert_eq!(list.json(), json!([v]), "one grant, the one replayed");
        }
        "revoke grant" | "revoke token" | "revoke principal" => {
            assert_eq!(events(&|e| *e == v), 1, "one event, the one replayed: {v}");
        }
        "honeytoken" => {
            let list = s.admin(
                "GET",
                &format!("/tenants/{}/principals", w.tenant),
                None,
                None,
            );
            assert_eq!(named(&list.json(), "billing-export").len(), 1);
            let flags = events(&|e| e["kind"] == "honeytoken" && e["principal"] == v["principal"]);
            assert_eq!(flags, 1);
        }
        other => panic!("no check for {other}"),
    }
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// Whether `secret` obtains a token for `client` (client_secret_basic).
fn token_with_secret(s: &Armed, client: &str, secret: &str) -> bool {
    let addr = s.url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let form = "grant_type=client_credentials";
    write!(
        conn,
        "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        base64_basic(client, secret),
        form.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    text.starts_with("HTTP/1.1 200") && text.contains("access_token")
}

/// `METHOD /admin/v1/PATH` → how many times that change was made; what the log must hold.
type Expected = BTreeMap<String, usize>;

fn made(expected: &mut Expected, method: &str, path: &str) {
    *expected
        .entry(format!("{method} /admin/v1{path}"))
        .or_default() += 1;
}

/// Kills the server after each change's commit, restarts it, retries; returns how many of
/// the killed calls were replayed with their original answer.
fn run_cases(
    data: &Path,
    database: Option<&str>,
    master: Option<&str>,
    key_file: &Path,
) -> (usize, usize, Expected) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run = format!("{:x}", nanos ^ u128::from(std::process::id()));
    let mut expected = Expected::new();
    let mut s = start_armed(data, database, master);
    let mut setup = |s: &Armed, method: &'static str, path: &str, body: Value| {
        let a = s.admin(method, path, None, Some(&body));
        assert!(a.status == 201 || a.status == 200, "{path}: {a:?}");
        made(&mut expected, method, path);
        a.json()
    };
    let acme = json!({ "name": format!("acme-{run}") });
    let tenant = setup(&s, "POST", "/tenants", acme)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/tenants/{tenant}/principals");
    let agent = setup(
        &s,
        "POST",
        &path,
        json!({ "kind": "agent", "name": "bot", "scopes": "email:send" }),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = setup(
        &s,
        "POST",
        &path,
        json!({ "kind": "user", "name": "ann", "scopes": "email:send" }),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(key_file.with_extension("jwk.pub")).unwrap())
            .unwrap();
    let world = World {
        run,
        tenant,
        user,
        agent,
        jwk,
    };
    let mut ids = BTreeMap::new();
    let (mut killed, mut replayed_ok) = (0, 0);
    let mut n = 0;
    while let Some((name, c)) = case(n, &world, &ids) {
        let key = format!("{FAULT_PREFIX}{}-{n}", world.run);
        let prior = s.admin("GET", "/keys", None, None).json();
        s.kill_after_commit(c.method, &c.path, &key, c.body.as_ref());
        killed += 1;
        s = start_armed(data, database, master);
        let retried = s.admin(c.method, &c.path, Some(&key), c.body.as_ref());
        assert_eq!(retried.status, c.status, "{name}: {retried:?}");
        assert!(
            retried.replayed,
            "{name}: a replay, not a second change: {retried:?}"
        );
        // Replayed again, byte for byte.
        assert_eq!(
            s.admin(c.method, &c.path, Some(&key), c.body.as_ref()),
            retried,
            "{name}"
        );
        check(name, &s, &world, &retried, &prior);
        replayed_ok += 1;
        made(&mut expected, c.method, &c.path);
        if name == "grant" {
            ids.insert("grant", retried.json()["id"].as_str().unwrap().to_owned());
        }
        n += 1;
    }
    // A clean stop: its final checkpoint signs every entry, those of the killed runs too.
    assert!(s.server.stop().success());
    (killed, replayed_ok, expected)
}

fn keygen(dir: &Path) -> PathBuf {
    let key = dir.join("k.jwk");
    assert!(warden(dir, &["keygen", "--out", key.to_str().unwrap()])
        .status
        .success());
    key
}

#[test]
fn changes_killed_between_commit_and_answer_are_replayed_once_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = keygen(dir.path());
    let (killed, replayed, expected) = run_cases(&data, None, None, &key);
    assert_eq!(replayed, killed);
    eprintln!("{replayed} of {killed} killed changes replayed, each applied once");

    // The log verifies, and holds every change once: the killed calls' entries came from
    // the outbox at restart, and the replays added none.
    let verified = json_of(&warden(&data, &["audit", "verify", "--json"]));
    assert_eq!(verified["status"], "ok", "{verified}");
    let out = warden(&data, &["audit", "export"]);
    assert!(out.status.success());
    let mut logged = Expected::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let e = v.get("entry").unwrap_or(&v);
        if e["kind"] == "lifecycle" || e["kind"] == "revocation" {
            *logged
                .entry(e["action"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(logged, expected);
}

/// The same on PostgreSQL, in the database the replica test uses (so with its master key).
/// A shared database drains at start only entries past their grace period, which a restart
/// seconds later finds none of: the audit log's side is the SQLite test's.
#[test]
fn changes_killed_between_commit_and_answer_are_replayed_once_on_postgresql() {
    let Some(database) = warden_test::postgres::server_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let data = dir.path().join("data");
    let (killed, replayed, _) = run_cases(&data, Some(&database), Some(master), &key);
    assert_eq!(replayed, killed);
    eprintln!("postgresql: {replayed} of {killed} killed changes replayed, each applied once");
}
