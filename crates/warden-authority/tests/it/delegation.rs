//! Delegation over real sockets: token exchange (RFC 8693) with grants, attenuation and
//! sub-delegation, DPoP at the token endpoint, introspection.

use rand_core::OsRng;
use reqwest::Method;
use serde_json::{json, Value};
use warden_core::claims::{Actor, Audience};
use warden_core::{jws, SigningKey};

use crate::support::{
    assert_oauth_error, claims_of, issued, Agent, Harness, ACCESS_TOKEN_TYPE, JWT_BEARER,
    TOKEN_EXCHANGE,
};

pub(crate) const USER_SCOPES: &str = "crm:contacts:read crm:contacts:write email:send";
pub(crate) const AGENT_CEILING: &str = "crm:*:read crm:contacts:delete";
pub(crate) const GRANT_SCOPES: &str = "crm:contacts:read crm:contacts:write";

pub(crate) async fn user(h: &Harness, tenant: &str, name: &str) -> Agent {
    h.agent_with(
        tenant,
        name,
        json!({ "kind": "user", "scopes": USER_SCOPES }),
    )
    .await
}

pub(crate) fn actor(sub: &str, act: Option<Actor>) -> Actor {
    Actor {
        sub: sub.into(),
        act: act.map(Box::new),
    }
}

pub(crate) fn description(got: &(u16, Value)) -> String {
    got.1["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn delegation_needs_a_grant_and_yields_the_intersection() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let u_token = h.own_token(&u).await;
    let u_claims = claims_of(&u_token);

    // No grant: the agent cannot act for the user.
    let got = h.exchange(&a, &u_token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert!(description(&got).contains("has not granted"), "{}", got.1);

    let grant = h.grant(&u, &a, GRANT_SCOPES).await;
    let grant_id = grant["id"].as_str().unwrap();
    assert!(grant_id.starts_with("dlg_"), "{grant}");
    assert_eq!(grant["user"], u.id.as_str());
    assert_eq!(grant["agent"], a.id.as_str());
    assert_eq!(grant["tenant"], t.as_str());

    // Without `scope`: user ∩ agent ceiling ∩ grant.
    h.clock.advance(5);
    let got = h.exchange(&a, &u_token, &[]).await;
    let t1 = issued(&got);
    assert_eq!(got.1["scope"], "crm:contacts:read");
    assert_eq!(got.1["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(got.1["token_type"], "Bearer");
    let c = claims_of(&t1);
    assert_eq!(c.sub, u.id);
    assert_eq!(c.act, Some(actor(&a.id, None)));
    assert_eq!(c.client_id, a.id);
    assert_eq!(c.tenant, t);
    assert_eq!(c.scope, "crm:contacts:read");
    assert_eq!(c.iat, h.now());
    assert!(c.exp <= u_claims.exp, "{} > {}", c.exp, u_claims.exp);
    assert_eq!(
        c.exp, u_claims.exp,
        "the subject token's end bounds the lifetime"
    );
    assert_eq!(c.aud, u_claims.aud);
    assert_eq!(c.cnf, None);
    assert_eq!(c.max_uses, None);
    // The authority's own keys verify it.
    let v = warden_core::Validation::access_token(&h.url, vec!["warden".into()]);
    assert!(warden_core::token::verify_access_token(&t1, &h.jwks().await, &v, h.now()).is_ok());

    // Held by the user and the grant, not the agent's ceiling: refused, not narrowed.
    let got = h
        .exchange(&a, &u_token, &[("scope", "crm:contacts:write")])
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");
    assert!(
        description(&got).contains("crm:contacts:write"),
        "{}",
        got.1
    );
    // Held by the user only.
    let got = h.exchange(&a, &u_token, &[("scope", "email:send")]).await;
    assert_oauth_error(&got, 400, "invalid_scope");
    let got = h
        .exchange(&a, &u_token, &[("scope", "crm:contacts:read email:send")])
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");
    // In the agent's ceiling, not the user's nor the grant's.
    let got = h
        .exchange(&a, &u_token, &[("scope", "crm:contacts:delete")])
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");
    // Wider than what is held.
    let got = h.exchange(&a, &u_token, &[("scope", "crm:*:read")]).await;
    assert_oauth_error(&got, 400, "invalid_scope");

    // The grant is visible to the lifecycle API.
    let (s, v) = h
        .admin(Method::GET, &format!("/delegations/{grant_id}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scopes"], GRANT_SCOPES);
    assert_eq!(v["revoked_at"], Value::Null);
    let (s, v) = h
        .admin(Method::GET, &format!("/tenants/{t}/delegations"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [grant_id]);
    let (s, _) = h.admin(Method::GET, "/delegations/dlg_nope", None).await;
    assert_eq!(s, 404);

    // Grant validation.
    let other_user = user(&h, &t, "bob").await;
    let create = |body: Value| h.admin(Method::POST, "/delegations", Some(body));
    let (s, v) =
        create(json!({ "user": a.id, "agent": u.id, "scopes": "crm:contacts:read" })).await;
    assert_eq!(s, 422, "an agent as `user`: {v}");
    let (s, v) =
        create(json!({ "user": u.id, "agent": other_user.id, "scopes": "crm:contacts:read" }))
            .await;
    assert_eq!(s, 422, "a user as `agent`: {v}");
    let t2 = h.tenant("globex").await;
    let foreign = h.agent(&t2, "foreign", AGENT_CEILING).await;
    let (s, v) =
        create(json!({ "user": u.id, "agent": foreign.id, "scopes": "crm:contacts:read" })).await;
    assert_eq!(s, 422, "cross-tenant: {v}");
    let (s, v) =
        create(json!({ "user": u.id, "agent": a.id, "scopes": "crm:contacts:read" })).await;
    assert_eq!(s, 409, "a second live grant for the pair: {v}");
    let (s, v) = create(json!({ "user": other_user.id, "agent": a.id, "scopes": "" })).await;
    assert_eq!(s, 422, "no scopes: {v}");
    let (s, v) = create(
        json!({ "user": other_user.id, "agent": a.id, "scopes": "crm:contacts:read", "expires_in": 0 }),
    )
    .await;
    assert_eq!(s, 422, "non-positive expires_in: {v}");
    // A grant is no licence to act for anyone else: bob has not granted the agent.
    let bob_token = h.own_token(&other_user).await;
    assert_oauth_error(&h.exchange(&a, &bob_token, &[]).await, 400, "invalid_grant");
}

#[tokio::test]
async fn a_grant_with_an_end_bounds_delegation_and_can_be_renewed() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let b = h.agent(&t, "researcher", "crm:contacts:read").await;
    let (s, old) = h
        .admin(
            Method::POST,
            "/delegations",
            Some(json!({ "user": u.id, "agent": a.id, "scopes": GRANT_SCOPES, "expires_in": 60 })),
        )
        .await;
    assert_eq!(s, 201, "{old}");
    let ends = h.now() + 60;
    assert_eq!(old["expires_at"], ends);
    let u_token = h.own_token(&u).await;

    // A delegated token does not outlive the consent it rests on, nor do its descendants.
    h.clock.advance(10);
    let got = h.exchange(&a, &u_token, &[]).await;
    let t1 = issued(&got);
    assert_eq!(claims_of(&t1).exp, ends, "{:?}", claims_of(&t1));
    assert_eq!(got.1["expires_in"], 50);
    let t2 = claims_of(&h.exchanged(&b, &t1).await);
    assert!(t2.exp <= ends);

    // Once it has ended, no delegation.
    h.clock.set(ends);
    let got = h.exchange(&a, &u_token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert!(description(&got).contains("has not granted"), "{}", got.1);

    // An ended grant is not live: the user can consent again, at once.
    let again = h.grant(&u, &a, "crm:contacts:read").await;
    assert_eq!(again["expires_at"], Value::Null);
    let (s, v) = h
        .admin(
            Method::GET,
            &format!("/delegations/{}", old["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["revoked_at"], h.now(), "the ended grant is retired: {v}");
    let got = h.exchange(&a, &u_token, &[]).await;
    let renewed = issued(&got);
    assert_eq!(claims_of(&renewed).act, Some(actor(&a.id, None)));
    assert!(
        h.active(&a, &renewed).await,
        "retiring the old grant spares the new one"
    );
    // While a live grant exists, a second one is still a conflict.
    let (s, v) = h
        .admin(
            Method::POST,
            "/delegations",
            Some(json!({ "user": u.id, "agent": a.id, "scopes": "crm:contacts:read" })),
        )
        .await;
    assert_eq!(s, 409, "{v}");
}

#[tokio::test]
async fn attenuation_and_sub_delegation_never_widen() {
    let h = Harness::start_with(|c| c.max_delegation_depth = 2).await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let b = h.agent(&t, "researcher", "crm:contacts:read").await;
    let c = h.agent(&t, "summariser", "crm:contacts:read").await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let u_token = h.own_token(&u).await;
    let t1 = h.exchanged(&a, &u_token).await;
    let t1c = claims_of(&t1);

    // The holder attenuates its own delegated token: same identity and chain, less power.
    h.clock.advance(10);
    let got = h
        .exchange(
            &a,
            &t1,
            &[
                ("scope", "crm:contacts:read"),
                ("expires_in", "60"),
                ("max_uses", "1"),
            ],
        )
        .await;
    let once = issued(&got);
    assert_eq!(got.1["expires_in"], 60);
    let oc = claims_of(&once);
    assert_eq!(oc.sub, u.id);
    assert_eq!(oc.act, t1c.act);
    assert_eq!(oc.client_id, a.id);
    assert_eq!(oc.iat, h.now());
    assert_eq!(oc.exp, oc.iat + 60);
    assert_eq!(oc.max_uses, Some(1));
    assert_eq!(oc.scope, "crm:contacts:read");

    // A single-use token is not exchanged again, by its holder or anyone.
    let got = h.exchange(&a, &once, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert!(description(&got).contains("single-use"), "{}", got.1);
    let got = h.exchange(&b, &once, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");

    // Asking to outlive the parent never extends it.
    h.clock.advance(100);
    let got = h.exchange(&a, &t1, &[("expires_in", "100000")]).await;
    let long = claims_of(&issued(&got));
    assert_eq!(long.exp, t1c.exp);
    assert!(long.exp < h.now() + 900);
    assert_eq!(got.1["expires_in"], t1c.exp - h.now());

    // Only `1` is a valid max_uses, and expires_in is a positive integer.
    for (k, v) in [
        ("max_uses", "2"),
        ("expires_in", "0"),
        ("expires_in", "-5"),
        ("expires_in", "soon"),
    ] {
        let got = h.exchange(&a, &t1, &[(k, v)]).await;
        assert_oauth_error(&got, 400, "invalid_request");
    }

    // Audience: only one the parent already has.
    let got = h
        .exchange(&a, &t1, &[("resource", "https://payroll.example")])
        .await;
    assert_oauth_error(&got, 400, "invalid_target");
    let got = h
        .exchange(&a, &t1, &[("audience", "https://payroll.example")])
        .await;
    assert_oauth_error(&got, 400, "invalid_target");
    let got = h
        .exchange(&a, &t1, &[("resource", "warden"), ("audience", "warden")])
        .await;
    assert_oauth_error(&got, 400, "invalid_target");
    let got = h.exchange(&a, &t1, &[("resource", "warden")]).await;
    assert_eq!(claims_of(&issued(&got)).aud, Audience::One("warden".into()));

    // Sub-delegation: B becomes the outermost actor, A stays nested.
    let got = h.exchange(&b, &t1, &[]).await;
    let t2 = issued(&got);
    let t2c = claims_of(&t2);
    assert_eq!(t2c.sub, u.id);
    assert_eq!(t2c.act, Some(actor(&b.id, Some(actor(&a.id, None)))));
    assert_eq!(t2c.client_id, b.id);
    assert_eq!(t2c.scope, "crm:contacts:read");
    assert_eq!(t2c.exp, t1c.exp);
    // B cannot ask for what T1 does not hold.
    let got = h
        .exchange(&b, &t1, &[("scope", "crm:contacts:write")])
        .await;
    assert_oauth_error(&got, 400, "invalid_scope");

    // A third level exceeds the configured depth of 2.
    let got = h.exchange(&c, &t2, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    let d = description(&got);
    assert!(d.contains("deep") && d.contains("limit is 2"), "{d}");

    // A loop: A is already in T2's chain.
    let got = h.exchange(&a, &t2, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert!(description(&got).contains("chain"), "{}", got.1);
    // So is the subject: the user cannot act for themselves through the chain.
    let got = h.exchange(&u, &t1, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");

    // B attenuating its own T2 keeps the chain (depth unchanged, still allowed).
    let got = h.exchange(&b, &t2, &[("expires_in", "30")]).await;
    let t2b = claims_of(&issued(&got));
    assert_eq!(t2b.act, t2c.act);
    assert_eq!(t2b.exp, h.now() + 30);
}

#[tokio::test]
async fn exchange_refuses_bad_subject_tokens_and_requests() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let u_token = h.own_token(&u).await;
    // The same request is fine: what follows fails only for the reason named.
    issued(&h.exchange(&a, &u_token, &[]).await);

    let assertion = h.assertion(&a);
    let client = [
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let got = h
        .post_as(
            &a,
            "/oauth2/token",
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
            ],
            &[],
        )
        .await;
    assert_oauth_error(&got, 400, "invalid_request");
    assert!(description(&got).contains("subject_token"), "{}", got.1);
    let got = h
        .post_as(
            &a,
            "/oauth2/token",
            &[("grant_type", TOKEN_EXCHANGE), ("subject_token", &u_token)],
            &[],
        )
        .await;
    assert_oauth_error(&got, 400, "invalid_request");
    for bad_type in [
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:jwt",
    ] {
        let got = h
            .post_as(
                &a,
                "/oauth2/token",
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", &u_token),
                    ("subject_token_type", bad_type),
                ],
                &[],
            )
            .await;
        assert_oauth_error(&got, 400, "invalid_request");
    }
    let got = h
        .exchange(
            &a,
            &u_token,
            &[(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            )],
        )
        .await;
    assert_oauth_error(&got, 400, "invalid_request");

    // Not a token, or not one of ours.
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let got = h.exchange(&a, garbage, &[]).await;
        assert_oauth_error(&got, 400, "invalid_grant");
    }
    // The user's real claims, widened and re-signed with a key the authority does not own,
    // under the kid of its real signing key.
    let mut forged = claims_of(&u_token);
    forged.scope = "crm:contacts:read crm:contacts:write".into();
    forged.jti = "forged-1".into();
    let kid = h.authority.keys.current().active_kid.clone();
    let other_key = SigningKey::generate(&mut OsRng);
    let forged_token = jws::encode("at+jwt", Some(&kid), &forged, &other_key).unwrap();
    let got = h.exchange(&a, &forged_token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    // The real token with its payload swapped keeps the real signature: still refused.
    let parts: Vec<&str> = u_token.split('.').collect();
    let forged_payload = forged_token.split('.').nth(1).unwrap();
    let spliced = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_oauth_error(&h.exchange(&a, &spliced, &[]).await, 400, "invalid_grant");
    // Same claims, real kid, and the client's own key (which the authority knows, as a
    // client key, not a signing key).
    let client_signed = jws::encode("at+jwt", Some(&kid), &forged, &a.key).unwrap();
    assert_oauth_error(
        &h.exchange(&a, &client_signed, &[]).await,
        400,
        "invalid_grant",
    );

    // A token of another tenant, even for a principal named the same.
    let t2 = h.tenant("globex").await;
    let foreign_user = user(&h, &t2, "alice").await;
    let foreign_token = h.own_token(&foreign_user).await;
    let got = h.exchange(&a, &foreign_token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    // Nor can a client of the other tenant exchange ours.
    let foreign_agent = h.agent(&t2, "assistant", AGENT_CEILING).await;
    let got = h.exchange(&foreign_agent, &u_token, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");

    // `actor_token` is not how the actor is named.
    let a_token = h.own_token(&a).await;
    let got = h
        .exchange(
            &a,
            &u_token,
            &[
                ("actor_token", &a_token),
                ("actor_token_type", ACCESS_TOKEN_TYPE),
            ],
        )
        .await;
    assert_oauth_error(&got, 400, "invalid_request");
    assert!(description(&got).contains("actor_token"), "{}", got.1);

    // No client authentication at all.
    let got = h
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &u_token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
            ],
            &[],
        )
        .await;
    assert_oauth_error(&got, 401, "invalid_client");
    // The client's assertion replayed (a second use of the same jti).
    let mut with_used = client.to_vec();
    with_used.extend_from_slice(&[
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", &u_token),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
    ]);
    issued(&h.post_form("/oauth2/token", &with_used, &[]).await);
    assert_oauth_error(
        &h.post_form("/oauth2/token", &with_used, &[]).await,
        401,
        "invalid_client",
    );

    // An expired subject token (past exp and the leeway).
    let old = h.own_token(&u).await;
    h.clock.advance(900 + 31);
    let got = h.exchange(&a, &old, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");

    // A revoked subject token.
    let fresh = h.own_token(&u).await;
    issued(&h.exchange(&a, &fresh, &[]).await);
    let (s, v) = h
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(json!({ "jti": claims_of(&fresh).jti })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let got = h.exchange(&a, &fresh, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert!(description(&got).contains("revoked"), "{}", got.1);
}

#[tokio::test]
async fn a_disabled_subject_cannot_be_acted_for() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let u_token = h.own_token(&u).await;
    let t1 = h.exchanged(&a, &u_token).await;
    let (s, v) = h
        .admin(Method::POST, &format!("/principals/{}/disable", u.id), None)
        .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    assert_oauth_error(&h.exchange(&a, &u_token, &[]).await, 400, "invalid_grant");
    // Attenuating an already delegated token is refused too.
    assert_oauth_error(&h.exchange(&a, &t1, &[]).await, 400, "invalid_grant");
    // Disabling ends the tokens already out, the delegated ones included.
    let watcher = h.introspector(&t).await;
    assert!(!h.active(&a, &t1).await);
    assert!(!h.active(&watcher, &t1).await);
    assert!(!h.active(&watcher, &u_token).await);
}

#[tokio::test]
async fn disabling_an_agent_ends_the_tokens_it_acts_through() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let rs = h
        .agent(&t, "resource", "crm:contacts:read warden:introspect")
        .await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let u_token = h.own_token(&u).await;
    let t1 = h.exchanged(&a, &u_token).await;
    assert!(h.active(&rs, &t1).await);
    let (s, v) = h
        .admin(Method::POST, &format!("/principals/{}/disable", a.id), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(!h.active(&rs, &t1).await, "the agent acts in this token");
    assert!(
        h.active(&rs, &u_token).await,
        "the user's own token is untouched"
    );
}

#[tokio::test]
async fn dpop_proof_binds_the_issued_token() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let key = SigningKey::generate(&mut OsRng);
    let jkt = key.public_key().thumbprint();
    let cc = [("grant_type", "client_credentials")];

    let proof = h.dpop_proof(&key);
    let got = h
        .post_as(&a, "/oauth2/token", &cc, &[("DPoP", &proof)])
        .await;
    let bound = issued(&got);
    assert_eq!(got.1["token_type"], "DPoP");
    let c = claims_of(&bound);
    assert_eq!(c.cnf.as_ref().map(|c| c.jkt.as_str()), Some(jkt.as_str()));

    // Replay of the very same proof.
    let got = h
        .post_as(&a, "/oauth2/token", &cc, &[("DPoP", &proof)])
        .await;
    assert_oauth_error(&got, 400, "invalid_dpop_proof");

    let now = h.now();
    let endpoint = h.token_endpoint();
    let bad_proofs = [
        (
            "wrong htu",
            h.dpop_proof_for(&key, "POST", &format!("{}/oauth2/introspect", h.url), now),
        ),
        (
            "other host",
            h.dpop_proof_for(&key, "POST", "https://elsewhere.example/oauth2/token", now),
        ),
        ("wrong htm", h.dpop_proof_for(&key, "GET", &endpoint, now)),
        (
            "iat 120 s ago",
            h.dpop_proof_for(&key, "POST", &endpoint, now - 120),
        ),
        (
            "iat 120 s ahead",
            h.dpop_proof_for(&key, "POST", &endpoint, now + 120),
        ),
        ("not a JWS", "garbage".to_owned()),
        // A client-assertion-shaped JWS is not a proof.
        ("wrong typ", h.assertion(&a)),
    ];
    for (why, p) in &bad_proofs {
        let got = h.post_as(&a, "/oauth2/token", &cc, &[("DPoP", p)]).await;
        assert_eq!(got.0, 400, "{why}: {}", got.1);
        assert_eq!(got.1["error"], "invalid_dpop_proof", "{why}: {}", got.1);
    }
    // Two proofs, each fine alone.
    let (p1, p2) = (h.dpop_proof(&key), h.dpop_proof(&key));
    let got = h
        .post_as(&a, "/oauth2/token", &cc, &[("DPoP", &p1), ("DPoP", &p2)])
        .await;
    assert_oauth_error(&got, 400, "invalid_dpop_proof");
    // p1 was not consumed by the refused request.
    let got = h.post_as(&a, "/oauth2/token", &cc, &[("DPoP", &p1)]).await;
    assert_eq!(got.1["token_type"], "DPoP", "{}", got.1);

    // Introspection reports the binding.
    let v = h.introspect(&a, &bound).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "DPoP");
    assert_eq!(v["cnf"]["jkt"], jkt.as_str());
}

#[tokio::test]
async fn a_bound_subject_token_is_exchanged_only_with_its_key() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let key = SigningKey::generate(&mut OsRng);
    let jkt = key.public_key().thumbprint();
    let thief_key = SigningKey::generate(&mut OsRng);

    // A's own bound token, attenuated.
    let got = h
        .post_as(
            &a,
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            &[("DPoP", &h.dpop_proof(&key))],
        )
        .await;
    let a_bound = issued(&got);
    let got = h.exchange(&a, &a_bound, &[]).await;
    assert_oauth_error(&got, 400, "invalid_grant");
    assert!(description(&got).contains("DPoP"), "{}", got.1);
    let got = h
        .exchange_with(&a, &a_bound, &[], &[("DPoP", &h.dpop_proof(&thief_key))])
        .await;
    assert_oauth_error(&got, 400, "invalid_grant");
    let got = h
        .exchange_with(
            &a,
            &a_bound,
            &[("scope", "crm:contacts:read")],
            &[("DPoP", &h.dpop_proof(&key))],
        )
        .await;
    let child = issued(&got);
    assert_eq!(got.1["token_type"], "DPoP");
    let c = claims_of(&child);
    assert_eq!(c.cnf.as_ref().map(|c| c.jkt.as_str()), Some(jkt.as_str()));
    assert_eq!(c.sub, a.id);
    assert_eq!(c.act, None);
    assert_eq!(c.scope, "crm:contacts:read");

    // The user's bound token, delegated: the agent must prove the user's key.
    let user_key = SigningKey::generate(&mut OsRng);
    let got = h
        .post_as(
            &u,
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
            &[("DPoP", &h.dpop_proof(&user_key))],
        )
        .await;
    let u_bound = issued(&got);
    assert_oauth_error(&h.exchange(&a, &u_bound, &[]).await, 400, "invalid_grant");
    let got = h
        .exchange_with(&a, &u_bound, &[], &[("DPoP", &h.dpop_proof(&key))])
        .await;
    assert_oauth_error(&got, 400, "invalid_grant");

    // An unbound subject token exchanged with a proof comes out bound to the proof's key.
    let u_plain = h.own_token(&u).await;
    let got = h
        .exchange_with(&a, &u_plain, &[], &[("DPoP", &h.dpop_proof(&key))])
        .await;
    let bound_t1 = issued(&got);
    assert_eq!(got.1["token_type"], "DPoP");
    assert_eq!(claims_of(&bound_t1).cnf.map(|c| c.jkt), Some(jkt.clone()));
    // A bad proof refuses the exchange with invalid_dpop_proof, not a silently unbound token.
    let got = h
        .exchange_with(
            &a,
            &u_plain,
            &[],
            &[(
                "DPoP",
                &h.dpop_proof_for(&key, "POST", &h.token_endpoint(), h.now() - 600),
            )],
        )
        .await;
    assert_oauth_error(&got, 400, "invalid_dpop_proof");
}

#[tokio::test]
async fn introspection_reports_only_usable_tokens() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let u = user(&h, &t, "alice").await;
    let a = h.agent(&t, "assistant", AGENT_CEILING).await;
    let rs = h
        .agent(&t, "crm-api", "crm:contacts:read warden:introspect")
        .await;
    h.grant(&u, &a, GRANT_SCOPES).await;
    let u_token = h.own_token(&u).await;
    let t1 = h.exchanged(&a, &u_token).await;
    let c = claims_of(&t1);

    // A resource server granted `warden:introspect` sees every claim.
    let v = h.introspect(&rs, &t1).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["sub"], u.id.as_str());
    assert_eq!(v["scope"], "crm:contacts:read");
    assert_eq!(v["act"], json!({ "sub": a.id }));
    assert_eq!(v["exp"], c.exp);
    assert_eq!(v["iat"], c.iat);
    assert_eq!(v["jti"], c.jti.as_str());
    assert_eq!(v["client_id"], a.id.as_str());
    assert_eq!(v["token_type"], "Bearer");

    // Garbage, and a token signed by someone else.
    assert!(!h.active(&rs, "garbage").await);
    let kid = h.authority.keys.current().active_kid.clone();
    let forged = jws::encode("at+jwt", Some(&kid), &c, &SigningKey::generate(&mut OsRng)).unwrap();
    assert!(!h.active(&rs, &forged).await);

    // A client of another tenant learns nothing, whatever it holds in its own.
    let t2 = h.tenant("globex").await;
    let spy = h
        .agent(&t2, "spy", "crm:contacts:read warden:introspect")
        .await;
    assert!(!h.active(&spy, &t1).await);

    // No client authentication.
    let got = h
        .post_form("/oauth2/introspect", &[("token", &t1)], &[])
        .await;
    assert_oauth_error(&got, 401, "invalid_client");
    // No token parameter.
    let got = h.post_as(&rs, "/oauth2/introspect", &[], &[]).await;
    assert_oauth_error(&got, 400, "invalid_request");

    // Revoked.
    let doomed = h.exchanged(&a, &u_token).await;
    assert!(h.active(&rs, &doomed).await);
    let (s, v) = h
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(json!({ "jti": claims_of(&doomed).jti, "reason": "test" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(!h.active(&rs, &doomed).await);
    assert!(h.active(&rs, &t1).await, "only that token");

    // Expired: "active" means usable now, so the verification leeway does not apply.
    h.clock.set(c.exp - 1);
    assert!(h.active(&rs, &t1).await);
    h.clock.set(c.exp);
    assert!(!h.active(&rs, &t1).await);
}

#[tokio::test]
async fn introspection_answers_only_the_client_the_resource_and_introspectors() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    // A resource server, named by its principal id as the audience of tokens for it.
    let rs = h.agent(&t, "crm-api", "").await;
    let client = h
        .agent_with(
            &t,
            "crm-client",
            json!({ "scopes": "crm:contacts:read", "audiences": [rs.id] }),
        )
        .await;
    let got = h
        .post_as(
            &client,
            "/oauth2/token",
            &[("grant_type", "client_credentials"), ("resource", &rs.id)],
            &[],
        )
        .await;
    let for_rs = issued(&got);
    assert_eq!(claims_of(&for_rs).aud, Audience::One(rs.id.clone()));
    let own = h.own_token(&client).await;

    // The token's own client.
    assert!(h.active(&client, &for_rs).await);
    assert!(h.active(&client, &own).await);
    // The resource the token is for, and only for that token.
    let v = h.introspect(&rs, &for_rs).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], client.id.as_str());
    assert!(
        !h.active(&rs, &own).await,
        "a token for `warden` is not the resource server's business"
    );
    // A principal granted `warden:introspect`, literally: wildcards that would cover it do not.
    let auditor = h.introspector(&t).await;
    assert!(h.active(&auditor, &for_rs).await);
    assert!(h.active(&auditor, &own).await);
    for (name, ceiling) in [("wide", "*:*"), ("warden-all", "warden:*")] {
        let wide = h.agent(&t, name, ceiling).await;
        assert!(!h.active(&wide, &own).await, "{ceiling}");
    }
    // Another client of the same tenant, and one of another tenant, see nothing at all.
    let other = h.agent(&t, "other", "crm:contacts:read").await;
    assert!(!h.active(&other, &for_rs).await);
    assert!(!h.active(&other, &own).await);
    let t2 = h.tenant("globex").await;
    let foreign = h.introspector(&t2).await;
    assert!(!h.active(&foreign, &own).await);
}
