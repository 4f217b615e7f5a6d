//! Revocation reaches the gateway through the authority's stream: principals, tokens and
//! whole delegation chains; a stale view fails closed; a reconnecting gateway misses nothing.

use serde_json::{json, Value};
use warden_core::claims::Actor;
use warden_store::{NewRevocation, RevocationStore, RevocationTarget};

use crate::support::{eventually, metric, Env, Options};

async fn seq_of(env: &Env, path: &str, body: Value) -> i64 {
    let (status, answer) = env.admin_post(path, body).await;
    assert_eq!(status, 200, "{answer}");
    answer["seq"].as_i64().unwrap()
}

async fn reached(env: &Env, seq: i64) {
    assert!(
        eventually(|| env.gateway.revocations.cursor() >= seq).await,
        "revocation {seq} never reached the gateway"
    );
}

#[tokio::test]
async fn a_revoked_principal_is_refused_even_on_cache_hits() {
    let (env, _) = Env::start(Options::default()).await;
    let token = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);

    let seq = seq_of(
        &env,
        &format!("/principals/{}/revoke", env.agent_id),
        json!({}),
    )
    .await;
    reached(&env, seq).await;
    let res = env.get("/crm/a", Some(&token)).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("invalid_token") && challenge.contains("revoked"),
        "{challenge}"
    );

    // Once reinstated, tokens issued after the revocation work again.
    env.clock.advance(2);
    env.auth.reinstate(&env.agent_id).await;
    let fresh = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn a_revoked_jti_ends_that_token_only() {
    let (env, _) = Env::start(Options::default()).await;
    let doomed = env.forge(|_| {});
    let other = env.forge(|_| {});
    let jti = warden_core::jws::UnverifiedToken::parse(&doomed)
        .unwrap()
        .claims_unverified::<warden_core::AccessClaims>()
        .unwrap()
        .jti;
    let seq = seq_of(
        &env,
        "/tokens/revoke",
        json!({ "jti": jti, "reason": "leaked" }),
    )
    .await;
    reached(&env, seq).await;
    assert_eq!(env.get("/crm/a", Some(&doomed)).await.status(), 401);
    assert_eq!(env.get("/crm/a", Some(&other)).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_agent_ends_every_chain_it_appears_in() {
    let (env, _) = Env::start(Options::default()).await;
    let agent = env.agent_id.clone();
    let user = "usr_AAAAAAAAAAAAAAAAAAAAAA";
    // user → agent → sub-agent: the agent is the middle of a three-level chain.
    let sub_agent_token = env.forge(|c| {
        c.sub = user.into();
        c.act = Some(Actor {
            sub: "agt_BBBBBBBBBBBBBBBBBBBBBB".into(),
            act: Some(Box::new(Actor {
                sub: agent.clone(),
                act: None,
            })),
        });
    });
    let agent_token = env.forge(|c| {
        c.sub = user.into();
        c.act = Some(Actor {
            sub: agent.clone(),
            act: None,
        });
    });
    let own = env.forge(|_| {});
    let unrelated = env.forge(|c| {
        c.sub = user.into();
        c.act = Some(Actor {
            sub: "agt_CCCCCCCCCCCCCCCCCCCCCC".into(),
            act: None,
        });
    });
    for t in [&sub_agent_token, &agent_token, &own, &unrelated] {
        assert_eq!(env.get("/crm/a", Some(t)).await.status(), 200);
    }
    let seq = seq_of(&env, &format!("/principals/{agent}/revoke"), json!({})).await;
    reached(&env, seq).await;
    for t in [&sub_agent_token, &agent_token, &own] {
        assert_eq!(env.get("/crm/a", Some(t)).await.status(), 401);
    }
    assert_eq!(env.get("/crm/a", Some(&unrelated)).await.status(), 200);
}

#[tokio::test]
async fn a_stale_view_fails_closed_routes_and_says_so() {
    let (mut env, _) = Env::start(Options {
        extra_toml: "revocation_max_staleness_ms = 300",
        ..Options::default()
    })
    .await;
    let token = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
    assert_eq!(env.ops_get("/healthz").await.status(), 200);

    env.stop_authority();
    assert!(eventually(|| !env.gateway.revocations.is_fresh()).await);
    let res = env.get("/crm/a", Some(&token)).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    // A route configured to fail open keeps serving.
    assert_eq!(env.get("/open/a", Some(&token)).await.status(), 200);
    let health = env.ops_get("/healthz").await;
    assert_eq!(health.status(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "revocation_view_stale");
    assert_eq!(health["revocation"]["fresh"], false);
    let metrics = env.metrics().await;
    assert_eq!(
        metric(&metrics, "warden_gateway_revocation_view_fresh"),
        0.0
    );

    env.start_authority().await;
    assert!(eventually(|| env.gateway.revocations.is_fresh()).await);
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn a_gateway_reconnecting_after_an_authority_restart_misses_no_revocation() {
    let (mut env, _) = Env::start(Options::default()).await;
    let token = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
    let reconnects = env.gateway.revocations.reconnects();

    env.stop_authority();
    assert!(eventually(|| env.gateway.revocations.reconnects() > reconnects).await);
    // Written while this authority is down, as another replica would.
    let now = env.now();
    let appended = env
        .auth
        .store
        .append_revocation(&NewRevocation {
            target: RevocationTarget::Principal {
                principal: warden_core::PrincipalId::parse(&env.agent_id).unwrap(),
            },
            issued_before: now + 1,
            horizon: now + 1_000,
            reason: Some("written during the outage".into()),
            created_at: now,
        })
        .await
        .unwrap();
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);

    env.start_authority().await;
    reached(&env, appended.seq).await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 401);
}

#[tokio::test]
async fn a_honeytoken_is_refused_like_any_revoked_token_and_reported() {
    let (env, _) = Env::start(Options::default()).await;
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
    let tenant = tenants[0]["id"].as_str().unwrap();
    let (status, bait) = env
        .admin_post(
            &format!("/tenants/{tenant}/honeytokens"),
            json!({ "name": "billing-export", "scopes": "crm:contacts:read" }),
        )
        .await;
    assert_eq!(status, 201, "{bait}");
    let token = bait["access_token"].as_str().unwrap().to_owned();
    let principal = bait["principal"].as_str().unwrap().to_owned();
    let head = env.auth.authority.revocations.head();
    reached(&env, head).await;

    let res = env.get("/crm/a", Some(&token)).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("revoked") && !challenge.contains("honey"),
        "{challenge}"
    );
    let alerted = |n: usize| {
        env.audit
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.anomaly == Some("honeytoken") && e.sub.as_deref() == Some(&principal))
            .count()
            >= n
    };
    assert!(
        eventually(|| alerted(1)).await,
        "no honeytoken alert audited"
    );

    // Still reported once it has expired (a stolen bait is often tried late), whether the
    // gateway has seen it before or not.
    let (_, unseen) = env
        .admin_post(
            &format!("/tenants/{tenant}/honeytokens"),
            json!({ "name": "payroll-sync" }),
        )
        .await;
    let unseen_principal = unseen["principal"].as_str().unwrap().to_owned();
    reached(&env, env.auth.authority.revocations.head()).await;
    env.clock.advance(3_600);
    let res = env.get("/crm/a", Some(&token)).await;
    assert_eq!(res.status(), 401);
    assert!(
        eventually(|| alerted(2)).await,
        "expired honeytoken not reported"
    );
    let res = env
        .get("/crm/a", Some(unseen["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(res.status(), 401);
    let reported = || {
        env.audit.lock().unwrap().iter().any(|e| {
            e.anomaly == Some("honeytoken") && e.sub.as_deref() == Some(unseen_principal.as_str())
        })
    };
    assert!(
        eventually(reported).await,
        "an expired honeytoken never seen before is reported"
    );
}

#[tokio::test]
async fn a_disabled_tenant_s_live_tokens_are_refused_at_the_gateway() {
    let (env, _) = Env::start(Options::default()).await;
    let token = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
    let tenant = warden_core::jws::UnverifiedToken::parse(&token)
        .unwrap()
        .claims_unverified::<warden_core::AccessClaims>()
        .unwrap()
        .tenant;

    let (status, answer) = env
        .admin_post(&format!("/tenants/{tenant}/disable"), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    reached(&env, env.auth.authority.revocations.head()).await;
    let res = env.get("/crm/a", Some(&token)).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("invalid_token") && challenge.contains("disabled"),
        "{challenge}"
    );
}
