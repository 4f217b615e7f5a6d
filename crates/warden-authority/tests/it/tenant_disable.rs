//! Disabling a tenant ends its live tokens everywhere, pushed like a principal's revocation;
//! enabling it restores issuance only.

use std::time::Duration;

use reqwest::Method;

use crate::support::{assert_oauth_error, Harness, SseReader, ADMIN};

#[tokio::test]
async fn disabling_a_tenant_ends_its_live_tokens_everywhere_and_enabling_restores_issuance_only() {
    let h = Harness::start().await;
    let acme = h.tenant("acme").await;
    let other = h.tenant("other").await;
    let agent = h.agent(&acme, "mailer", "email:send").await;
    let user = h.agent(&acme, "helper", "email:send").await;
    let bystander = h.agent(&other, "mailer", "email:send").await;
    let watcher = h.introspector(&acme).await;
    let other_watcher = h.introspector(&other).await;
    let live = h.own_token(&agent).await;
    let also_live = h.own_token(&user).await;
    let unrelated = h.own_token(&bystander).await;

    let res = tokio::time::timeout(
        Duration::from_secs(5),
        h.http
            .get(format!("{}/revocations/stream", h.url))
            .bearer_auth(ADMIN)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    let mut stream = SseReader::new(res);
    assert_eq!(stream.next().await.event, "heartbeat");

    let (s, v) = h
        .admin(Method::POST, &format!("/tenants/{acme}/disable"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["disabled"], true);

    // Pushed to every subscriber, as a principal's revocation is.
    let m = stream.next_of("revocation").await;
    let event = m.json();
    assert_eq!(event["kind"], "tenant", "{event}");
    assert_eq!(event["tenant"], acme.as_str());
    assert_eq!(event["reason"], "tenant disabled");

    // Every live token of the tenant is dead, whoever holds it; other tenants' are not.
    // (The watcher's own tenant is disabled too: it authenticates no more, so the other
    // tenant's watcher and the store's view answer for it.)
    assert!(h
        .authority
        .revocations
        .check(&crate::support::claims_of(&live))
        .is_err());
    assert!(h
        .authority
        .revocations
        .check(&crate::support::claims_of(&also_live))
        .is_err());
    assert!(h.active(&other_watcher, &unrelated).await);
    let got = h
        .post_as(&watcher, "/oauth2/introspect", &[("token", &live)], &[])
        .await;
    assert_eq!(
        got.0, 401,
        "a disabled tenant's client cannot authenticate: {}",
        got.1
    );
    assert_oauth_error(
        &h.post_as(
            &agent,
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            &[],
        )
        .await,
        401,
        "invalid_client",
    );

    // Enabling restores issuance, not the tokens the disable ended.
    h.clock.advance(1);
    let (s, v) = h
        .admin(Method::POST, &format!("/tenants/{acme}/enable"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["disabled"], false);
    let fresh = h.own_token(&agent).await;
    assert!(h.active(&watcher, &fresh).await);
    assert!(!h.active(&watcher, &live).await, "the old token stays dead");
    assert!(!h.active(&watcher, &also_live).await);
}
