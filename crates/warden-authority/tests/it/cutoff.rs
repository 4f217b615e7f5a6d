//! Revocation cut-offs have the one-second resolution of `iat`. A token requested in the
//! second of a revocation must not be issued dead on arrival: it is stamped with the next
//! second and handed out once that second has come, or refused with a retryable answer. A
//! revoked principal gets no token at all until it is reinstated, so each case reinstates it
//! within the revocation's second, as an operator who rotated a leaked key at once would.

use std::time::Duration;

use reqwest::Method;

use crate::support::{claims_of, Harness};

#[tokio::test]
async fn a_token_requested_in_the_second_of_its_revocation_is_issued_alive() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let agent = h.agent("acme", "mailer", "email:send").await;
    let watcher = h.introspector("acme").await;
    let old = h.own_token(&agent).await;

    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/principals/{}/revoke", agent.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(!h.active(&watcher, &old).await);
    h.reinstate(&agent.id).await;

    // Still the revocation's second: the token is held, not issued dead.
    let request = h.post_as(
        &agent,
        "/oauth2/token",
        &[("grant_type", "client_credentials")],
        &[],
    );
    tokio::pin!(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut request)
            .await
            .is_err(),
        "a token was answered within the revocation's second"
    );
    h.clock.advance(1);
    let got = request.await;
    assert_eq!(got.0, 200, "{}", got.1);
    let token = got.1["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims.iat, h.now());
    assert_eq!(
        claims.exp - claims.iat,
        got.1["expires_in"].as_i64().unwrap()
    );
    assert!(h.active(&watcher, token).await, "issued dead on arrival");
}

#[tokio::test]
async fn when_the_second_never_comes_the_request_is_refused_retryably_not_issued_dead() {
    let h = Harness::start().await;
    h.tenant("acme").await;
    let agent = h.agent("acme", "mailer", "email:send").await;
    let (s, _) = h
        .admin(
            Method::POST,
            &format!("/principals/{}/revoke", agent.id),
            None,
        )
        .await;
    assert_eq!(s, 200);
    h.reinstate(&agent.id).await;
    // The test's clock stands still, so the next second never comes.
    let res = h
        .http
        .post(h.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &h.assertion(&agent)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");
    assert!(v.get("access_token").is_none());
}
