//! Two figures of the gateway's edge, each against a baseline measured in the same run:
//!
//! 1. Revocation propagation: an authority on a SQLite file and 8 gateways in this process,
//!    each following the authority's revocation stream over loopback. Per revocation: the
//!    time from the revoke call's answer to the moment every gateway's revocation view refuses
//!    the token (checked in a tight loop), then, outside the timing, a real request to every
//!    gateway must get 401. p50/p99 over `REVOCATIONS` (default 1,000).
//! 2. The decision pipeline with DPoP on vs. off (criterion, in-process, no network): a cached
//!    bearer token vs. a cached DPoP-bound token whose fresh proof is verified per request.
//! 3. The decision pipeline with behavioural telemetry off vs. on (criterion, in-process): the
//!    same cached bearer token of one steady identity, through a gateway without and one with
//!    `[gateway.behaviour]` (every request observed: window, baseline, network, route).
//!
//! Run: `cargo bench -p warden-gateway --bench edge` (`SKIP_PROPAGATION=1` skips the first;
//! a trailing filter such as `-- behaviour` picks criterion cases).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test or benchmark fails by panicking: unwrapping, indexing and panics are how it says so"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use hyper::HeaderMap;
use rand_core::OsRng;
use serde_json::json;
use tokio::net::TcpListener;
use warden_core::claims::{AccessClaims, Confirmation};
use warden_core::dpop::{access_token_hash, create_proof, ProofClaims};
use warden_core::id::random_token_id;
use warden_core::time::{Clock as _, SystemClock};
use warden_core::SigningKey;
use warden_gateway::pipeline::Facts;
use warden_gateway::Gateway;
use warden_test::authority::{audit_log, Setup as AuthoritySetup, TestAuthority};
use warden_test::gateway::{launch_with, Discard};
use warden_test::keys::claims_of;
use warden_test::wait::eventually;

const GATEWAYS: usize = 8;

struct Setup {
    authority: TestAuthority,
    gateways: Vec<(Arc<Gateway>, String)>,
    _dir: tempfile::TempDir,
}

/// An authority on a SQLite file in real time, recording to a real audit log, and
/// `gateways` gateways (audit discarded) routing `/crm/` to an upstream that answers `ok`.
async fn setup(gateways: usize, extra_toml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let authority = TestAuthority::launch(
        AuthoritySetup {
            store_file: Some(dir.path().join("warden.db")),
            real_time: true,
            audit: Some(audit_log(&dir.path().join("authority-audit"))),
        },
        |_| {},
    )
    .await;
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", up.local_addr().unwrap());
    tokio::spawn(
        async move { axum::serve(up, axum::Router::new().fallback(|| async { "ok" })).await },
    );
    let toml = format!(
        r#"
[gateway]
authority = "{}"
{extra_toml}
[[gateway.route]]
prefix = "/crm/"
upstream = "{upstream}"
audience = "crm"
[gateway.route.scopes]
GET = "crm:contacts:read"
"#,
        authority.url
    );
    let mut list = Vec::new();
    for i in 0..gateways {
        let warden_test::gateway::Served {
            url, gateway: gw, ..
        } = launch_with(
            &toml,
            &format!("bench-{i}"),
            Arc::new(SystemClock),
            Box::new(Discard),
        )
        .await
        .unwrap();
        // Until its revocation view has heard the stream, a gateway refuses every token.
        assert!(eventually(|| gw.revocations.is_fresh()).await);
        list.push((gw, url));
    }
    Setup {
        authority,
        gateways: list,
        _dir: dir,
    }
}

/// A token of an agent the store does not hold, as only the authority could sign it.
fn token(s: &Setup, edit: impl FnOnce(&mut AccessClaims)) -> (String, AccessClaims) {
    let t = s.authority.forge(
        "agt_AAAAAAAAAAAAAAAAAAAAAA",
        "tnt_AAAAAAAAAAAAAAAAAAAAAA",
        edit,
    );
    let c = claims_of(&t);
    (t, c)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn propagation(rt: &tokio::runtime::Runtime) {
    let revocations: usize = std::env::var("REVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    rt.block_on(async {
        let s = setup(GATEWAYS, "").await;
        let http = reqwest::Client::new();
        let mut took = Vec::with_capacity(revocations);
        for _ in 0..revocations {
            let (t, claims) = token(&s, |_| {});
            let (status, _) = s
                .authority
                .admin_post("/tokens/revoke", json!({ "jti": claims.jti }))
                .await;
            let answered = Instant::now();
            assert_eq!(status, 200);
            while !s
                .gateways
                .iter()
                .all(|(g, _)| g.revocations.check(&claims).is_err())
            {
                tokio::task::yield_now().await;
                assert!(
                    answered.elapsed() < Duration::from_secs(10),
                    "never propagated"
                );
            }
            took.push(answered.elapsed());
            for (_, url) in &s.gateways {
                let r = http
                    .get(format!("{url}/crm/x"))
                    .bearer_auth(&t)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    401,
                    "the gateway's view refused but a request passed"
                );
            }
        }
        took.sort();
        println!(
            "revocation propagation to {GATEWAYS} gateways, {revocations} revocations: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
            percentile(&took, 0.50),
            percentile(&took, 0.99),
            took[took.len() - 1]
        );
    });
}

fn dpop_on_off(rt: &tokio::runtime::Runtime, c: &mut Criterion) {
    let s = rt.block_on(setup(1, ""));
    let (gw, url) = s.gateways[0].clone();
    let host = url.trim_start_matches("http://").to_owned();
    let headers_for = |auth: String, proof: Option<String>| {
        let mut h = HeaderMap::new();
        h.insert("authorization", auth.parse().unwrap());
        h.insert("host", host.parse().unwrap());
        if let Some(p) = proof {
            h.insert("dpop", p.parse().unwrap());
        }
        h
    };
    let decide = |h: &HeaderMap| {
        let facts = Facts {
            method: "GET",
            path: "/crm/x",
            raw_path: "/crm/x",
            headers: h,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            request_id: String::new(),
        };
        assert!(rt.block_on(gw.decide(&facts)).is_ok());
    };
    let (bearer, _) = token(&s, |_| {});
    let key = SigningKey::generate(&mut OsRng);
    let (bound, _) = token(&s, |c| {
        c.cnf = Some(Confirmation {
            jkt: key.public_key().thumbprint(),
        })
    });
    let proof = || {
        create_proof(
            &key,
            &ProofClaims {
                jti: random_token_id(&mut OsRng),
                htm: "GET".into(),
                htu: format!("{url}/crm/x"),
                iat: SystemClock.now(),
                ath: Some(access_token_hash(&bound)),
                nonce: None,
            },
        )
        .unwrap()
    };
    let mut g = c.benchmark_group("decide");
    let h = headers_for(format!("Bearer {bearer}"), None);
    g.bench_function("bearer (cached token)", |b| b.iter(|| decide(&h)));
    g.bench_function("dpop (cached token, fresh proof)", |b| {
        b.iter_batched(
            || headers_for(format!("DPoP {bound}"), Some(proof())),
            |h| decide(&h),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn behaviour_on_off(rt: &tokio::runtime::Runtime, c: &mut Criterion) {
    let off = rt.block_on(setup(1, ""));
    let on = rt.block_on(setup(1, "[gateway.behaviour]\nenabled = true\n"));
    assert!(on.gateways[0].0.behaviour.is_some() && off.gateways[0].0.behaviour.is_none());
    let mut g = c.benchmark_group("decide");
    for (name, s) in [
        ("bearer, behaviour off", &off),
        ("bearer, behaviour on (steady identity)", &on),
    ] {
        let (gw, _) = s.gateways[0].clone();
        let (bearer, _) = token(s, |_| {});
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        let decide = || {
            let facts = Facts {
                method: "GET",
                path: "/crm/x",
                raw_path: "/crm/x",
                headers: &h,
                client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
                request_id: String::new(),
            };
            assert!(rt.block_on(gw.decide(&facts)).is_ok());
        };
        g.bench_function(name, |b| b.iter(decide));
    }
    g.finish();
    // The identity was observed and nothing was raised: a steady identity costs only the
    // bookkeeping measured above.
    let b = on.gateways[0].0.behaviour.as_ref().unwrap();
    assert_eq!(b.tracked(), 1);
    assert_eq!(on.gateways[0].0.alerts.as_ref().unwrap().raised_total(), 0);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("SKIP_PROPAGATION").is_err() {
        propagation(&rt);
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    dpop_on_off(&rt, &mut c);
    behaviour_on_off(&rt, &mut c);
    c.final_summary();
}
