//! DPoP-bound tokens at the gateway (RFC 9449): the proof must come from the bound key, for
//! this request and token, once. Single-use tokens are spent once.

use rand_core::OsRng;
use reqwest::Method;
use serde_json::Value;
use warden_core::SigningKey;
use warden_test::authority::JWT_BEARER;
use warden_test::keys;

use crate::support::{Env, Options};

/// A DPoP-bound token from the real token endpoint.
async fn bound_token(env: &Env, key: &SigningKey) -> String {
    let endpoint = env.auth.token_endpoint();
    let proof = proof(env, key, "POST", &endpoint, None);
    let assertion = keys::assertion(&env.agent_id, &env.agent_key, &endpoint, env.now());
    let (status, res) = env
        .auth
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "crm:contacts:read"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
            &[("dpop", &proof)],
        )
        .await;
    assert_eq!(
        (status, res["token_type"].as_str()),
        (200, Some("DPoP")),
        "{res}"
    );
    res["access_token"].as_str().unwrap().to_owned()
}

fn proof(env: &Env, key: &SigningKey, method: &str, url: &str, token: Option<&str>) -> String {
    keys::dpop_proof(key, method, url, env.now(), token)
}

async fn send(
    env: &Env,
    method: Method,
    path: &str,
    authorization: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut req = env
        .http
        .request(method, format!("{}{path}", env.gateway_url))
        .header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    req.send().await.unwrap()
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_bound_token_needs_a_fresh_proof_from_its_key() {
    let (env, _) = Env::start(Options::default()).await;
    let key = SigningKey::generate(&mut OsRng);
    let token = bound_token(&env, &key).await;
    let url = format!("{}/crm/contacts", env.gateway_url);
    let auth = format!("DPoP {token}");

    let good = proof(&env, &key, "GET", &url, Some(&token));
    let res = send(
        &env,
        Method::GET,
        "/crm/contacts?page=2",
        &auth,
        Some(&good),
    )
    .await;
    assert_eq!(res.status(), 200, "query is not part of htu");
    let seen: Value = res.json().await.unwrap();
    assert!(
        seen["headers"].get("dpop").is_none(),
        "the proof is not forwarded"
    );

    // The same proof again is a replay.
    let res = send(&env, Method::GET, "/crm/contacts", &auth, Some(&good)).await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).contains("invalid_dpop_proof"),
        "{}",
        challenge(&res)
    );

    // Stolen token, presented as a bearer token or without a proof.
    let res = send(
        &env,
        Method::GET,
        "/crm/contacts",
        &format!("Bearer {token}"),
        None,
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).contains("DPoP-bound"),
        "{}",
        challenge(&res)
    );
    let res = send(&env, Method::GET, "/crm/contacts", &auth, None).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).starts_with("DPoP "), "{}", challenge(&res));

    // A proof by the thief's own key.
    let thief = SigningKey::generate(&mut OsRng);
    let stolen = proof(&env, &thief, "GET", &url, Some(&token));
    assert_eq!(
        send(&env, Method::GET, "/crm/contacts", &auth, Some(&stolen))
            .await
            .status(),
        401
    );

    // Proofs for another method, URL or token.
    let cases = [
        proof(&env, &key, "POST", &url, Some(&token)),
        proof(
            &env,
            &key,
            "GET",
            &format!("{}/crm/other", env.gateway_url),
            Some(&token),
        ),
        proof(&env, &key, "GET", &url, Some("another-token")),
        proof(&env, &key, "GET", &url, None),
    ];
    for p in &cases {
        let res = send(&env, Method::GET, "/crm/contacts", &auth, Some(p)).await;
        assert_eq!(res.status(), 401, "{}", challenge(&res));
    }
    // Two proofs at once.
    let res = env
        .http
        .get(&url)
        .header("authorization", &auth)
        .header("dpop", proof(&env, &key, "GET", &url, Some(&token)))
        .header("dpop", proof(&env, &key, "GET", &url, Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Stale: the clock moved past the proof window.
    let old = proof(&env, &key, "GET", &url, Some(&token));
    env.clock.advance(61);
    assert_eq!(
        send(&env, Method::GET, "/crm/contacts", &auth, Some(&old))
            .await
            .status(),
        401
    );
    let fresh = proof(&env, &key, "GET", &url, Some(&token));
    assert_eq!(
        send(&env, Method::GET, "/crm/contacts", &auth, Some(&fresh))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn only_an_allowed_request_spends_a_proof() {
    let (env, _) = Env::start(Options::default()).await;
    let key = SigningKey::generate(&mut OsRng);
    let token = bound_token(&env, &key).await;
    let auth = format!("DPoP {token}");

    // Valid proofs for requests the gateway refuses (no route; a scope the token lacks) are
    // checked but not remembered: a holder cannot fill the replay cache with them.
    for _ in 0..3 {
        let nowhere = proof(
            &env,
            &key,
            "GET",
            &format!("{}/nowhere", env.gateway_url),
            Some(&token),
        );
        let res = send(&env, Method::GET, "/nowhere", &auth, Some(&nowhere)).await;
        assert_eq!(res.status(), 404);
        let url = format!("{}/crm/contacts", env.gateway_url);
        let write = proof(&env, &key, "POST", &url, Some(&token));
        let res = send(&env, Method::POST, "/crm/contacts", &auth, Some(&write)).await;
        assert_eq!(res.status(), 403);
    }
    assert_eq!(env.gateway.dpop_proofs_remembered(), 0);

    // An allowed request spends its proof, once.
    let url = format!("{}/crm/contacts", env.gateway_url);
    let read = proof(&env, &key, "GET", &url, Some(&token));
    let res = send(&env, Method::GET, "/crm/contacts", &auth, Some(&read)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(env.gateway.dpop_proofs_remembered(), 1);
    let res = send(&env, Method::GET, "/crm/contacts", &auth, Some(&read)).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).contains("invalid_dpop_proof"));
    assert_eq!(env.gateway.dpop_proofs_remembered(), 1);
}

#[tokio::test]
async fn a_proof_made_for_another_server_is_refused_under_its_name() {
    let (env, _) = Env::start(Options::default()).await;
    let key = SigningKey::generate(&mut OsRng);
    let token = bound_token(&env, &key).await;
    let port = env.gateway_url.rsplit(':').next().unwrap().to_owned();
    // The client made this proof for another resource server that accepts the same
    // tokens; the thief sends it here, naming that server in Host.
    let elsewhere = format!("http://rs.other.example:{port}/crm/contacts");
    let stolen = proof(&env, &key, "GET", &elsewhere, Some(&token));
    let res = env
        .http
        .get(format!("{}/crm/contacts", env.gateway_url))
        .header("host", format!("rs.other.example:{port}"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", &stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let c = challenge(&res);
    assert!(c.contains("invalid_dpop_proof"), "{c}");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("public_url"),
        "{body}"
    );
    // `localhost` with the gateway's port names it.
    let here = format!("http://localhost:{port}/crm/contacts");
    let res = env
        .http
        .get(format!("{}/crm/contacts", env.gateway_url))
        .header("host", format!("localhost:{port}"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof(&env, &key, "GET", &here, Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_dpop_scheme_needs_a_bound_token() {
    let (env, _) = Env::start(Options::default()).await;
    let key = SigningKey::generate(&mut OsRng);
    let token = env.token("crm:contacts:read").await;
    let url = format!("{}/crm/contacts", env.gateway_url);
    let p = proof(&env, &key, "GET", &url, Some(&token));
    let res = send(
        &env,
        Method::GET,
        "/crm/contacts",
        &format!("DPoP {token}"),
        Some(&p),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_single_use_token_is_spent_once() {
    let (env, _) = Env::start(Options::default()).await;
    let once = env.forge(|c| c.max_uses = Some(1));
    // A refused request does not spend it.
    assert_eq!(env.get("/crm/a", Some(&once)).await.status(), 200);
    let res = env.get("/crm/a", Some(&once)).await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).contains("single-use"),
        "{}",
        challenge(&res)
    );
}
