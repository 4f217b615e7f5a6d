//! Each phase's allow and deny paths, the token swap, header hygiene, caches, audit.

use reqwest::Method;
use serde_json::Value;
use warden_core::claims::Audience;
use warden_core::jwks::JwkSet;
use warden_core::token::verify_access_token;
use warden_core::{KeySet, Validation};

use crate::support::{eventually, Env, Options};

async fn jwks(env: &Env) -> KeySet {
    let set: JwkSet = env
        .http
        .get(format!("{}/.well-known/jwks.json", env.authority_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    KeySet::from_jwks(&set).unwrap()
}

#[tokio::test]
async fn allowed_request_reaches_the_upstream_with_only_an_internal_token() {
    let (env, _) = Env::start(Options::default()).await;
    let token = env.token("crm:contacts:read crm:contacts:write").await;
    let res = env
        .http
        .get(format!("{}/crm/contacts?id=7", env.gateway_url))
        .bearer_auth(&token)
        .header("x-warden-subject", "usr_forged")
        .header("x-forwarded-user", "admin")
        .header("remote-user", "admin")
        .header("connection", "x-secret-hop")
        .header("x-secret-hop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["path"], "/crm/contacts");
    let h = &seen["headers"];
    for stripped in [
        "x-warden-subject",
        "x-forwarded-user",
        "remote-user",
        "x-secret-hop",
    ] {
        assert!(
            h.get(stripped).is_none(),
            "{stripped} reached the upstream: {h}"
        );
    }
    let auth = h["authorization"].as_str().unwrap();
    let internal = auth.strip_prefix("Bearer ").unwrap();
    assert_ne!(
        internal, token,
        "the external token must never reach the upstream"
    );
    assert!(h.get("x-request-id").is_some());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");

    // A stock verifier with the authority's JWKS accepts it for this upstream only.
    let v = Validation::access_token(&env.authority_url, vec!["crm".into()]);
    let c = verify_access_token(internal, &jwks(&env).await, &v, env.now())
        .unwrap()
        .into_claims();
    assert_eq!(c.sub, env.agent_id);
    assert_eq!(c.aud, Audience::One("crm".into()));
    assert_eq!(
        c.scope, "crm:contacts:read",
        "narrowed to what GET on this route needs"
    );
    assert!(c.exp - c.iat <= 60);
    // Presented back at the edge, the internal token is refused: wrong audience.
    assert_eq!(env.get("/crm/contacts", Some(internal)).await.status(), 401);
}

#[tokio::test]
async fn token_deny_paths_answer_401_with_a_challenge() {
    let (env, _) = Env::start(Options::default()).await;
    let res = env.get("/crm/contacts", None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"warden\"");
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let cases = [
        "garbage".to_owned(),
        env.forge(|c| c.exp = c.iat - 100),
        env.forge(|c| c.aud = Audience::One("crm".into())),
        env.forge(|c| c.iss = "https://evil.example".into()),
        "x".repeat(9000),
    ];
    for t in &cases {
        let res = env.get("/crm/contacts", Some(t)).await;
        assert_eq!(res.status(), 401);
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    // One signature character changed (not the last, whose low bits are padding).
    let signed = env.forge(|_| {});
    let at = signed.len() - 10;
    let flipped = if &signed[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{}{}", &signed[..at], flipped, &signed[at + 1..]);
    assert_eq!(
        env.get("/crm/contacts", Some(&tampered)).await.status(),
        401
    );
}

#[tokio::test]
async fn route_scope_and_network_denials() {
    let (env, _) = Env::start(Options::default()).await;
    let read_only = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/nowhere", Some(&read_only)).await.status(), 404);
    let res = env
        .http
        .post(format!("{}/crm/contacts", env.gateway_url))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    let problem: Value = res.json().await.unwrap();
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("crm:contacts:write"));
    let res = env
        .http
        .request(Method::DELETE, format!("{}/crm/contacts", env.gateway_url))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    let elsewhere = env.forge(|c| c.allowed_ips = Some(vec!["10.0.0.0/8".into()]));
    let res = env.get("/crm/contacts", Some(&elsewhere)).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("allowed_ips"));
    let here = env.forge(|c| c.allowed_ips = Some(vec!["127.0.0.0/8".into()]));
    assert_eq!(env.get("/crm/contacts", Some(&here)).await.status(), 200);
    let malformed = env.forge(|c| c.allowed_ips = Some(vec!["not-a-net".into()]));
    assert_eq!(
        env.get("/crm/contacts", Some(&malformed)).await.status(),
        401
    );
}

/// Behind a trusted proxy that appends its own `X-Forwarded-For` line, the client's forged
/// first line decides nothing: the lines are one list, read from the right.
#[tokio::test]
async fn forwarded_for_is_read_across_every_line() {
    let (env, _) = Env::start(Options::default()).await;
    let only_forged = env.forge(|c| c.allowed_ips = Some(vec!["203.0.113.7/32".into()]));
    let only_real = env.forge(|c| c.allowed_ips = Some(vec!["198.51.100.9/32".into()]));
    let send = |token: &str| {
        env.http
            .get(format!("{}/crm/contacts", env.gateway_url))
            .bearer_auth(token)
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-for", "198.51.100.9")
            .send()
    };
    let forged = send(&only_forged).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("allowed_ips"));
    let real = send(&only_real).await.unwrap();
    assert_eq!(real.status(), 200);
    // The upstream gets one list: both lines in order, then the hop the gateway saw.
    let seen: Value = real.json().await.unwrap();
    assert_eq!(
        seen["headers"]["x-forwarded-for"],
        "203.0.113.7, 198.51.100.9, 127.0.0.1"
    );
    let real_client: std::net::IpAddr = "198.51.100.9".parse().unwrap();
    assert!(
        eventually(|| {
            let audited = env.audit.lock().unwrap();
            audited.len() >= 2 && audited.iter().all(|e| e.client_ip == real_client)
        })
        .await,
        "the audit names the address the trusted proxy saw"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:read").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = env.get("/limited/x", Some(&t)).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    // Another identity has its own budget.
    let other = env.forge(|c| c.sub = "agt_BBBBBBBBBBBBBBBBBBBBBB".into());
    assert_eq!(env.get("/limited/x", Some(&other)).await.status(), 200);
}

#[tokio::test]
async fn upstream_failures_map_to_502_and_504() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:read").await;
    let res = env.get("/down/x", Some(&t)).await;
    assert_eq!(res.status(), 502);
    let body = res.text().await.unwrap();
    assert!(!body.contains(&t), "no token in error bodies");
    assert_eq!(env.get("/slow/x", Some(&t)).await.status(), 504);
}

/// POSTs to an upstream that reads the whole body, declaring 1000 bytes but sending only
/// `body`, then closes the write half; the answer's status and text.
async fn post_declaring_1000(env: &Env, token: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = env.gateway_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /crm/upload HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 1000\r\nConnection: close\r\n\r\n"
    );
    s.write_all(&[head.as_bytes(), body].concat())
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn a_body_the_client_cuts_short_is_its_fault_not_the_upstreams() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:write").await;
    let (status, answer) = post_declaring_1000(&env, &t, b"0123456789").await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("request body ended before its declared length"),
        "{answer}"
    );
    // The same route with the whole body still reaches the upstream.
    let res = env
        .http
        .post(format!("{}/crm/upload", env.gateway_url))
        .bearer_auth(&t)
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["received"], 1000);
}

#[tokio::test]
async fn a_cache_hit_never_outlives_a_fresh_verification() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&t)).await.status(), 200);
    assert!(!env.gateway.tokens.is_empty(), "the token was cached");

    // Expiry is checked on every hit.
    env.clock.advance(900 + 31);
    assert_eq!(env.get("/crm/a", Some(&t)).await.status(), 401);

    // A token whose signing key is no longer published fails even though it was cached.
    env.clock.advance(-(900 + 31));
    let t2 = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&t2)).await.status(), 200);
    env.auth.authority.rotate_keys().await.unwrap();
    env.auth.authority.rotate_keys().await.unwrap();
    env.clock.advance(931 + 1);
    env.auth.authority.maintain().await;
    env.clock.advance(-(931 + 1));
    env.gateway.jwks.refresh().await.unwrap();
    let res = env.get("/crm/a", Some(&t2)).await;
    assert_eq!(res.status(), 401, "unpublished key, cached token");

    // Per-request checks run on hits: a cached read token still cannot write.
    let t3 = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&t3)).await.status(), 200);
    let res = env
        .http
        .post(format!("{}/crm/a", env.gateway_url))
        .bearer_auth(&t3)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// The internal token the upstream received for a GET with `token`.
async fn internal_token_for(env: &Env, token: &str) -> String {
    let res = env.get("/crm/contacts", Some(token)).await;
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    seen["headers"]["authorization"]
        .as_str()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn tokens_of_one_identity_share_internal_tokens_but_never_widen() {
    let (env, _) = Env::start(Options::default()).await;
    let now = env.now();
    let v = Validation::access_token(&env.authority_url, vec!["crm".into()]);
    let keys = jwks(&env).await;
    let claims_of = |internal: &str| {
        verify_access_token(internal, &keys, &v, now)
            .unwrap()
            .into_claims()
    };

    // A second token for the same identity gets the internal token already minted.
    let first = internal_token_for(&env, &env.forge(|_| {})).await;
    let second = internal_token_for(&env, &env.forge(|_| {})).await;
    assert_eq!(first, second, "same identity: one internal token");
    assert_eq!(env.gateway.identities.len(), 1);

    // A token that expires sooner never forwards an internal token that outlives it.
    let short = env.forge(|c| c.exp = now + 20);
    let internal = internal_token_for(&env, &short).await;
    assert_ne!(internal, first);
    assert!(claims_of(&internal).exp <= now + 20);

    // Anything the internal token or a policy could see makes another identity.
    let wider = internal_token_for(
        &env,
        &env.forge(|c| c.scope = "crm:contacts:read crm:contacts:write".into()),
    )
    .await;
    assert_ne!(wider, first);
    let delegated = internal_token_for(
        &env,
        &env.forge(|c| {
            c.act = Some(warden_core::claims::Actor {
                sub: "agt_BBBBBBBBBBBBBBBBBBBBBB".into(),
                act: None,
            })
        }),
    )
    .await;
    assert_ne!(delegated, first);
    assert_eq!(
        claims_of(&delegated).act.map(|a| a.sub).as_deref(),
        Some("agt_BBBBBBBBBBBBBBBBBBBBBB"),
        "the chain is preserved, not taken from another token"
    );
    assert_eq!(claims_of(&first).act, None);
    assert!(env.gateway.identities.len() >= 3);
}

#[tokio::test]
async fn key_rotation_while_serving() {
    let (env, _) = Env::start(Options {
        extra_toml: "jwks_min_refresh_secs = 0",
        ..Options::default()
    })
    .await;
    let before = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&before)).await.status(), 200);
    // The next key was published before it signs: no refresh is needed.
    env.auth.authority.rotate_keys().await.unwrap();
    let after = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&after)).await.status(), 200);
    assert_eq!(env.get("/crm/b", Some(&before)).await.status(), 200);
    // Two rotations: the signing key was published after the gateway's last fetch; the
    // unknown kid triggers one refresh.
    env.auth.authority.rotate_keys().await.unwrap();
    let newest = env.token("crm:contacts:read").await;
    let fetches = env.gateway.jwks.fetches();
    assert_eq!(env.get("/crm/c", Some(&newest)).await.status(), 200);
    assert_eq!(env.gateway.jwks.fetches(), fetches + 1);
}

#[tokio::test]
async fn unknown_kids_cannot_force_a_fetch_storm() {
    let (env, _) = Env::start(Options::default()).await;
    let keys = env.auth.authority.keys.current();
    let fetches = env.gateway.jwks.fetches();
    for i in 0..20 {
        let c = warden_core::AccessClaims {
            iss: env.authority_url.clone(),
            sub: env.agent_id.clone(),
            aud: Audience::One("warden".into()),
            exp: env.now() + 60,
            iat: env.now(),
            nbf: env.now(),
            jti: format!("j{i}"),
            client_id: env.agent_id.clone(),
            tenant: "tnt_AAAAAAAAAAAAAAAAAAAAAA".into(),
            scope: "crm:contacts:read".into(),
            act: None,
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        };
        let t = warden_core::jws::encode("at+jwt", Some(&format!("forged-{i}")), &c, &keys.active)
            .unwrap();
        assert_eq!(env.get("/crm/a", Some(&t)).await.status(), 401);
    }
    // The start-up fetch was moments ago: within the minimum interval, no refetch at all.
    assert_eq!(env.gateway.jwks.fetches(), fetches);
}

#[tokio::test]
async fn forward_auth_for_nginx() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:read").await;
    let authz = format!("{}/authz", env.gateway_url);
    let ask = |method: &'static str, uri: &'static str| {
        env.http
            .get(&authz)
            .bearer_auth(&t)
            .header("x-original-uri", uri)
            .header("x-original-method", method)
    };
    let res = ask("GET", "/crm/contacts?x=1").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let internal = res.headers()["x-warden-authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    let v = Validation::access_token(&env.authority_url, vec!["crm".into()]);
    assert!(verify_access_token(&internal, &jwks(&env).await, &v, env.now()).is_ok());
    // nginx passes only 2xx, 401 and 403: a 405 is answered 403, the real status in a header.
    let res = ask("DELETE", "/crm/contacts").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-warden-status"], "405");
    // A client cannot smuggle Traefik's headers through nginx to change the decision.
    let res = ask("POST", "/crm/contacts")
        .header("x-forwarded-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // The decision is about the normalized path.
    let res = ask("GET", "/limited/../crm/x").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = env
        .http
        .get(&authz)
        .header("x-original-uri", "/crm/a")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn forward_auth_for_traefik_and_envoy() {
    let (traefik, _) = Env::start(Options {
        extra_toml: "forward_auth = \"traefik\"",
        ..Options::default()
    })
    .await;
    let t = traefik.token("crm:contacts:read").await;
    let authz = format!("{}/authz", traefik.gateway_url);
    let ask = |method: &'static str| {
        traefik
            .http
            .get(&authz)
            .bearer_auth(&t)
            .header("x-forwarded-uri", "/crm/contacts")
            .header("x-forwarded-method", method)
    };
    assert_eq!(ask("GET").send().await.unwrap().status(), 200);
    assert_eq!(ask("POST").send().await.unwrap().status(), 403);
    assert_eq!(
        ask("DELETE").send().await.unwrap().status(),
        405,
        "Traefik passes real statuses on"
    );

    let (envoy, _) = Env::start(Options {
        extra_toml: "forward_auth = \"envoy\"",
        ..Options::default()
    })
    .await;
    let t = envoy.token("crm:contacts:read").await;
    let authz = format!("{}/authz", envoy.gateway_url);
    assert_eq!(
        envoy
            .http
            .get(format!("{authz}/crm/contacts"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        envoy
            .http
            .post(format!("{authz}/crm/contacts"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        envoy
            .http
            .get(format!("{authz}/crm/contacts"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn forward_auth_refuses_callers_that_are_not_trusted_proxies() {
    let (env, _) = Env::start(Options {
        trusted_proxies: "[]",
        ..Options::default()
    })
    .await;
    let t = env.token("crm:contacts:read").await;
    let res = env
        .http
        .get(format!("{}/authz", env.gateway_url))
        .bearer_auth(&t)
        .header("x-original-uri", "/crm/contacts")
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("x-warden-authorization").is_none());
}

/// Sends a raw request line (HTTP clients normalize paths before sending).
async fn raw_get(env: &Env, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = env.gateway_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn dot_segments_cannot_move_a_request_past_its_decision() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:read").await;
    // Decided and forwarded as /crm/x: the upstream sees the same path the decision saw.
    let (status, body) = raw_get(&env, "/limited/%2e%2e/crm/x", &t).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"path\":\"/crm/x\""), "{body}");
    // Into a route the token has no scope for: refused, not forwarded.
    let (status, _) = raw_get(&env, "/crm/../down/x", &t).await;
    assert_eq!(
        status, 502,
        "decided on /down/ (which is unreachable), not on /crm/"
    );
    for bad in [
        "/crm/..%2fdown/x",
        "/crm/%2F..%2Fdown",
        "/crm/%252e%252e/down",
    ] {
        assert_eq!(raw_get(&env, bad, &t).await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn every_decision_is_audited_with_its_phase() {
    let (env, _) = Env::start(Options::default()).await;
    let t = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&t)).await.status(), 200);
    assert_eq!(env.get("/crm/a", None).await.status(), 401);
    let audit = std::sync::Arc::clone(&env.audit);
    assert!(eventually(|| audit.lock().unwrap().len() >= 2).await);
    let events = audit.lock().unwrap().clone();
    let allow = events.iter().find(|e| e.decision == "allow").unwrap();
    assert_eq!(allow.sub.as_deref(), Some(env.agent_id.as_str()));
    assert_eq!(allow.route.as_deref(), Some("/crm/"));
    assert!(allow.jti.is_some());
    let deny = events.iter().find(|e| e.decision == "deny").unwrap();
    assert_eq!((deny.phase, deny.status), ("verify", 401));
}

#[tokio::test]
async fn a_full_audit_queue_fails_closed_or_counts_and_records_the_gap() {
    let (env, gate) = Env::start(Options {
        audit_queue: 1,
        audit_open: false,
        ..Options::default()
    })
    .await;
    let t = env.token("crm:contacts:read").await;
    // The writer is stalled: one entry is taken by the writer, one fills the queue; from
    // then on the queue is full.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(env.get("/crm/a", Some(&t)).await.status().as_u16());
    }
    assert!(
        statuses.contains(&503),
        "fail-closed route refuses: {statuses:?}"
    );
    // The fail-open route lets the request through and counts it.
    assert_eq!(env.get("/open/a", Some(&t)).await.status(), 200);
    assert!(env.gateway.audit.dropped_total() >= 1);
    // Once the writer runs again, the loss is written down.
    warden_test::gateway::open(&gate);
    // The writer drains the queue on its next round; until then the route may still refuse.
    let mut reopened = false;
    for _ in 0..200 {
        if env.get("/crm/a", Some(&t)).await.status() == 200 {
            reopened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        reopened,
        "the fail-closed route reopens once the queue drains"
    );
    let audit = std::sync::Arc::clone(&env.audit);
    assert!(
        eventually(|| audit
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.decision == "gap" && e.dropped >= Some(1)))
        .await
    );
}

#[tokio::test]
async fn a_single_use_token_refused_for_an_audit_backlog_is_not_spent() {
    let (env, gate) = Env::start(Options {
        audit_queue: 1,
        audit_open: false,
        ..Options::default()
    })
    .await;
    let t = env.token("crm:contacts:read").await;
    // Stall the writer until the fail-closed route refuses for the backlog.
    let mut backlogged = false;
    for _ in 0..8 {
        if env.get("/crm/a", Some(&t)).await.status() == 503 {
            backlogged = true;
            break;
        }
    }
    assert!(backlogged, "the audit queue never filled");
    let once = env.forge(|c| c.max_uses = Some(1));
    for _ in 0..3 {
        assert_eq!(env.get("/crm/a", Some(&once)).await.status(), 503);
    }
    warden_test::gateway::open(&gate);
    let mut served = None;
    for _ in 0..200 {
        let status = env.get("/crm/a", Some(&once)).await.status();
        if status != 503 {
            served = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        served,
        Some(reqwest::StatusCode::OK),
        "the one-shot token was burnt by a 503"
    );
    assert_eq!(env.get("/crm/a", Some(&once)).await.status(), 401);
}

#[tokio::test]
async fn the_gateway_reports_which_principals_it_served_for_access_reviews() {
    let (env, _) = Env::start(Options::default()).await;
    let token = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
    let served_at = env.now();
    let mut reported_until = 0;
    env.gateway.report_use(&mut reported_until).await;
    assert_eq!(reported_until, served_at);
    let tenants: Value = env
        .http
        .get(format!("{}/admin/v1/tenants", env.authority_url))
        .bearer_auth(crate::support::ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let report: Value = env
        .http
        .get(format!(
            "{}/admin/v1/tenants/{}/access-report",
            env.authority_url,
            tenants[0]["id"].as_str().unwrap()
        ))
        .bearer_auth(crate::support::ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["principal"] == env.agent_id.as_str())
        .unwrap();
    assert_eq!(row["last_used_at"], served_at);
}
