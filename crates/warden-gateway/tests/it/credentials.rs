//! A gateway that holds no admin token: enrolled as a service principal, it runs on its own
//! credentials — registers its key, confirms its routes' tenants, follows the revocation
//! stream — and loses its published key with its principal.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use warden_api::client::Auth;
use warden_test::authority::TestAuthority;
use warden_test::gateway::{launch_as, MemoryAudit};

use crate::support::eventually;

#[tokio::test]
async fn a_gateway_with_only_its_credentials_serves_and_applies_revocations() {
    let auth = TestAuthority::start_with(|c| {
        c.revocation_heartbeat = std::time::Duration::from_millis(100);
    })
    .await;
    let upstream = warden_test::upstream::echo().await;
    let tenant = auth.tenant("acme").await;
    let agent = auth.agent(&tenant, "bot", "crm:contacts:read").await;
    let edge = auth.enroll_gateway("edge-1").await;
    let toml = format!(
        r#"
[gateway]
authority = "{}"
[[gateway.route]]
prefix = "/crm/"
upstream = "{upstream}"
audience = "crm"
tenant = "acme"
[gateway.route.scopes]
GET = "crm:contacts:read"
"#,
        auth.url
    );
    let writer = MemoryAudit {
        events: Arc::default(),
        gate: warden_test::gateway::gate(true),
    };
    let credentials = Auth::Principal {
        credentials: Box::new(auth.credentials(&edge)),
        scope: Some("warden:gateway".into()),
    };
    let warden_test::gateway::Served {
        url,
        ops_url,
        gateway,
    } = launch_as(
        &toml,
        "edge-1",
        Arc::clone(&auth.clock) as _,
        Box::new(writer),
        credentials,
    )
    .await
    .unwrap();
    assert_eq!(gateway.authority.principal(), Some(edge.id.as_str()));
    assert!(auth.jwks().await.get(gateway.key_id()).is_some());

    let token = auth.token(&agent, "crm:contacts:read").await;
    let get = || {
        auth.http
            .get(format!("{url}/crm/a"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);

    let (s, v) = auth
        .admin(
            Method::POST,
            &format!("/principals/{}/revoke", agent.id),
            Some(json!({ "reason": "test" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let seq = v["seq"].as_i64().unwrap();
    assert!(eventually(|| gateway.revocations.cursor() >= seq).await);
    assert_eq!(get().await.unwrap().status(), 401);

    // Holding no break-glass token, its admin surface takes the authority's admin tokens:
    // `warden:admin`, and nothing narrower.
    let root = auth
        .agent_with(
            &tenant,
            "root",
            json!({ "kind": "service", "scopes": "warden:admin warden:tenant:admin" }),
        )
        .await;
    let restrictions = |token: String| {
        auth.http
            .get(format!("{ops_url}/_warden/restrictions"))
            .bearer_auth(token)
            .send()
    };
    let admin = auth.admin_token(&root, "warden:admin").await;
    assert_eq!(restrictions(admin).await.unwrap().status(), 200);
    let narrower = auth.admin_token(&root, "warden:tenant:admin").await;
    assert_eq!(restrictions(narrower).await.unwrap().status(), 401);
    assert_eq!(restrictions(token.clone()).await.unwrap().status(), 401);

    // The gateway's published key goes with its principal.
    let (s, v) = auth
        .admin(
            Method::POST,
            &format!("/principals/{}/disable", edge.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(auth.jwks().await.get(gateway.key_id()).is_none());
}

#[tokio::test]
async fn a_gateway_whose_credentials_are_refused_does_not_start() {
    let auth = TestAuthority::start().await;
    let edge = auth.enroll_gateway("edge-1").await;
    let (s, v) = auth
        .admin(
            Method::POST,
            &format!("/principals/{}/disable", edge.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let toml = format!("[gateway]\nauthority = \"{}\"\n", auth.url);
    let writer = MemoryAudit {
        events: Arc::default(),
        gate: warden_test::gateway::gate(true),
    };
    let credentials = Auth::Principal {
        credentials: Box::new(auth.credentials(&edge)),
        scope: Some("warden:gateway".into()),
    };
    let refused = launch_as(
        &toml,
        "edge-1",
        Arc::clone(&auth.clock) as _,
        Box::new(writer),
        credentials,
    )
    .await
    .err()
    .expect("a disabled gateway started");
    assert!(refused.to_string().contains("disabled"), "{refused}");
}
