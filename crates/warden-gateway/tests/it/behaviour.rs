//! Behavioural defence over real sockets: each anomaly triggers its configured response,
//! alerts reach a real webhook signed by the gateway's key, an admin lifts restrictions, and
//! long steady traffic raises nothing. Time moves only when the test moves the clock.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Method;
use serde_json::Value;
use tokio::net::TcpListener;
use warden_core::jwks::JwkSet;
use warden_core::KeySet;

use crate::support::{eventually, metric, Env, Options, ADMIN};

const READ: &str = "crm:contacts:read";
const READ_WRITE: &str = "crm:contacts:read crm:contacts:write";
const HOME: &str = "203.0.113.7";

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on loopback that keeps every alert it is sent.
struct Hook {
    url: String,
    received: Received,
}

impl Hook {
    async fn start() -> Self {
        let received: Received = Arc::default();
        let keep = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let keep = Arc::clone(&keep);
                async move {
                    keep.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        Self { url, received }
    }

    /// Waits for the `n`th alert and returns it, its signature checked.
    async fn alert(&self, env: &Env, n: usize) -> Value {
        let received = Arc::clone(&self.received);
        assert!(
            eventually(|| received.lock().unwrap().len() >= n).await,
            "alert {n} never reached the webhook"
        );
        let (headers, body) = self.received.lock().unwrap()[n - 1].clone();
        verified_alert(env, &headers, &body).await
    }
}

/// Checks the `Warden-Signature` of an alert against the gateway's key as the authority's
/// JWKS publishes it, and returns the alert.
async fn verified_alert(env: &Env, headers: &HeaderMap, body: &[u8]) -> Value {
    let header = headers["warden-signature"].to_str().unwrap().to_owned();
    let field = |name: &str| {
        let start = header.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let len = header[start..].find('"').unwrap();
        header[start..start + len].to_owned()
    };
    let kid = field("kid");
    assert_eq!(kid, env.gateway.key_id());
    assert_eq!(field("alg"), "EdDSA");
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(field("sig"))
        .unwrap()
        .try_into()
        .unwrap();
    let set: JwkSet = env
        .http
        .get(format!("{}/.well-known/jwks.json", env.authority_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = KeySet::from_jwks(&set).unwrap();
    let key = keys
        .get(&kid)
        .expect("the authority publishes the gateway's key");
    assert!(key.verify(body, &sig), "signature over the exact body");
    let mut tampered = body.to_vec();
    tampered[1] ^= 1;
    assert!(!key.verify(&tampered, &sig), "a changed body fails");
    assert_eq!(headers["content-type"], "application/json");
    serde_json::from_slice(body).unwrap()
}

/// Behaviour settings for the tests: mature after 5 windows of 60 s, a burst is more than
/// 4 × the baseline (and at least 10 requests), a storm is 5 refusals.
fn behaviour(hook: &Hook, responses: &str) -> String {
    format!(
        "[gateway.behaviour]\nenabled = true\nwindow_secs = 60\nmature_after_windows = 5\n\
         burst_factor = 4.0\nburst_min_requests = 10\ndenied_storm_threshold = 5\n\
         alert_webhook = \"{}\"\n{responses}\n",
        hook.url
    )
}

async fn call(env: &Env, method: Method, path: &str, token: &str, from: &str) -> reqwest::Response {
    env.http
        .request(method, format!("{}{path}", env.gateway_url))
        .bearer_auth(token)
        .header("x-forwarded-for", from)
        .send()
        .await
        .unwrap()
}

async fn status(env: &Env, method: Method, path: &str, token: &str, from: &str) -> u16 {
    call(env, method, path, token, from).await.status().as_u16()
}

/// `windows` windows of steady traffic: per window, the given requests from `HOME`, each
/// answered 200; ends at the start of the next window.
async fn learn(env: &Env, token: &str, windows: usize, per_window: &[(Method, &str)]) {
    for _ in 0..windows {
        for (m, path) in per_window {
            assert_eq!(status(env, m.clone(), path, token, HOME).await, 200);
        }
        env.clock.advance(60);
    }
}

async fn admin(env: &Env, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = env.http.request(method, format!("{}{path}", env.ops_url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn raised(env: &Env) -> u64 {
    env.gateway.alerts.as_ref().unwrap().raised_total()
}

#[tokio::test]
async fn a_burst_is_throttled_alerted_and_lifted_by_an_admin() {
    let hook = Hook::start().await;
    let toml = behaviour(&hook, "velocity = \"throttle\"\nthrottle_per_sec = 1");
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let token = env.forge(|c| c.scope = READ.into());
    let get = (Method::GET, "/crm/a");
    learn(&env, &token, 6, &[get.clone(), get.clone(), get.clone()]).await;

    // Baseline 3 per window: 12 requests are fine, the 13th is more than 4 × 3.
    for i in 1..=12 {
        assert_eq!(
            (i, status(&env, Method::GET, "/crm/a", &token, HOME).await),
            (i, 200)
        );
    }
    assert_eq!(raised(&env), 0);
    let res = call(&env, Method::GET, "/crm/a", &token, HOME).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["restriction"], "throttle");
    assert!(problem["detail"].as_str().unwrap().contains("velocity"));
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 429);
    // One request per second from now on.
    env.clock.advance(1);
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 200);
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 429);

    let alert = hook.alert(&env, 1).await;
    assert_eq!(alert["type"], "warden.behaviour.alert");
    assert_eq!(alert["anomaly"], "velocity");
    assert_eq!(alert["response"], "throttle");
    assert_eq!(alert["restriction"]["kind"], "throttle");
    assert_eq!(alert["sub"], env.agent_id.as_str());
    assert_eq!(alert["request"]["client_ip"], HOME);
    assert_eq!(raised(&env), 1, "reported once per window");

    // The admin surface needs the admin token.
    let list = "/_warden/restrictions";
    let lift = format!("{list}/{}", env.agent_id);
    assert_eq!(admin(&env, Method::GET, list, None).await.0, 401);
    assert_eq!(
        admin(&env, Method::GET, list, Some("wadm_wrong")).await.0,
        401
    );
    assert_eq!(admin(&env, Method::DELETE, &lift, None).await.0, 401);
    assert_eq!(
        admin(&env, Method::DELETE, &lift, Some(&token)).await.0,
        401
    );
    let (code, listed) = admin(&env, Method::GET, list, Some(ADMIN)).await;
    assert_eq!(code, 200);
    let restrictions = listed["restrictions"].as_array().unwrap();
    assert_eq!(restrictions.len(), 1, "{listed}");
    assert_eq!(restrictions[0]["identity"], env.agent_id.as_str());
    assert_eq!(restrictions[0]["kind"], "throttle");
    assert_eq!(restrictions[0]["cause"], "velocity");

    let (code, lifted) = admin(&env, Method::DELETE, &lift, Some(ADMIN)).await;
    assert_eq!(code, 200, "{lifted}");
    assert_eq!(lifted["lifted"][0]["kind"], "throttle");
    // Traffic passes again.
    for _ in 0..3 {
        assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 200);
    }
    let (_, listed) = admin(&env, Method::GET, list, Some(ADMIN)).await;
    assert_eq!(listed["restrictions"], serde_json::json!([]));
    assert_eq!(admin(&env, Method::DELETE, &lift, Some(ADMIN)).await.0, 404);

    // The alert and the lift are audited.
    let audit = Arc::clone(&env.audit);
    assert!(eventually(|| audit.lock().unwrap().iter().any(|e| e.decision == "lift")).await);
    let events = audit.lock().unwrap().clone();
    let alert = events.iter().find(|e| e.decision == "alert").unwrap();
    assert_eq!(
        (alert.phase, alert.anomaly, alert.response),
        ("behaviour", Some("velocity"), Some("throttle"))
    );
    let lift = events.iter().find(|e| e.decision == "lift").unwrap();
    assert_eq!(lift.response, Some("throttle"));
    assert_eq!(lift.sub.as_deref(), Some(env.agent_id.as_str()));
    let refused = events
        .iter()
        .filter(|e| e.decision == "deny" && e.phase == "behaviour")
        .count();
    assert_eq!(refused, 3, "each throttled request is audited");
}

#[tokio::test]
async fn a_downgraded_identity_may_read_but_not_write_until_it_expires() {
    let hook = Hook::start().await;
    let toml = behaviour(&hook, "velocity = \"downgrade\"\ndowngrade_secs = 600");
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let token = env.forge(|c| c.scope = READ_WRITE.into());
    let (get, write) = ((Method::GET, "/crm/a"), (Method::POST, "/crm/a"));
    learn(&env, &token, 6, &[get.clone(), get, write]).await;
    for _ in 0..13 {
        assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 200);
    }
    assert_eq!(raised(&env), 1);

    let res = call(&env, Method::POST, "/crm/a", &token, HOME).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["restriction"], "downgrade");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("GET, HEAD and OPTIONS"),
        "{problem}"
    );
    // Another token of the same identity is downgraded too; reads still pass.
    let fresh = env.forge(|c| c.scope = READ_WRITE.into());
    assert_eq!(
        status(&env, Method::POST, "/crm/a", &fresh, HOME).await,
        403
    );
    assert_eq!(status(&env, Method::GET, "/crm/a", &fresh, HOME).await, 200);
    let alert = hook.alert(&env, 1).await;
    assert_eq!(
        (&alert["anomaly"], &alert["restriction"]["kind"]),
        (&Value::from("velocity"), &Value::from("downgrade"))
    );

    // A downgrade ends by itself.
    env.clock.advance(601);
    let later = env.forge(|c| c.scope = READ_WRITE.into());
    assert_eq!(
        status(&env, Method::POST, "/crm/a", &later, HOME).await,
        200
    );
}

#[tokio::test]
async fn a_new_network_gets_the_configured_response() {
    let hook = Hook::start().await;
    let toml = behaviour(&hook, "new_network = \"throttle\"\nthrottle_per_sec = 2");
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let token = env.forge(|c| c.scope = READ.into());
    learn(&env, &token, 6, &[(Method::GET, "/crm/a")]).await;
    // Another address in the same /24 is not a new network.
    assert_eq!(
        status(&env, Method::GET, "/crm/a", &token, "203.0.113.99").await,
        200
    );
    assert_eq!(raised(&env), 0);

    let res = call(&env, Method::GET, "/crm/a", &token, "198.51.100.9").await;
    assert_eq!(
        res.status(),
        429,
        "stopped at the request from the new network"
    );
    assert_eq!(raised(&env), 1);
    let alert = hook.alert(&env, 1).await;
    assert_eq!(alert["anomaly"], "new_network");
    assert!(
        alert["detail"]
            .as_str()
            .unwrap()
            .contains("198.51.100.0/24"),
        "{alert}"
    );
    assert_eq!(alert["restriction"]["per_sec"], 2);
    // Throttled to two a second, from any network.
    env.clock.advance(1);
    assert_eq!(
        status(&env, Method::GET, "/crm/a", &token, "198.51.100.9").await,
        200
    );
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 200);
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 429);
    assert_eq!(raised(&env), 1, "the network is known now");
}

#[tokio::test]
async fn novelty_on_a_mature_identity_raises_an_alert_only() {
    let hook = Hook::start().await;
    let toml = behaviour(&hook, "novelty = \"alert\"");
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let token = env.forge(|c| c.scope = READ_WRITE.into());
    learn(&env, &token, 6, &[(Method::GET, "/crm/a")]).await;
    assert_eq!(raised(&env), 0);

    assert_eq!(
        status(&env, Method::POST, "/crm/a", &token, HOME).await,
        200
    );
    let alert = hook.alert(&env, 1).await;
    assert_eq!(alert["anomaly"], "novelty");
    assert_eq!(alert["response"], "alert");
    assert_eq!(alert["restriction"], Value::Null);
    assert_eq!(alert["request"]["method"], "POST");
    assert_eq!(alert["request"]["route"], "/crm/");
    // Learned: the same method again is not news; a new route is.
    assert_eq!(
        status(&env, Method::POST, "/crm/b", &token, HOME).await,
        200
    );
    assert_eq!(raised(&env), 1);
    assert_eq!(
        status(&env, Method::GET, "/open/x", &token, HOME).await,
        200
    );
    assert_eq!(raised(&env), 2);
    let (_, listed) = admin(&env, Method::GET, "/_warden/restrictions", Some(ADMIN)).await;
    assert_eq!(listed["restrictions"], serde_json::json!([]));
}

#[tokio::test]
async fn a_denied_storm_quarantines_the_acting_principal_through_the_authority() {
    let hook = Hook::start().await;
    let toml = behaviour(&hook, "denied_storm = \"quarantine\"");
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let token = env.forge(|c| c.scope = READ.into());
    let other = env.forge(|c| c.scope = READ.into());
    let claims = warden_core::jws::UnverifiedToken::parse(&token)
        .unwrap()
        .claims_unverified::<warden_core::AccessClaims>()
        .unwrap();
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 200);
    // A read-only token trying to write, again and again.
    for _ in 0..4 {
        assert_eq!(
            status(&env, Method::POST, "/crm/a", &token, HOME).await,
            403
        );
    }
    assert_eq!(raised(&env), 0);
    assert_eq!(
        status(&env, Method::POST, "/crm/a", &token, HOME).await,
        403
    );
    assert_eq!(raised(&env), 1);

    // Refused at once, and revoked at the authority, which every gateway hears.
    assert_eq!(status(&env, Method::GET, "/crm/a", &token, HOME).await, 401);
    let revocations = Arc::clone(&env.gateway.revocations);
    assert!(
        eventually(|| revocations.check(&claims).is_err()).await,
        "the quarantine never reached the authority's revocation stream"
    );
    let res = call(&env, Method::GET, "/crm/a", &token, HOME).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("revoked"), "{challenge}");
    // The principal acting through it is revoked: its other tokens end too, and it gets no
    // new one until an operator reinstates it.
    let other_claims = warden_test::keys::claims_of(&other);
    assert!(eventually(|| revocations.check(&other_claims).is_err()).await);
    assert_eq!(status(&env, Method::GET, "/crm/a", &other, HOME).await, 401);
    let assertion = warden_test::keys::assertion(
        &env.agent_id,
        &env.agent_key,
        &env.auth.token_endpoint(),
        env.now(),
    );
    let refused = env.auth.token_with_assertion(&assertion, Some(READ)).await;
    warden_test::authority::assert_oauth_error(&refused, 401, "invalid_client");
    let (s, shown) = env
        .auth
        .admin(Method::GET, &format!("/principals/{}", env.agent_id), None)
        .await;
    assert_eq!(s, 200);
    assert!(
        shown["revoked"]["reason"]
            .as_str()
            .unwrap()
            .contains("denied_storm"),
        "{shown}"
    );
    env.auth.reinstate(&env.agent_id).await;
    env.clock.advance(1);
    let again = env.token(READ).await;
    assert_eq!(status(&env, Method::GET, "/crm/a", &again, HOME).await, 200);

    let alert = hook.alert(&env, 1).await;
    assert_eq!(alert["anomaly"], "denied_storm");
    assert_eq!(alert["response"], "quarantine");
    assert_eq!(alert["restriction"]["jti"], claims.jti.as_str());
    let alerts = env.gateway.alerts.as_ref().unwrap();
    assert!(eventually(|| alerts.revoked_total() == 1).await);
}

#[tokio::test]
async fn steady_traffic_for_hundreds_of_windows_raises_nothing() {
    let hook = Hook::start().await;
    // The harshest responses everywhere: a false positive would show at once.
    let toml = behaviour(
        &hook,
        "velocity = \"quarantine\"\nnew_network = \"quarantine\"\nnovelty = \"quarantine\"\n\
         denied_storm = \"quarantine\"",
    );
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let combos = [
        (Method::GET, "/crm/contacts"),
        (Method::POST, "/crm/contacts"),
        (Method::GET, "/open/feed"),
    ];
    let mut token = String::new();
    let mut requests = 0usize;
    for window in 0..300usize {
        // Idle stretches, as at night: 30 windows without a request every 60 windows, and
        // the busiest window right after (the baseline has decayed to almost nothing).
        let after_idle = window % 60 == 3 && window > 3;
        if after_idle {
            env.clock.advance(30 * 60);
        }
        if after_idle || window % 6 == 0 {
            token = env.forge(|c| c.scope = READ_WRITE.into());
        }
        // 2 to 5 requests a window, over the identity's usual routes, from its usual /24.
        let n = 2 + window % 4;
        for i in 0..n {
            let (m, path) = &combos[(window + i) % combos.len()];
            let from = format!("203.0.113.{}", 1 + (window * 7 + i) % 200);
            assert_eq!(
                (window, status(&env, m.clone(), path, &token, &from).await),
                (window, 200)
            );
            requests += 1;
        }
        // Now and then a mistaken request.
        if window % 3 == 0 {
            assert_eq!(
                status(&env, Method::GET, "/nowhere", &token, HOME).await,
                404
            );
            requests += 1;
        }
        env.clock.advance(60);
    }
    assert_eq!(raised(&env), 0);
    let (_, listed) = admin(&env, Method::GET, "/_warden/restrictions", Some(ADMIN)).await;
    assert_eq!(listed["restrictions"], serde_json::json!([]));
    // Every decision reached the audit log, and none of them is an alert.
    let audit = Arc::clone(&env.audit);
    assert!(eventually(|| audit.lock().unwrap().len() >= requests).await);
    assert!(!audit.lock().unwrap().iter().any(|e| e.decision == "alert"));
    assert!(hook.received.lock().unwrap().is_empty());
    let metrics = env.metrics().await;
    assert_eq!(metric(&metrics, "warden_gateway_alerts_raised_total"), 0.0);
    assert_eq!(metric(&metrics, "warden_gateway_behaviour_identities"), 1.0);
}

#[tokio::test]
async fn the_admin_surface_refuses_bad_requests() {
    let hook = Hook::start().await;
    let toml = behaviour(&hook, "");
    let (env, _) = Env::start(Options {
        extra_toml: &toml,
        ..Options::default()
    })
    .await;
    let list = "/_warden/restrictions";
    let res = env
        .http
        .get(format!("{}{list}", env.ops_url))
        .basic_auth("admin", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        admin(&env, Method::GET, "/_warden/nothing", None).await.0,
        401
    );
    assert_eq!(
        admin(&env, Method::GET, "/_warden/nothing", Some(ADMIN))
            .await
            .0,
        404
    );
    assert_eq!(admin(&env, Method::POST, list, Some(ADMIN)).await.0, 405);
    assert_eq!(
        admin(&env, Method::GET, &format!("{list}/agt_x"), Some(ADMIN))
            .await
            .0,
        405
    );
    let (code, problem) = admin(&env, Method::DELETE, &format!("{list}/"), Some(ADMIN)).await;
    assert_eq!(code, 400, "{problem}");
    let long = format!("{list}/{}", "a".repeat(600));
    assert_eq!(admin(&env, Method::DELETE, &long, Some(ADMIN)).await.0, 400);
    let (code, problem) = admin(&env, Method::DELETE, &format!("{list}/agt_x"), Some(ADMIN)).await;
    assert_eq!(code, 404);
    assert!(problem["detail"].as_str().unwrap().contains("agt_x"));
}
