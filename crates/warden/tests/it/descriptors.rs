//! Descriptors and connections, for real: `warden serve` started under a 1,024 soft
//! `RLIMIT_NOFILE` (the common default) raises it, holds a crowd of idle connections while
//! other clients are still served, and answers connections beyond its cap with a 503
//! instead of leaving them waiting in the backlog.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Server, BIN};

/// The soft limit the outside probe found the server started with.
const SOFT_LIMIT: u64 = 1024;
/// Idle connections of the probe: more than the soft limit allows.
const IDLE: usize = 1_500;
/// Idle connections opened before the first ordinary request: past the soft limit.
const IDLE_FIRST: usize = 1_100;
/// Ordinary requests made meanwhile, each over a fresh connection; the rest of the idle
/// crowd arrives between them.
const PROBES: usize = 200;
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Everything must happen while the crowd is held: the server's header timeout (10 s from
/// each connection's start) ends idle connections after that, which would hide the fault.
/// A request not made within this window counts as not served.
const PROBE_WINDOW: Duration = Duration::from_secs(8);

/// A `warden serve` under a soft open-file limit, with its JSON log lines collected.
struct Logged {
    server: Option<Server>,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Logged {
    fn start(data: &Path, soft: u64, args: &[&str]) -> Self {
        // The shell lowers only the soft limit, then becomes the server.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -S -n {soft} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ops-listen",
                "127.0.0.1:0",
                "--log-json",
                "--data-dir",
            ])
            .arg(data)
            .args(args)
            .env_remove("WARDEN_MASTER_KEY")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        // Read the log as it comes: a full pipe would block the server's logging.
        let reader = std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let server = Server { child };
        let info = data.join("server.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !info.exists() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let info: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
        let addr = info["authority_url"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        Self {
            server: Some(server),
            addr,
            lines,
            reader: Some(reader),
        }
    }

    /// Stops the server; every line it logged.
    fn stop(mut self) -> Vec<String> {
        drop(self.server.take());
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// The `fields` of each JSON log line whose message contains `message`.
fn logged<'a>(lines: &'a [String], message: &'a str) -> impl Iterator<Item = Value> + 'a {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(move |f| f["message"].as_str().is_some_and(|m| m.contains(message)))
}

/// One request over a fresh connection; the whole answer, or why there was none.
fn request(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn is_ok(answer: &Result<String, String>) -> bool {
    answer.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
}

/// Enough descriptors in this process for the probe's own connections.
fn raise_own_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    rlimit::Resource::NOFILE.get().unwrap().1
}

#[test]
fn idle_connections_do_not_starve_other_clients_under_a_1024_soft_limit() {
    let hard = raise_own_limit();
    if hard < 4 * IDLE as u64 {
        // Nothing can hold 1,500 connections under this hard limit; the fault is not ours.
        eprintln!("skipped: the hard open-file limit is {hard}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Logged::start(&dir.path().join("data"), SOFT_LIMIT, &[]);

    let window = Instant::now() + PROBE_WINDOW;
    let mut idle = Vec::with_capacity(IDLE);
    let mut idle_failed = Vec::new();
    let mut join_crowd = |n: usize| {
        for _ in 0..n {
            if Instant::now() > window {
                idle_failed.push("not attempted: the window closed".to_owned());
                continue;
            }
            match TcpStream::connect_timeout(&server.addr, PROBE_TIMEOUT) {
                Ok(s) => idle.push(s),
                Err(e) => idle_failed.push(e.to_string()),
            }
        }
    };
    join_crowd(IDLE_FIRST);
    let mut served = 0;
    let mut failures = Vec::new();
    for _ in 0..PROBES {
        join_crowd((IDLE - IDLE_FIRST) / PROBES);
        if Instant::now() > window {
            failures.push("not attempted: the probe window closed".to_owned());
            continue;
        }
        let answer = request(server.addr, "/.well-known/jwks.json", PROBE_TIMEOUT);
        if is_ok(&answer) {
            served += 1;
        } else {
            failures.push(match answer {
                Ok(a) => a.lines().next().unwrap_or_default().to_owned(),
                Err(e) => e,
            });
        }
    }
    // None of the crowd was turned away: the server held them all.
    let refused = idle
        .iter()
        .filter(|s| {
            let mut s: &TcpStream = s;
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 12];
            matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 503"))
        })
        .count();
    drop(idle);
    let lines = server.stop();

    let accept_failed = logged(&lines, "accept failed").count();
    eprintln!(
        "{served}/{PROBES} requests served among {} idle connections ({} could not connect); \
         {accept_failed} `accept failed` lines; {refused} idle connections refused",
        IDLE - idle_failed.len(),
        idle_failed.len(),
    );
    let raised: Vec<Value> = logged(&lines, "raised the open-file soft limit").collect();
    assert_eq!(raised.len(), 1, "one line: {lines:#?}");
    assert_eq!(raised[0]["old"], SOFT_LIMIT, "{raised:?}");
    assert_eq!(raised[0]["new"], hard, "{raised:?}");
    assert!(
        served * 100 >= PROBES * 99,
        "{served}/{PROBES} served; failures: {failures:?}"
    );
    assert!(
        idle_failed.is_empty(),
        "the crowd could not connect: {idle_failed:?}"
    );
    assert!(accept_failed <= 5, "{accept_failed} `accept failed` lines");
    assert_eq!(refused, 0, "idle connections were refused");
}

#[test]
fn a_connection_beyond_the_cap_gets_503_and_is_closed_until_a_place_frees() {
    raise_own_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = Logged::start(
        &dir.path().join("data"),
        SOFT_LIMIT,
        &["--max-connections", "20"],
    );
    let addr = server.addr;
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();

    // Accepted in order, the 21st finds every place taken.
    let started = Instant::now();
    let answer = request(addr, "/.well-known/jwks.json", Duration::from_secs(5))
        .expect("an answer, then the connection closed");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed promptly"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    let head = head.to_ascii_lowercase();
    let fields: Vec<&str> = head.split("\r\n").collect();
    assert!(fields.contains(&"retry-after: 1"), "{answer}");
    assert!(fields.contains(&"connection: close"), "{answer}");
    let problem: Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["status"], 503);

    drop(held);
    // The server frees each place when it sees the connection close.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = request(addr, "/.well-known/jwks.json", Duration::from_secs(2));
        if is_ok(&answer) || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(is_ok(&answer), "not served again: {answer:?}");
    let lines = server.stop();
    let refusals: Vec<Value> = logged(&lines, "connection limit reached").collect();
    assert!(!refusals.is_empty(), "{lines:#?}");
    assert_eq!(refusals[0]["max_connections"], 20, "{refusals:?}");
}
