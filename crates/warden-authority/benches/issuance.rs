//! Token issuance over HTTP on loopback: client_credentials with private_key_jwt, N
//! concurrent keep-alive clients, against a real authority on a SQLite file; and token
//! exchange (RFC 8693, an agent acting for a user under a delegation grant) with the same
//! clients. Baselines in the same run: `GET /.well-known/jwks.json` on the same server, the
//! floor of this HTTP stack, and client_credentials for the exchange. The authority records
//! to a real audit log in the same directory, so each token's number includes waiting for its
//! entry to be durable (group-committed with the others in flight).
//!
//! Run: `cargo bench -p warden-authority --bench issuance` (env `REQUESTS`, `CONCURRENCY`
//! as a comma list, `SERVER_THREADS`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

use std::time::{Duration, Instant};

use serde_json::json;
use warden_test::authority::{audit_log, Agent, Setup, TestAuthority};
use warden_test::keys::{assertion_claims, sign_assertion};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
    failures: usize,
}

async fn load(url: &str, bodies: Vec<Option<String>>, concurrency: usize) -> Run {
    let per_task = bodies.len() / concurrency;
    let mut chunks = Vec::new();
    let mut it = bodies.into_iter();
    for _ in 0..concurrency {
        chunks.push(it.by_ref().take(per_task).collect::<Vec<_>>());
    }
    let start = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut lat = Vec::with_capacity(chunk.len());
                let mut failures = 0;
                for body in chunk {
                    let t = Instant::now();
                    let req = match body {
                        Some(b) => http
                            .post(&url)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(b),
                        None => http.get(&url),
                    };
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => failures += 1,
                    }
                    lat.push(t.elapsed());
                }
                (lat, failures)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (lat, f) = t.await.unwrap();
        all.extend(lat);
        failures += f;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Run {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        failures,
    }
}

fn main() {
    let requests: usize = env_or("REQUESTS", 20_000);
    let levels: Vec<usize> = std::env::var("CONCURRENCY")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let server_threads: usize = env_or("SERVER_THREADS", 2);

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every token is on durable record before it is answered, as in production.
    let authority = server_rt.block_on(TestAuthority::launch(
        Setup {
            store_file: Some(dir.path().join("warden.db")),
            real_time: true,
            audit: Some(audit_log(dir.path())),
        },
        |_| {},
    ));
    let url = authority.url.clone();

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("client")
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(async {
        let tenant = authority.tenant("bench").await;
        let agent = authority
            .agent(&tenant, "bench-agent", "crm:contacts:read email:send")
            .await;
        let user = authority
            .agent_with(
                &tenant,
                "bench-user",
                json!({ "kind": "user", "scopes": "crm:contacts:read" }),
            )
            .await;
        authority.grant(&user, &agent, "crm:contacts:read").await;
        let token_endpoint = authority.token_endpoint();
        // Signed well ahead of their use: every body of a run is signed before it starts.
        let assertion_for = |client: &Agent| {
            let mut claims = assertion_claims(&client.id, &token_endpoint, authority.now());
            claims.exp += 180;
            sign_assertion(&claims, &client.key)
        };
        let user_token = authority.own_token(&user).await;

        println!("token issuance over HTTP, {requests} requests per run, server on {server_threads} threads");
        println!("{:>11} {:>14} {:>10} {:>10} {:>14} {:>8} {:>12} {:>10} {:>12}", "concurrency", "tokens/s", "p50", "p99", "jwks GET/s", "ratio", "exchange/s", "p99", "exch/cc");
        for &c in &levels {
            // Assertions are signed before the clock starts: the client's signing cost is
            // not the server's.
            let bodies: Vec<Option<String>> = (0..requests)
                .map(|_| {
                    Some(format!(
                        "grant_type=client_credentials&scope=crm%3Acontacts%3Aread&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
                        assertion_for(&agent)
                    ))
                })
                .collect();
            let exchanges: Vec<Option<String>> = (0..requests)
                .map(|_| {
                    Some(format!(
                        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={user_token}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
                        assertion_for(&agent)
                    ))
                })
                .collect();
            let issue = load(&token_endpoint, bodies, c).await;
            let base = load(&format!("{url}/.well-known/jwks.json"), vec![None; requests], c).await;
            let exchange = load(&token_endpoint, exchanges, c).await;
            let failures = issue.failures + base.failures + exchange.failures;
            println!(
                "{c:>11} {:>14.0} {:>10.2?} {:>10.2?} {:>14.0} {:>8.2} {:>12.0} {:>10.2?} {:>12.2}{}",
                issue.rate,
                issue.p50,
                issue.p99,
                base.rate,
                issue.rate / base.rate,
                exchange.rate,
                exchange.p99,
                exchange.rate / issue.rate,
                if failures > 0 {
                    format!("  ({failures} failures)")
                } else {
                    String::new()
                }
            );
        }
    });
    drop(authority);
    drop(server_rt);
}
