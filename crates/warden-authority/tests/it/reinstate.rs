//! Revoking a principal ends its live tokens and refuses it new ones, here and on every
//! replica, until it is reinstated — with a new key when the old one leaked.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use warden_authority::{router, server};
use warden_core::jwks::Jwk;
use warden_test::keys::{assertion, new_key, public_jwk};

use crate::support::{assert_oauth_error, audit_log, Agent, Harness};

async fn revoke(h: &Harness, id: &str, reason: &str) {
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/principals/{id}/revoke"),
            Some(json!({ "reason": reason })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

async fn show(h: &Harness, id: &str) -> Value {
    let (s, v) = h
        .admin(Method::GET, &format!("/principals/{id}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test]
async fn a_revoked_agent_gets_no_token_until_reinstated() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let agent = h.agent("acme", "mailer", "email:send").await;
    let watcher = h.introspector("acme").await;
    let live = h.own_token(&agent).await;

    revoke(&h, &agent.id, "key on a stolen laptop").await;
    assert!(!h.active(&watcher, &live).await);
    h.clock.advance(5);
    let got = h
        .token_with_assertion(&h.assertion(&agent), Some("email:send"))
        .await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(
        got.1["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        got.1
    );
    let shown = show(&h, &agent.id).await;
    assert_eq!(shown["revoked"]["reason"], "key on a stolen laptop");
    assert!(shown["revoked"]["at"].as_i64().is_some(), "{shown}");

    // Reinstated with its key: tokens again, but what the revocation ended stays ended.
    let (s, v) = h.reinstate_with(&agent.id, None).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("revoked").is_none(), "{v}");
    h.clock.advance(1);
    let fresh = h.own_token(&agent).await;
    assert!(h.active(&watcher, &fresh).await);
    assert!(!h.active(&watcher, &live).await);

    // Not revoked: nothing to reinstate.
    let (s, v) = h.reinstate_with(&agent.id, None).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["status"], 409);
}

#[tokio::test]
async fn reinstating_with_a_new_key_leaves_the_old_one_refused() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let agent = h.agent("acme", "mailer", "email:send").await;
    revoke(&h, &agent.id, "leaked").await;

    // Bad input changes nothing: an unknown field, a key that is no Ed25519 public key.
    let (s, v) = h
        .reinstate_with(&agent.id, Some(json!({ "public_key": {}, "x": 1 })))
        .await;
    assert_eq!(s, 400, "{v}");
    let bogus = json!({ "kty": "OKP", "crv": "Ed25519", "x": "AAAA" });
    let (s, v) = h
        .reinstate_with(&agent.id, Some(json!({ "public_key": bogus })))
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(show(&h, &agent.id).await["revoked"].is_object());

    let key = new_key();
    let jwk: Jwk = public_jwk(&key);
    let (s, v) = h
        .reinstate_with(&agent.id, Some(json!({ "public_key": jwk })))
        .await;
    assert_eq!(s, 200, "{v}");
    h.clock.advance(1);
    let old = h
        .token_with_assertion(&h.assertion(&agent), Some("email:send"))
        .await;
    assert_oauth_error(&old, 401, "invalid_client");
    let renewed = Agent {
        id: agent.id.clone(),
        key,
    };
    let got = h
        .token_with_assertion(&h.assertion(&renewed), Some("email:send"))
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
}

#[tokio::test]
async fn a_revoked_user_is_no_subject_for_an_exchange() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let user = h
        .agent_with(
            "acme",
            "ann",
            json!({ "kind": "user", "scopes": "email:send" }),
        )
        .await;
    let agent = h.agent("acme", "mailer", "email:send").await;
    h.grant(&user, &agent, "email:send").await;
    let user_token = h.own_token(&user).await;
    assert_eq!(h.exchange(&agent, &user_token, &[]).await.0, 200);

    revoke(&h, &user.id, "account compromised").await;
    let got = h.exchange(&agent, &user_token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    h.clock.advance(1);
    let got = h.token_with_assertion(&h.assertion(&user), None).await;
    assert_oauth_error(&got, 401, "invalid_client");
}

/// A second replica on the same store that has just served the agent (its client cache
/// warm) refuses it as soon as the first replica's revocation reaches it.
#[tokio::test]
async fn another_replica_refuses_the_revoked_agent_at_once() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let agent = h.agent("acme", "mailer", "email:send").await;
    let dir = tempfile::tempdir().unwrap();
    let replica = h.sibling(audit_log(dir.path())).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replica_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(
        listener,
        router(Arc::clone(&replica)),
        replica.config.limits.clone(),
        std::future::pending(),
    ));
    // The replica's issuer is the first one's: assertions name the shared token endpoint.
    let ask = || {
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
        ];
        let assertion = assertion(&agent.id, &agent.key, &h.token_endpoint(), h.now());
        let http = h.http.clone();
        let url = format!("{replica_url}/oauth2/token");
        async move {
            let mut form = form.to_vec();
            form.push(("client_assertion", &assertion));
            warden_test::http::post_form(&http, &url, &form, &[]).await
        }
    };
    assert_eq!(ask().await.0, 200, "the replica serves the agent first");

    revoke(&h, &agent.id, "quarantined").await;
    h.clock.advance(1);
    // Within 5 s, half the client cache's lifetime: the replica forgot the agent when the
    // revocation reached it, not when its cache entry aged out.
    assert!(
        warden_test::wait::eventually_async(|| async { ask().await.0 == 401 }).await,
        "the replica kept issuing to the revoked agent"
    );
    let got = ask().await;
    assert_oauth_error(&got, 401, "invalid_client");
}
