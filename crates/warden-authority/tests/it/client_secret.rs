//! `client_secret_basic` secrets: stored as HMAC digests, legacy Argon2id hashes upgraded on
//! their next successful use, and the budgets of failed client authentication, per client
//! and per address, which answer `429` without looking at the credentials.

use std::net::IpAddr;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use reqwest::Method;
use serde_json::Value;
use warden_authority::config::FailureBudget;
use warden_core::crypto::{hash_legacy_secret, ClientSecretKey, SealingKey};
use warden_core::PrincipalId;
use warden_store::TenantStore as _;
use warden_test::authority::Setup;
use warden_test::wait::eventually;

use crate::support::{assert_oauth_error, audit_log, issued, Agent, Harness, JWT_BEARER};

/// A token request with Basic credentials, sent from `from` (a loopback address).
async fn basic_from(
    h: &Harness,
    from: &str,
    id: &str,
    secret: &str,
) -> (u16, Value, Option<String>) {
    let ip: IpAddr = from.parse().unwrap();
    let http = reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap();
    let res = http
        .post(h.token_endpoint())
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap(), retry_after)
}

async fn basic(h: &Harness, id: &str, secret: &str) -> (u16, Value) {
    let (s, v, _) = basic_from(h, "127.0.0.1", id, secret).await;
    (s, v)
}

/// A client secret for `agent`, made through the lifecycle API.
async fn new_secret(h: &Harness, agent: &Agent) -> String {
    let (s, v) = h
        .admin(
            Method::POST,
            &format!("/principals/{}/secret", agent.id),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["client_secret"].as_str().unwrap().to_owned()
}

async fn stored(h: &Harness, agent: &Agent) -> String {
    let id = PrincipalId::parse(&agent.id).unwrap();
    h.store
        .principal(&id)
        .await
        .unwrap()
        .unwrap()
        .secret_hash
        .unwrap()
}

/// Plants `secret` as an earlier release stored it: an Argon2id PHC string.
async fn plant_legacy(h: &Harness, agent: &Agent, secret: &str) -> String {
    let phc = hash_legacy_secret(secret.as_bytes(), &mut OsRng).unwrap();
    let id = PrincipalId::parse(&agent.id).unwrap();
    h.store
        .set_principal_secret_hash(&id, &phc, h.now())
        .await
        .unwrap();
    phc
}

fn minted_form() -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    format!("wsec_{}", URL_SAFE_NO_PAD.encode(raw))
}

#[tokio::test]
async fn a_new_secret_is_stored_as_a_digest_under_the_master_key() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "tool", "x:read").await;
    let secret = new_secret(&h, &a).await;
    let kept = stored(&h, &a).await;
    assert!(kept.starts_with("$hmac-sha256$"), "{kept}");
    assert!(!kept.contains("argon2") && !kept.contains(&secret));
    // The digest is the HMAC under the key derived from this authority's master key.
    let key = ClientSecretKey::derive(&SealingKey::from_bytes(&h.master_key).unwrap());
    assert_eq!(kept, key.digest(secret.as_bytes()));
    issued(&basic(&h, &a.id, &secret).await);
    issued(&basic(&h, &a.id, &secret).await);
    assert_oauth_error(&basic(&h, &a.id, "wsec_wrong").await, 401, "invalid_client");
    let mut near = secret.clone();
    near.pop();
    assert_oauth_error(&basic(&h, &a.id, &near).await, 401, "invalid_client");
    // A digest is a digest of this secret only: another client's is refused.
    let b = h.agent(&t, "other", "x:read").await;
    let _ = new_secret(&h, &b).await;
    assert_oauth_error(&basic(&h, &b.id, &secret).await, 401, "invalid_client");
}

#[tokio::test]
async fn a_legacy_argon2id_secret_is_accepted_and_then_kept_as_a_digest() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "old-tool", "x:read").await;
    let secret = minted_form();
    let phc = plant_legacy(&h, &a, &secret).await;
    // A wrong secret changes nothing.
    assert_oauth_error(
        &basic(&h, &a.id, &minted_form()).await,
        401,
        "invalid_client",
    );
    assert_eq!(stored(&h, &a).await, phc);

    issued(&basic(&h, &a.id, &secret).await);
    let kept = stored(&h, &a).await;
    let key = ClientSecretKey::derive(&SealingKey::from_bytes(&h.master_key).unwrap());
    assert_eq!(kept, key.digest(secret.as_bytes()));
    // And it keeps working from the digest; a wrong one is still refused.
    issued(&basic(&h, &a.id, &secret).await);
    assert_oauth_error(
        &basic(&h, &a.id, &minted_form()).await,
        401,
        "invalid_client",
    );
    assert_eq!(stored(&h, &a).await, kept);
}

#[tokio::test]
async fn a_legacy_secret_warden_did_not_mint_keeps_its_slow_hash() {
    let h = Harness::start().await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "hand-set", "x:read").await;
    let phc = plant_legacy(&h, &a, "hunter2").await;
    issued(&basic(&h, &a.id, "hunter2").await);
    assert_eq!(stored(&h, &a).await, phc);
}

/// Entries in the log file as it is on disk right now.
fn entries(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("entry").cloned())
        .collect()
}

fn throttled(got: &(u16, Value, Option<String>), why: &str) {
    assert_oauth_error(&(got.0, got.1.clone()), 429, "temporarily_unavailable");
    let d = got.1["error_description"].as_str().unwrap();
    assert!(d.contains(why), "{d}");
    let secs: u32 = got.2.as_deref().expect("Retry-After").parse().unwrap();
    assert!(secs >= 1);
}

#[tokio::test]
async fn failures_from_one_address_are_refused_429_without_a_check_there_only() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        audit: Some(audit_log(dir.path())),
        ..Setup::default()
    };
    let h = Harness::launch(setup, |c| {
        c.client_auth_budgets.per_address = FailureBudget {
            burst: 3,
            per_minute: 1,
        };
    })
    .await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "target", "x:read").await;
    let b = h.agent(&t, "bystander", "x:read").await;
    let secret_a = new_secret(&h, &a).await;
    let secret_b = new_secret(&h, &b).await;
    const ATTACKER: &str = "127.0.0.1";
    for _ in 0..3 {
        let got = basic_from(&h, ATTACKER, &a.id, &minted_form()).await;
        assert_oauth_error(&(got.0, got.1), 401, "invalid_client");
    }
    // The failure past the budget is the first 429 ...
    let got = basic_from(&h, ATTACKER, &a.id, &minted_form()).await;
    throttled(&got, "from this address");
    // ... and from then on nothing from that address is checked: the right secret, another
    // client's, and an unknown client id are all refused alike.
    throttled(
        &basic_from(&h, ATTACKER, &a.id, &secret_a).await,
        "from this address",
    );
    throttled(
        &basic_from(&h, ATTACKER, &b.id, &secret_b).await,
        "from this address",
    );
    throttled(
        &basic_from(&h, ATTACKER, "agt_AAAAAAAAAAAAAAAAAAAAAA", "x").await,
        "from this address",
    );
    // Another address is not held back, for the attacked client or any other.
    let (s, v, _) = basic_from(&h, "127.0.0.2", &a.id, &secret_a).await;
    issued(&(s, v));
    let (s, v, _) = basic_from(&h, "127.0.0.2", &b.id, &secret_b).await;
    issued(&(s, v));
    // Successes spend nothing: many in a row stay fine.
    for _ in 0..5 {
        let (s, v, _) = basic_from(&h, "127.0.0.2", &a.id, &secret_a).await;
        issued(&(s, v));
    }
    // The throttled refusals are on record.
    assert!(
        eventually(|| {
            entries(dir.path()).iter().any(|e| {
                e["decision"] == "deny"
                    && e["client_ip"] == ATTACKER
                    && e["reasons"][0] == "temporarily_unavailable"
                    && e["reasons"][1]
                        .as_str()
                        .is_some_and(|r| r.contains("too many failed client authentications"))
            })
        })
        .await,
        "{:?}",
        entries(dir.path())
    );
}

#[tokio::test]
async fn failures_as_one_client_from_many_addresses_lock_that_client_only() {
    let h = Harness::start_with(|c| {
        c.client_auth_budgets.per_client = FailureBudget {
            burst: 2,
            per_minute: 1,
        };
    })
    .await;
    let t = h.tenant("acme").await;
    let a = h.agent(&t, "target", "x:read").await;
    let b = h.agent(&t, "bystander", "x:read").await;
    let secret_a = new_secret(&h, &a).await;
    let secret_b = new_secret(&h, &b).await;
    for from in ["127.0.0.11", "127.0.0.12"] {
        let got = basic_from(&h, from, &a.id, &minted_form()).await;
        assert_oauth_error(&(got.0, got.1), 401, "invalid_client");
    }
    throttled(
        &basic_from(&h, "127.0.0.13", &a.id, &minted_form()).await,
        "as this client",
    );
    // Now the client is refused from anywhere, without a look at what it sends: the right
    // secret, or a valid assertion.
    throttled(
        &basic_from(&h, "127.0.0.14", &a.id, &secret_a).await,
        "as this client",
    );
    let assertion = h.assertion(&a);
    let got = h
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .await;
    assert_oauth_error(&got, 429, "temporarily_unavailable");
    // Other clients, from the same addresses, are unaffected.
    let (s, v, _) = basic_from(&h, "127.0.0.13", &b.id, &secret_b).await;
    issued(&(s, v));
    // Failures naming clients that do not exist spend no client budget (nothing to key).
    for _ in 0..5 {
        let got = basic_from(&h, "127.0.0.15", "agt_AAAAAAAAAAAAAAAAAAAAAA", "x").await;
        assert_oauth_error(&(got.0, got.1), 401, "invalid_client");
    }
}
