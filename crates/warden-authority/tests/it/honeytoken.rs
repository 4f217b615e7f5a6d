//! Honeytokens at the authority: their use at the token endpoint, in an exchange, at
//! introspection and at revocation is refused like any bad credential and raises a signed
//! alert naming the caller's address.

use std::time::Duration;

use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use warden_core::jws::UnverifiedToken;

use crate::support::{assert_oauth_error, Harness};

/// A webhook receiver; each body arrives on the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/alerts",
        post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, rx)
}

/// The next alert, verified as a Security Event Token signed by the authority.
async fn next_alert(h: &Harness, rx: &mut mpsc::UnboundedReceiver<String>) -> Value {
    let body = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an alert within 10 s")
        .unwrap();
    let parsed = UnverifiedToken::parse(&body).unwrap();
    let set: Value = parsed.claims_unverified().unwrap();
    assert_eq!(parsed.header().typ.as_deref(), Some("secevent+jwt"));
    // A SET has no audience to check: verify its signature against the published key.
    let kid = parsed.header().kid.clone().unwrap();
    let keys = h.jwks().await;
    let key = keys.get(&kid).expect("signed by a published key");
    assert!(
        warden_core::crypto::verify_strict_raw(
            &key.to_bytes(),
            body.rsplit_once('.').unwrap().0.as_bytes(),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body.rsplit_once('.').unwrap().1)
                .unwrap(),
        ),
        "alert signature"
    );
    assert_eq!(set["iss"], h.url.as_str());
    set["events"]["https://warden.dev/secevent/honeytoken-used"].clone()
}

#[tokio::test]
async fn every_use_of_a_honeytoken_is_refused_and_reported() {
    let (webhook, mut alerts) = receiver().await;
    let h = Harness::start_with(|c| c.alert_webhook = Some(webhook)).await;
    let t = h.tenant("acme").await;
    let (s, bait) = h
        .admin(
            Method::POST,
            &format!("/tenants/{t}/honeytokens"),
            Some(json!({ "name": "billing-export" })),
        )
        .await;
    assert_eq!(s, 201, "{bait}");
    let client_id = bait["client_id"].as_str().unwrap();
    let secret = bait["client_secret"].as_str().unwrap();
    let token = bait["access_token"].as_str().unwrap();
    assert!(client_id.starts_with("agt_") && secret.starts_with("wsec_"));

    // The token endpoint, with the bait secret.
    let basic = STANDARD.encode(format!("{client_id}:{secret}"));
    let got = h
        .post_form(
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            &[("authorization", &format!("Basic {basic}"))],
        )
        .await;
    assert_oauth_error(&got, 401, "invalid_client");
    let alert = next_alert(&h, &mut alerts).await;
    assert_eq!(alert["principal"], client_id);
    assert_eq!(alert["at"], "token_endpoint");
    assert_eq!(alert["severity"], "high");
    assert_eq!(alert["client_ip"], "127.0.0.1");

    // Introspection, by a legitimate resource server.
    let rs = h
        .agent(&t, "resource", "crm:contacts:read warden:introspect")
        .await;
    assert!(!h.active(&rs, token).await);
    let alert = next_alert(&h, &mut alerts).await;
    assert_eq!(alert["at"], "introspection");

    // Exchange: an agent trying to act with the bait.
    let got = h.exchange(&rs, token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert_eq!(next_alert(&h, &mut alerts).await["at"], "token_exchange");

    // Revocation.
    let got = h
        .post_as(&rs, "/oauth2/revoke", &[("token", token)], &[])
        .await;
    assert_eq!(got.0, 200);
    assert_eq!(next_alert(&h, &mut alerts).await["at"], "revocation");

    // The refusals read like any other: nothing says "honeytoken".
    assert!(!got.1.to_string().contains("honey"));
}

#[tokio::test]
async fn honeytoken_creation_validates_its_input() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let path = format!("/tenants/{t}/honeytokens");
    let (s, _) = h
        .admin(Method::POST, &path, Some(json!({ "name": "" })))
        .await;
    assert_eq!(s, 422);
    let (s, _) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({ "name": "x", "scopes": "not a::scope" })),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({ "name": "x", "extra": 1 })),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h
        .admin(
            Method::POST,
            "/tenants/nope/honeytokens",
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(s, 404);
}
