//! The lifecycle API: admin authentication, strict input, idempotency.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use warden_core::crypto::sha256;
use warden_store::prelude::*;

use crate::support::Harness;

#[track_caller]
fn assert_problem(status: u16, body: &Value, want: u16) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["status"], want, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn admin_token_is_required() {
    let h = Harness::start().await;
    let url = format!("{}/admin/v1/tenants", h.url);
    let res = h.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = h
        .http
        .post(&url)
        .bearer_auth("wadm_guess")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Nothing was created by the refused call.
    assert!(h.store.list_tenants().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_json_and_values_are_refused_with_problem_json() {
    let h = Harness::start().await;
    let post = |body: &'static str, ct: &'static str| {
        h.http
            .post(format!("{}/admin/v1/tenants", h.url))
            .bearer_auth(crate::support::ADMIN)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for (body, ct, want) in [
        ("{\"name\": ", "application/json", 400),
        ("[]", "application/json", 400),
        (
            "{\"name\": \"a\", \"admin\": true}",
            "application/json",
            400,
        ),
        ("{\"name\": 7}", "application/json", 400),
        ("{\"name\": \"a/b\"}", "application/json", 422),
        ("{\"name\": \"\"}", "application/json", 422),
        ("{\"name\": \"a\"}", "text/plain", 415),
    ] {
        let res = post(body, ct).await.unwrap();
        let status = res.status().as_u16();
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_problem(status, &res.json().await.unwrap(), want);
    }
    assert!(h.store.list_tenants().await.unwrap().is_empty());

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(70 * 1024));
    let res = h
        .http
        .post(format!("{}/admin/v1/tenants", h.url))
        .bearer_auth(crate::support::ADMIN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn principal_creation_validates_everything_before_writing() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let path = format!("/tenants/{t}/principals");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let small_order =
        json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(identity) });
    let private = json!({ "kty": "OKP", "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A" });
    let rsa = json!({ "kty": "RSA", "crv": "", "x": "", "n": "abc", "e": "AQAB" });
    for (body, want) in [
        (json!({ "kind": "robot", "name": "a" }), 422),
        (
            json!({ "kind": "agent", "name": "a", "scopes": "crm::read" }),
            422,
        ),
        (
            json!({ "kind": "agent", "name": "a", "public_key": small_order }),
            422,
        ),
        (
            json!({ "kind": "agent", "name": "a", "public_key": private }),
            422,
        ),
        (
            json!({ "kind": "agent", "name": "a", "public_key": rsa }),
            422,
        ),
        (
            json!({ "kind": "agent", "name": "a", "owner": "usr_AAAAAAAAAAAAAAAAAAAAAA" }),
            422,
        ),
        (
            json!({ "kind": "agent", "name": "a", "ceiling": "x:read" }),
            400,
        ),
    ] {
        let (s, v) = h.admin(Method::POST, &path, Some(body.clone())).await;
        assert_problem(s, &v, want);
        if body.get("public_key") == Some(&small_order) {
            assert!(v["detail"].as_str().unwrap().contains("small order"), "{v}");
        }
    }
    assert!(h
        .store
        .list_principals(&t.parse().unwrap())
        .await
        .unwrap()
        .is_empty());

    // An owner must be a user of the same tenant.
    let (_, user) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({ "kind": "user", "name": "alice" })),
        )
        .await;
    let (s, agent) = h
        .admin(
            Method::POST,
            &path,
            Some(
                json!({ "kind": "agent", "name": "bot", "owner": user["id"], "scopes": "x:read" }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{agent}");
    assert_eq!(agent["owner"], user["id"]);
    let (s, v) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({ "kind": "agent", "name": "bot2", "owner": agent["id"] })),
        )
        .await;
    assert_problem(s, &v, 422);
    let (s, v) = h
        .admin(
            Method::POST,
            &path,
            Some(json!({ "kind": "user", "name": "alice" })),
        )
        .await;
    assert_problem(s, &v, 409);

    // Tenants are addressable by name too; unknown ones are 404.
    let (s, v) = h.admin(Method::GET, "/tenants/acme/principals", None).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (s, v) = h.admin(Method::GET, "/tenants/nope/principals", None).await;
    assert_problem(s, &v, 404);
    let (s, v) = h
        .admin(
            Method::PUT,
            "/principals/agt_AAAAAAAAAAAAAAAAAAAAAA/scopes",
            Some(json!({ "scopes": "x:read" })),
        )
        .await;
    assert_problem(s, &v, 404);
}

#[tokio::test]
async fn scope_ceiling_can_be_replaced() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h
        .agent(&t, "a", "crm:contacts:read crm:contacts:write")
        .await;
    let (s, v) = h
        .admin(
            Method::PUT,
            &format!("/principals/{}/scopes", a.id),
            Some(json!({ "scopes": "crm:contacts:read" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scopes"], "crm:contacts:read");
    let got = h
        .token_with_assertion(&h.assertion(&a), Some("crm:contacts:write"))
        .await;
    crate::support::assert_oauth_error(&got, 400, "invalid_scope");
}

async fn post_with_key(h: &Harness, key: &str, body: &Value) -> (u16, Value, bool) {
    let res = h
        .http
        .post(format!("{}/admin/v1/tenants", h.url))
        .bearer_auth(crate::support::ADMIN)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = res.headers().contains_key("idempotent-replayed");
    (res.status().as_u16(), res.json().await.unwrap(), replayed)
}

#[tokio::test]
async fn idempotency_key_replays_refuses_mismatch_and_in_flight() {
    let h = Harness::start().await;
    let body = json!({ "name": "acme" });
    let (s1, first, r1) = post_with_key(&h, "key-1", &body).await;
    assert_eq!((s1, r1), (201, false));
    let (s2, second, r2) = post_with_key(&h, "key-1", &body).await;
    assert_eq!((s2, r2), (201, true));
    assert_eq!(
        first, second,
        "the first answer is replayed, not a second tenant"
    );
    assert_eq!(h.store.list_tenants().await.unwrap().len(), 1);

    let (s, v, _) = post_with_key(&h, "key-1", &json!({ "name": "other" })).await;
    assert_problem(s, &v, 422);
    assert_eq!(h.store.list_tenants().await.unwrap().len(), 1);

    // A failed call's answer (here 409, the name is taken) is replayed as well.
    let (s, _, _) = post_with_key(&h, "key-2", &body).await;
    assert_eq!(s, 409);
    let (s, _, replayed) = post_with_key(&h, "key-2", &body).await;
    assert_eq!((s, replayed), (409, true));

    // A duplicate that arrives while the first is still being processed: the reservation is
    // taken exactly as the middleware takes it, then the duplicate is sent.
    let inflight = json!({ "name": "slow" });
    let fingerprint = format!(
        "POST /admin/v1/tenants\n{}",
        serde_json::to_string(&inflight).unwrap()
    );
    let hash = URL_SAFE_NO_PAD.encode(sha256(fingerprint.as_bytes()));
    h.store
        // Keys are the caller's own: stored under the caller's name.
        .idempotency_begin("break-glass key-3", &hash, h.now(), 60)
        .await
        .unwrap();
    let (s, v, _) = post_with_key(&h, "key-3", &inflight).await;
    assert_problem(s, &v, 409);
    assert!(h.store.tenant_by_name("slow").await.unwrap().is_none());

    // Keys are forgotten after 24 h.
    h.clock.advance(24 * 3600 + 1);
    h.authority.maintain().await;
    let (s, _, replayed) = post_with_key(&h, "key-1", &json!({ "name": "fresh" })).await;
    assert_eq!((s, replayed), (201, false));

    let (s, v, _) = post_with_key(&h, "", &body).await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn concurrent_duplicates_apply_once() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let body = json!({ "kind": "agent", "name": "twin", "scopes": "x:read" });
    let sends = (0..8).map(|_| {
        h.http
            .post(format!("{}/admin/v1/tenants/{t}/principals", h.url))
            .bearer_auth(crate::support::ADMIN)
            .header("idempotency-key", "same")
            .json(&body)
            .send()
    });
    let results = futures_join_all(sends).await;
    let mut ids = std::collections::HashSet::new();
    for r in results {
        let r = r.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        match status {
            201 => {
                ids.insert(v["id"].as_str().unwrap().to_owned());
            }
            409 => {}
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same principal");
    assert_eq!(
        h.store
            .list_principals(&t.parse().unwrap())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn futures_join_all<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_body_cut_short_is_a_400_of_its_own_everywhere_in_the_api() {
    let h = Harness::start().await;
    let reason = "request body ended before its declared length";
    let head = |path: &str, extra: &str| {
        format!(
            "POST /admin/v1{path} HTTP/1.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000{extra}",
            crate::support::ADMIN
        )
    };
    for (path, extra) in [
        // A JSON body, read by the endpoint …
        ("/tenants", ""),
        // … or first by the idempotency layer, which fingerprints it …
        ("/tenants", "\r\nIdempotency-Key: cut-1"),
        // … or an optional body, read before anything is looked up.
        ("/delegations/dlg_AAAAAAAAAAAAAAAAAAAAAA/revoke", ""),
    ] {
        let (status, body) =
            crate::support::send_cut_short(&h.url, &head(path, extra), b"{\"name\": \"a").await;
        assert_problem(status, &body, 400);
        assert_eq!(body["detail"], reason, "{path}{extra}: {body}");
    }
    assert!(h.store.list_tenants().await.unwrap().is_empty());
    // The key was not spent on a request that never arrived whole.
    let (s, _, replayed) = post_with_key(&h, "cut-1", &json!({ "name": "acme" })).await;
    assert_eq!((s, replayed), (201, false));
}

#[tokio::test]
async fn names_a_url_would_rewrite_are_refused_at_creation() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let refused = [
        ".", "..", "...", " acme", "acme ", "acme.", ".acme", "-acme", "acme-", "_acme", "@acme",
        "a/b", "a%2eb", "",
    ];
    let honeytokens = format!("/tenants/{t}/honeytokens");
    let principals = format!("/tenants/{t}/principals");
    for name in refused {
        for (method, path, body) in [
            (Method::POST, "/tenants", json!({ "name": name })),
            (
                Method::POST,
                principals.as_str(),
                json!({ "kind": "agent", "name": name }),
            ),
            (Method::POST, honeytokens.as_str(), json!({ "name": name })),
        ] {
            let (s, v) = h.admin(method, path, Some(body)).await;
            assert_problem(s, &v, 422);
            let detail = v["detail"].as_str().unwrap();
            assert!(
                detail.contains("begins and ends with a letter or digit"),
                "{path} `{name}`: {v}"
            );
        }
        let (s, v) = h
            .admin(
                Method::PUT,
                "/gateway-keys/gw-named-test",
                Some(json!({
                    "gateway": name,
                    "public_key": warden_core::jwks::Jwk::from_public_key(
                        &warden_core::SigningKey::generate(&mut rand_core::OsRng).public_key(),
                        None,
                    ),
                    "ttl_secs": 60,
                })),
            )
            .await;
        assert_problem(s, &v, 422);
    }
    assert_eq!(h.store.list_tenants().await.unwrap().len(), 1);
    assert!(h
        .store
        .list_principals(&t.parse().unwrap())
        .await
        .unwrap()
        .is_empty());

    // Dots, spaces and the rest inside a name are fine, and the name reaches its tenant.
    let name = "acme corp.eu_2@x-y";
    let id = h.tenant(name).await;
    let (s, v) = h
        .admin(Method::GET, "/tenants/acme%20corp.eu_2%40x-y", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["name"].as_str()),
        (Some(id.as_str()), Some(name))
    );
    let (s, v) = h
        .admin(
            Method::POST,
            "/tenants/acme%20corp.eu_2%40x-y/principals",
            Some(json!({ "kind": "agent", "name": "a.b c" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tenant"], id.as_str());
}
