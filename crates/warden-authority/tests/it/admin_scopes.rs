//! The admin API under Warden's own rules: principals with `warden:` scopes in tokens for
//! `<issuer>/admin/v1`, each scope reaching exactly what it names, no escalation through
//! what a caller grants, gateways that can do a gateway's calls and nothing else, and every
//! change on record under the caller's name.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use warden_test::keys::{new_key, public_jwk};

use crate::support::{assert_oauth_error, Agent, Harness};

/// An administrator of `tenant` holding `scopes`, created with the break-glass token.
async fn administrator(h: &Harness, tenant: &str, name: &str, scopes: &str) -> Agent {
    h.agent_with(tenant, name, json!({ "kind": "service", "scopes": scopes }))
        .await
}

fn problem(got: &(u16, Value), status: u16, says: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    let detail = got.1["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(says), "`{detail}` does not say `{says}`");
}

#[tokio::test]
async fn a_tenant_admin_of_one_tenant_finds_nothing_of_another_and_changes_nothing_there() {
    let h = Harness::start().await;
    let a = h.tenant("acme").await;
    let b = h.tenant("globex").await;
    let theirs = h.agent(&b, "their-bot", "crm:read").await;
    let admin = administrator(&h, &a, "acme-admin", "warden:tenant:admin").await;
    let token = h.admin_token(&admin, "warden:tenant:admin").await;

    let (s, listed) = h.admin_as(&token, Method::GET, "/tenants", None).await;
    assert_eq!(s, 200, "{listed}");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);

    for (method, path, body) in [
        (Method::GET, format!("/tenants/{b}"), None),
        (Method::GET, "/tenants/globex".to_owned(), None),
        (Method::GET, format!("/tenants/{b}/principals"), None),
        (Method::GET, format!("/principals/{}", theirs.id), None),
        (
            Method::POST,
            format!("/tenants/{b}/principals"),
            Some(json!({ "kind": "agent", "name": "implant" })),
        ),
        (
            Method::POST,
            format!("/principals/{}/disable", theirs.id),
            None,
        ),
        (
            Method::POST,
            format!("/principals/{}/revoke", theirs.id),
            Some(json!({ "reason": "hostile takeover" })),
        ),
        (
            Method::PUT,
            format!("/principals/{}/scopes", theirs.id),
            Some(json!({ "scopes": "everything:write" })),
        ),
    ] {
        let got = h.admin_as(&token, method.clone(), &path, body).await;
        assert_eq!(got.0, 404, "{method} {path}: {}", got.1);
        assert_eq!(got.1["status"], 404);
    }
    // Nothing of globex changed.
    let (_, shown) = h
        .admin(Method::GET, &format!("/principals/{}", theirs.id), None)
        .await;
    assert_eq!(
        (shown["disabled"].as_bool(), shown["scopes"].as_str()),
        (Some(false), Some("crm:read"))
    );
    assert!(shown["revoked"].is_null(), "{shown}");
    let (_, principals) = h
        .admin(Method::GET, &format!("/tenants/{b}/principals"), None)
        .await;
    assert_eq!(principals.as_array().unwrap().len(), 1);

    // Its own tenant it administers.
    let (s, v) = h
        .admin_as(
            &token,
            Method::POST,
            &format!("/tenants/{a}/principals"),
            Some(json!({ "kind": "agent", "name": "bot", "scopes": "crm:read" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // But not the platform.
    let got = h
        .admin_as(
            &token,
            Method::POST,
            "/tenants",
            Some(json!({ "name": "initech" })),
        )
        .await;
    problem(&got, 403, "warden:admin");
    let got = h.admin_as(&token, Method::POST, "/keys/rotate", None).await;
    problem(&got, 403, "warden:admin");
}

#[tokio::test]
async fn no_caller_grants_a_power_it_does_not_hold() {
    let h = Harness::start().await;
    let a = h.tenant("acme").await;
    let admin = administrator(&h, &a, "acme-admin", "warden:tenant:admin").await;
    let token = h.admin_token(&admin, "warden:tenant:admin").await;
    let mine = h.agent(&a, "bot", "crm:read").await;
    let user = h
        .agent_with(
            &a,
            "ann",
            json!({ "kind": "user", "scopes": "warden:admin crm:read" }),
        )
        .await;

    for scopes in [
        "warden:admin",
        "warden:gateway",
        "*:*",
        "warden:*",
        "*:admin",
        "warden:console",
    ] {
        let got = h
            .admin_as(
                &token,
                Method::POST,
                &format!("/tenants/{a}/principals"),
                Some(json!({ "kind": "agent", "name": format!("x{}", scopes.len()), "scopes": scopes })),
            )
            .await;
        problem(&got, 403, "needs");
        let got = h
            .admin_as(
                &token,
                Method::PUT,
                &format!("/principals/{}/scopes", mine.id),
                Some(json!({ "scopes": scopes })),
            )
            .await;
        problem(&got, 403, "needs");
        let got = h
            .admin_as(
                &token,
                Method::POST,
                "/delegations",
                Some(json!({ "user": user.id, "agent": mine.id, "scopes": scopes })),
            )
            .await;
        problem(&got, 403, "needs");
    }
    let (_, shown) = h
        .admin(Method::GET, &format!("/principals/{}", mine.id), None)
        .await;
    assert_eq!(shown["scopes"], "crm:read");
    // What it holds, it may pass on.
    let (s, v) = h
        .admin_as(
            &token,
            Method::PUT,
            &format!("/principals/{}/scopes", mine.id),
            Some(json!({ "scopes": "crm:read warden:tenant:admin" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn a_gateway_token_does_a_gateways_calls_and_nothing_else() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let bot = h.agent(&t, "bot", "crm:read").await;
    let gw = h.enroll_gateway("edge-1").await;
    let token = h.admin_token(&gw, "warden:gateway").await;

    for (method, path, body) in [
        (
            Method::POST,
            "/tenants".to_owned(),
            Some(json!({ "name": "mine" })),
        ),
        (Method::GET, format!("/tenants/{t}/principals"), None),
        (Method::GET, format!("/principals/{}", bot.id), None),
        (
            Method::POST,
            format!("/tenants/{t}/principals"),
            Some(json!({ "kind": "agent", "name": "implant" })),
        ),
        (Method::POST, format!("/principals/{}/secret", bot.id), None),
        (Method::GET, "/keys".to_owned(), None),
        (
            Method::POST,
            "/tokens/revoke".to_owned(),
            Some(json!({ "jti": "x" })),
        ),
        (Method::GET, format!("/tenants/{t}/access-report"), None),
    ] {
        let got = h.admin_as(&token, method.clone(), &path, body).await;
        assert_eq!(got.0, 403, "{method} {path}: {}", got.1);
    }
    // A gateway's own calls.
    let (s, v) = h.admin_as(&token, Method::GET, "/tenants/acme", None).await;
    assert_eq!((s, v["id"].as_str()), (200, Some(t.as_str())), "{v}");
    let key = new_key();
    let (s, v) = h
        .admin_as(
            &token,
            Method::PUT,
            "/gateway-keys/gw-edge1key",
            Some(json!({ "gateway": "edge-1", "public_key": public_jwk(&key), "ttl_secs": 600 })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = h
        .admin_as(
            &token,
            Method::POST,
            "/activity",
            Some(json!({ "used": { bot.id.clone(): h.now() } })),
        )
        .await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    // A quarantine revokes the misbehaving principal.
    let (s, v) = h
        .admin_as(
            &token,
            Method::POST,
            &format!("/principals/{}/revoke", bot.id),
            Some(json!({ "reason": "quarantined by edge-1" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn admin_tokens_of_the_wrong_audience_expired_revoked_or_powerless_are_refused() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let admin = administrator(&h, &t, "root", "warden:admin crm:read").await;

    // A token for the default audience carries the scope but not the audience.
    let elsewhere = crate::support::issued(
        &h.token_with_assertion(&h.assertion(&admin), Some("warden:admin"))
            .await,
    );
    problem(
        &h.admin_as(&elsewhere, Method::GET, "/tenants", None).await,
        401,
        "audience",
    );
    // Powerless: the admin audience with no `warden:` scope in the token.
    let powerless = h.admin_token(&admin, "crm:read").await;
    problem(
        &h.admin_as(&powerless, Method::GET, "/tenants", None).await,
        403,
        "no `warden:` administration scope",
    );
    // A principal holding no power cannot even ask for the admin audience.
    let bot = h.agent(&t, "bot", "crm:read").await;
    let got = h.admin_token_request(&bot, "crm:read").await;
    assert_oauth_error(&got, 400, "invalid_target");
    // Garbage.
    problem(
        &h.admin_as("wadm_not-the-token", Method::GET, "/tenants", None)
            .await,
        401,
        "admin token refused",
    );

    let token = h.admin_token(&admin, "warden:admin").await;
    let (s, _) = h.admin_as(&token, Method::GET, "/tenants", None).await;
    assert_eq!(s, 200);
    // Expired.
    h.clock.advance(24 * 3600);
    problem(
        &h.admin_as(&token, Method::GET, "/tenants", None).await,
        401,
        "expired",
    );
    // Revoked with its principal.
    let token = h.admin_token(&admin, "warden:admin").await;
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/principals/{}/revoke", admin.id),
            Some(json!({ "reason": "left the company" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    problem(
        &h.admin_as(
            &token,
            Method::POST,
            "/tenants",
            Some(json!({ "name": "x" })),
        )
        .await,
        401,
        "revoked",
    );
    let (_, listed) = h.admin(Method::GET, "/tenants", None).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "nothing was created: {listed}"
    );
}

#[tokio::test]
async fn a_narrow_scope_reaches_only_what_it_names() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let bot = h.agent(&t, "bot", "crm:read").await;
    let revoker = administrator(&h, &t, "oncall", "warden:revoke").await;
    let auditor = administrator(&h, &t, "auditor", "warden:audit:read").await;
    let revoke = h.admin_token(&revoker, "warden:revoke").await;
    let audit = h.admin_token(&auditor, "warden:audit:read").await;

    problem(
        &h.admin_as(
            &revoke,
            Method::POST,
            &format!("/principals/{}/disable", bot.id),
            None,
        )
        .await,
        403,
        "warden:tenant:admin",
    );
    problem(
        &h.admin_as(
            &revoke,
            Method::GET,
            &format!("/tenants/{t}/access-report"),
            None,
        )
        .await,
        403,
        "warden:audit:read",
    );
    let (s, v) = h
        .admin_as(
            &audit,
            Method::GET,
            &format!("/tenants/{t}/access-report"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    problem(
        &h.admin_as(
            &audit,
            Method::POST,
            &format!("/principals/{}/revoke", bot.id),
            None,
        )
        .await,
        403,
        "warden:revoke",
    );
    let (s, v) = h
        .admin_as(
            &revoke,
            Method::POST,
            &format!("/principals/{}/revoke", bot.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn every_change_is_on_record_under_its_callers_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::support::audit_log(dir.path());
    let h = Harness::start_audited(log).await;
    let t = h.tenant("acme").await;
    let admin = administrator(&h, &t, "acme-admin", "warden:tenant:admin").await;
    let token = h.admin_token(&admin, "warden:tenant:admin").await;
    let (s, v) = h
        .admin_as(
            &token,
            Method::POST,
            &format!("/tenants/{t}/principals"),
            Some(json!({ "kind": "agent", "name": "bot" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let entries: Vec<Value> = std::fs::read_to_string(dir.path().join("audit.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("entry").cloned())
        .filter(|e| e["kind"] == "lifecycle")
        .collect();
    let actors: Vec<&str> = entries
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    // The tenant and the administrator were made with break-glass; the agent by the admin.
    assert_eq!(actors, ["break-glass", "break-glass", admin.id.as_str()]);
}

async fn register(h: &Harness, token: &str, key: &warden_core::SigningKey) -> (u16, Value) {
    let body = json!({ "gateway": "edge", "public_key": public_jwk(key), "ttl_secs": 600 });
    h.admin_as(token, Method::PUT, "/gateway-keys/gw-edge1key", Some(body))
        .await
}

#[tokio::test]
async fn a_gateways_key_is_its_principals_and_goes_with_it() {
    let h = Harness::start().await;
    let edge = h.enroll_gateway("edge-1").await;
    let other = h.enroll_gateway("edge-2").await;
    let token = h.admin_token(&edge, "warden:gateway").await;
    let key = new_key();
    assert_eq!(register(&h, &token, &key).await.0, 200);
    let published = |jwks: warden_core::KeySet| jwks.get("gw-edge1key").is_some();
    assert!(published(h.jwks().await));
    // Another gateway cannot take the kid over, with its key or even the same one.
    let theirs = h.admin_token(&other, "warden:gateway").await;
    let other_key = new_key();
    assert_eq!(register(&h, &theirs, &other_key).await.0, 409);
    assert_eq!(register(&h, &theirs, &key).await.0, 409);
    // Enrolling a second gateway of the same name is refused.
    let (s, v) = h
        .admin_post(
            "/gateways",
            json!({ "name": "edge-1", "public_key": public_jwk(&new_key()) }),
        )
        .await;
    assert_eq!(s, 409, "{v}");

    // Disabled, its key leaves the JWKS and its stream ends.
    let stream = h
        .http
        .get(format!("{}/revocations/stream", h.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/principals/{}/disable", edge.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(!published(h.jwks().await));
    let mut stream = stream;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.chunk().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the disabled gateway's stream did not end");
    // And it is no gateway any more.
    let got = h.admin_token_request(&edge, "warden:gateway").await;
    assert_oauth_error(&got, 401, "invalid_client");
}

#[tokio::test]
async fn the_revocation_stream_is_for_gateways() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let admin = administrator(&h, &t, "acme-admin", "warden:tenant:admin").await;
    let token = h.admin_token(&admin, "warden:tenant:admin").await;
    let res = h
        .http
        .get(format!("{}/revocations/stream", h.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = h
        .http
        .get(format!("{}/revocations/stream", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_system_tenant_is_warden_s_own() {
    let h = Harness::start().await;
    let got = h
        .admin_post("/tenants", json!({ "name": "warden-system" }))
        .await;
    problem(&got, 422, "reserved");
    h.enroll_gateway("edge-1").await;
    let t = h.tenant("acme").await;
    let admin = administrator(&h, &t, "acme-admin", "warden:tenant:admin").await;
    let token = h.admin_token(&admin, "warden:tenant:admin").await;
    let got = h
        .admin_as(
            &token,
            Method::GET,
            "/tenants/warden-system/principals",
            None,
        )
        .await;
    assert_eq!(got.0, 404, "{}", got.1);
}
