//! The token endpoint: the happy paths, and each attack on client authentication.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand_core::OsRng;
use reqwest::Method;
use serde_json::{json, Value};
use warden_core::claims::Audience;
use warden_core::jws::{self, OutHeader};
use warden_core::token::verify_access_token;
use warden_core::{AccessClaims, SigningKey, Validation};

use crate::support::{assert_oauth_error, Harness};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_issues_a_verifiable_token() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "mailer", "crm:*:read email:send").await;
    let got = h
        .token_with_assertion(&h.assertion(&a), Some("crm:contacts:read"))
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["token_type"], "Bearer");
    assert_eq!(got.1["expires_in"], 900);
    assert_eq!(got.1["scope"], "crm:contacts:read");

    let token = got.1["access_token"].as_str().unwrap();
    let v = Validation::access_token(&h.url, vec!["warden".into()]);
    let claims: AccessClaims = verify_access_token(token, &h.jwks().await, &v, h.now())
        .unwrap()
        .into_claims();
    assert_eq!(claims.sub, a.id);
    assert_eq!(claims.client_id, a.id);
    assert_eq!(claims.tenant, t);
    assert_eq!(claims.scope, "crm:contacts:read");
    assert_eq!(claims.exp - claims.iat, 900);
    assert_eq!(claims.aud, Audience::One("warden".into()));

    // No scope asked: the whole ceiling.
    let all = h.token_with_assertion(&h.assertion(&a), None).await;
    assert_eq!(all.1["scope"], "crm:*:read email:send");
}

#[tokio::test]
async fn openid_client_style_assertion_is_accepted() {
    // openid-client signs with `alg: Ed25519` (RFC 9864) and `aud` = the issuer.
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "node", "crm:contacts:read").await;
    let mut c = h.assertion_claims(&a);
    c.aud = Audience::Many(vec![h.url.clone()]);
    let header = json!({ "alg": "Ed25519", "typ": "JWT" });
    let signing_input = format!(
        "{}.{}",
        b64(&header),
        b64(&serde_json::to_value(&c).unwrap())
    );
    let sig = URL_SAFE_NO_PAD.encode(a.key.sign(signing_input.as_bytes()));
    let got = h
        .token_with_assertion(&format!("{signing_input}.{sig}"), None)
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
}

#[tokio::test]
async fn scope_outside_the_ceiling_is_invalid_scope() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "mailer", "crm:contacts:read").await;
    let got = h
        .token_with_assertion(
            &h.assertion(&a),
            Some("crm:contacts:read crm:contacts:delete"),
        )
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("crm:contacts:delete"));
    // A wildcard is wider than the concrete ceiling.
    let got = h
        .token_with_assertion(&h.assertion(&a), Some("crm:*:read"))
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");
    let got = h
        .token_with_assertion(&h.assertion(&a), Some("crm::read"))
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");
}

#[tokio::test]
async fn resource_indicator_sets_the_audience_only_when_allowed() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h
        .agent_with(
            &t,
            "crm-agent",
            json!({ "scopes": "crm:contacts:read", "audiences": ["https://crm.example"] }),
        )
        .await;
    let assertion = h.assertion(&a);
    let got = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("resource", "https://crm.example"),
        ])
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    let v = Validation::access_token(&h.url, vec!["https://crm.example".into()]);
    assert!(verify_access_token(
        got.1["access_token"].as_str().unwrap(),
        &h.jwks().await,
        &v,
        h.now()
    )
    .is_ok());

    let assertion = h.assertion(&a);
    let got = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("resource", "https://payroll.example"),
        ])
        .await;
    assert_oauth_error(&got, 400, "invalid_target");
}

#[tokio::test]
async fn lifetime_never_exceeds_the_tenant_ceiling() {
    let h = Harness::start().await;
    let (s, v) = h
        .admin(
            Method::POST,
            "/tenants",
            Some(json!({ "name": "short", "max_token_ttl_secs": 120 })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let a = h.agent(v["id"].as_str().unwrap(), "a", "x:read").await;
    let got = h.token_with_assertion(&h.assertion(&a), None).await;
    assert_eq!(got.1["expires_in"], 120);
    let (s, _) = h
        .admin(
            Method::POST,
            "/tenants",
            Some(json!({ "name": "long", "max_token_ttl_secs": 3600 })),
        )
        .await;
    assert_eq!(s, 422);
}

/// A header of our choosing over the agent's real claims, signed with `sign`.
fn forged(
    h: &Harness,
    a: &crate::support::Agent,
    header: Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let input = format!(
        "{}.{}",
        b64(&header),
        b64(&serde_json::to_value(h.assertion_claims(a)).unwrap())
    );
    let sig = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
    format!("{input}.{sig}")
}

#[tokio::test]
async fn algorithm_attacks_are_invalid_client() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "victim", "crm:contacts:read").await;

    let none = forged(&h, &a, json!({ "alg": "none" }), |_| Vec::new());
    assert_oauth_error(
        &h.token_with_assertion(&none, None).await,
        401,
        "invalid_client",
    );

    // The classic confusion: HMAC keyed with the public key bytes everyone can read.
    let public = a.key.public_key().to_bytes();
    let hs256 = forged(&h, &a, json!({ "alg": "HS256", "typ": "JWT" }), |m| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&public).unwrap();
        mac.update(m);
        mac.finalize().into_bytes().to_vec()
    });
    let got = h.token_with_assertion(&hs256, None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("HS256"));

    let es = forged(&h, &a, json!({ "alg": "ES256" }), |m| {
        a.key.sign(m).to_vec()
    });
    assert_oauth_error(
        &h.token_with_assertion(&es, None).await,
        401,
        "invalid_client",
    );

    // Key material in the header is never honoured: an attacker's own embedded key.
    let attacker = SigningKey::generate(&mut OsRng);
    let jwk = serde_json::to_value(warden_core::jwks::Jwk::from_public_key(
        &attacker.public_key(),
        None,
    ))
    .unwrap();
    let embedded = forged(&h, &a, json!({ "alg": "EdDSA", "jwk": jwk }), |m| {
        attacker.sign(m).to_vec()
    });
    assert_oauth_error(
        &h.token_with_assertion(&embedded, None).await,
        401,
        "invalid_client",
    );
    let jku = forged(
        &h,
        &a,
        json!({ "alg": "EdDSA", "jku": "https://evil.example/jwks" }),
        |m| attacker.sign(m).to_vec(),
    );
    assert_oauth_error(
        &h.token_with_assertion(&jku, None).await,
        401,
        "invalid_client",
    );
}

#[tokio::test]
async fn malformed_and_truncated_assertions_are_invalid_client() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let good = h.assertion(&a);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        String::from("not-a-jwt"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}.x", parts[0], parts[1], parts[2]),
        good[..good.len() - 10].to_owned(),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
        format!("e30.{}.{}", parts[1], parts[2]),
        format!("{}.e30.{}", parts[0], parts[2]),
        "a".repeat(9000),
    ];
    for bad in &cases {
        let got = h.token_with_assertion(bad, None).await;
        assert_oauth_error(&got, 401, "invalid_client");
    }
}

#[tokio::test]
async fn key_and_identity_mismatches_are_invalid_client() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let b = h.agent(&t, "b", "x:read").await;

    // Signed by another client's key.
    let mut c = h.assertion_claims(&a);
    c.jti = "other-key".into();
    let by_b = jws::encode("JWT", None, &c, &b.key).unwrap();
    let got = h.token_with_assertion(&by_b, None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("signature"));

    // Unknown client.
    let mut ghost = h.assertion_claims(&a);
    ghost.iss = "agt_AAAAAAAAAAAAAAAAAAAAAA".into();
    ghost.sub = ghost.iss.clone();
    let got = h
        .token_with_assertion(&jws::encode("JWT", None, &ghost, &a.key).unwrap(), None)
        .await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("unknown client"));

    // Unknown kid: the registered key has kid `k1`, the assertion names `k2`.
    let c = h
        .agent_with(&t, "kidded", json!({ "scopes": "x:read" }))
        .await;
    let jwk = warden_core::jwks::Jwk::from_public_key(&c.key.public_key(), Some("k1".into()));
    let (s, _) = h
        .admin(
            Method::PUT,
            &format!("/principals/{}/public-key", c.id),
            Some(json!({ "public_key": jwk })),
        )
        .await;
    assert_eq!(s, 200);
    let header = OutHeader {
        alg: "EdDSA",
        typ: "JWT",
        kid: Some("k2"),
        jwk: None,
    };
    let wrong_kid = jws::encode_with_header(&header, &h.assertion_claims(&c), &c.key).unwrap();
    let got = h.token_with_assertion(&wrong_kid, None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"].as_str().unwrap().contains("k2"));
    let header = OutHeader {
        alg: "EdDSA",
        typ: "JWT",
        kid: Some("k1"),
        jwk: None,
    };
    let right_kid = jws::encode_with_header(&header, &h.assertion_claims(&c), &c.key).unwrap();
    assert_eq!(h.token_with_assertion(&right_kid, None).await.0, 200);

    // iss ≠ sub, and a client_id parameter naming someone else.
    let mut split = h.assertion_claims(&a);
    split.sub = b.id.clone();
    let got = h
        .token_with_assertion(&jws::encode("JWT", None, &split, &a.key).unwrap(), None)
        .await;
    assert_oauth_error(&got, 401, "invalid_client");
    let assertion = h.assertion(&a);
    let got = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &b.id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ])
        .await;
    assert_oauth_error(&got, 401, "invalid_client");

    // An access token replayed as a client assertion (token confusion).
    let issued = h.token_with_assertion(&h.assertion(&a), None).await;
    let at = issued.1["access_token"].as_str().unwrap().to_owned();
    assert_oauth_error(
        &h.token_with_assertion(&at, None).await,
        401,
        "invalid_client",
    );
}

#[tokio::test]
async fn assertion_time_audience_and_replay_checks() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let sign = |c: &warden_core::AssertionClaims| jws::encode("JWT", None, c, &a.key).unwrap();

    let mut expired = h.assertion_claims(&a);
    expired.exp = h.now() - 31;
    let got = h.token_with_assertion(&sign(&expired), None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let mut early = h.assertion_claims(&a);
    early.nbf = Some(h.now() + 120);
    let got = h.token_with_assertion(&sign(&early), None).await;
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("not valid yet"));
    assert_oauth_error(&got, 401, "invalid_client");

    let mut long = h.assertion_claims(&a);
    long.exp = h.now() + 3600;
    assert_oauth_error(
        &h.token_with_assertion(&sign(&long), None).await,
        401,
        "invalid_client",
    );

    let mut wrong_aud = h.assertion_claims(&a);
    wrong_aud.aud = Audience::One("https://other.example/token".into());
    let got = h.token_with_assertion(&sign(&wrong_aud), None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("audience"));

    // Replay: the same assertion twice, and after the clock moves but before it expires.
    let once = h.assertion(&a);
    assert_eq!(h.token_with_assertion(&once, None).await.0, 200);
    h.clock.advance(30);
    let got = h.token_with_assertion(&once, None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("already used"));
}

#[tokio::test]
async fn disabled_principal_and_tenant_get_no_token() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    assert_eq!(
        h.admin(Method::POST, &format!("/principals/{}/disable", a.id), None)
            .await
            .0,
        200
    );
    let got = h.token_with_assertion(&h.assertion(&a), None).await;
    assert_oauth_error(&got, 401, "invalid_client");
    assert!(got.1["error_description"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    assert_eq!(
        h.admin(Method::POST, &format!("/principals/{}/enable", a.id), None)
            .await
            .0,
        200
    );
    // The disable ended every token of its second; the next second's token is alive.
    h.clock.advance(1);
    let got = h.token_with_assertion(&h.assertion(&a), None).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let token = got.1["access_token"].as_str().unwrap();
    assert!(h
        .authority
        .revocations
        .check(&crate::support::claims_of(token))
        .is_ok());
    assert_eq!(
        h.admin(Method::POST, &format!("/tenants/{t}/disable"), None)
            .await
            .0,
        200
    );
    assert_oauth_error(
        &h.token_with_assertion(&h.assertion(&a), None).await,
        401,
        "invalid_client",
    );
}

#[tokio::test]
async fn client_secret_basic() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "legacy-tool", "x:read").await;
    let (s, v) = h
        .admin(Method::POST, &format!("/principals/{}/secret", a.id), None)
        .await;
    assert_eq!(s, 201);
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    // The secret is shown once: never in the principal's record.
    let (_, p) = h
        .admin(Method::GET, &format!("/principals/{}", a.id), None)
        .await;
    assert!(!p.to_string().contains(&secret) && p.get("secret_hash").is_none());

    let basic = |id: &str, secret: &str| {
        h.http
            .post(h.token_endpoint())
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=x%3Aread")
    };
    let res = basic(&a.id, &secret).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = basic(&a.id, "wsec_wrong").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // Both methods at once is ambiguous.
    let res = basic(&a.id, &secret)
        .body(format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
            h.assertion(&a)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn request_shape_errors() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let assertion = h.assertion(&a);
    let ct = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    assert_oauth_error(
        &h.token_form(&[("grant_type", "password")]).await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &h.token_form(&[("scope", "x:read")]).await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &h.token_form(&[("grant_type", "client_credentials")]).await,
        401,
        "invalid_client",
    );
    let got = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ct),
            ("client_assertion", &assertion),
        ])
        .await;
    assert_oauth_error(&got, 400, "invalid_request");
    let got = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:other"),
            ("client_assertion", &assertion),
        ])
        .await;
    assert_oauth_error(&got, 401, "invalid_client");

    // JSON instead of a form.
    let res = h
        .http
        .post(h.token_endpoint())
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // Oversized body.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let res = h
        .http
        .post(h.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn oversized_headers_are_refused_without_a_5xx() {
    let h = Harness::start().await;
    let res = h
        .http
        .get(format!("{}/.well-known/jwks.json", h.url))
        .header("x-padding", "x".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 431);
    let mut req = h.http.get(format!("{}/.well-known/jwks.json", h.url));
    for i in 0..100 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
}

#[tokio::test]
async fn rotation_publishes_the_next_key_before_it_signs_and_keeps_the_old_one() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let v = Validation::access_token(&h.url, vec!["warden".into()]);

    let before = h.jwks().await;
    assert_eq!(before.len(), 2, "active and next are published");
    let old_token = h.token_with_assertion(&h.assertion(&a), None).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (s, keys) = h.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(s, 200, "{keys}");
    let new_token = h.token_with_assertion(&h.assertion(&a), None).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The key that signs now was already in the JWKS fetched before the rotation.
    assert!(verify_access_token(&new_token, &before, &v, h.now()).is_ok());
    let after = h.jwks().await;
    assert_eq!(after.len(), 3, "retired, active, next");
    assert!(verify_access_token(&old_token, &after, &v, h.now()).is_ok());

    // Once every token the retired key signed has expired, it is unpublished.
    h.clock.advance(900 + 30 + 1);
    h.authority.maintain().await;
    assert_eq!(h.jwks().await.len(), 2);
}

#[tokio::test]
async fn metadata_documents() {
    let h = Harness::start().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = h.get_json(path).await;
        assert_eq!(m["issuer"], h.url);
        assert_eq!(m["token_endpoint"], h.token_endpoint());
        assert_eq!(m["jwks_uri"], format!("{}/.well-known/jwks.json", h.url));
        assert_eq!(
            m["grant_types_supported"],
            json!([
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ])
        );
        for endpoint in ["token", "introspection", "revocation"] {
            let methods = &m[format!("{endpoint}_endpoint_auth_methods_supported")];
            assert_eq!(
                methods,
                &json!(["private_key_jwt", "client_secret_basic"]),
                "{endpoint}"
            );
        }
        assert_eq!(
            m["dpop_signing_alg_values_supported"],
            json!(["EdDSA", "Ed25519"])
        );
    }

    // Every advertised endpoint answers as advertised: a token introspected and revoked at
    // the URLs the metadata names, not at URLs of the test's own.
    let m: Value = h.get_json("/.well-known/oauth-authorization-server").await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let token = h.own_token(&a).await;
    let at = |field: &str| {
        m[field]
            .as_str()
            .unwrap()
            .strip_prefix(&h.url)
            .unwrap()
            .to_owned()
    };
    let seen = h
        .post_as(&a, &at("introspection_endpoint"), &[("token", &token)], &[])
        .await;
    assert_eq!(
        (seen.0, &seen.1["active"]),
        (200, &json!(true)),
        "{}",
        seen.1
    );
    let revoked = h
        .post_as(&a, &at("revocation_endpoint"), &[("token", &token)], &[])
        .await;
    assert_eq!(revoked.0, 200, "{}", revoked.1);
    assert!(!h.active(&a, &token).await);
    let res = h.http.get(format!("{}/nope", h.url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_concurrently_replayed_assertion_issues_exactly_one_token() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "a", "x:read").await;
    let assertion = h.assertion(&a);
    let body = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let req = h
                .http
                .post(h.token_endpoint())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone());
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        15,
        "{statuses:?}"
    );
}
