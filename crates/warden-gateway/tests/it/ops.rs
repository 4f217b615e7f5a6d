//! The ops listener: `/healthz`, `/metrics` and `/_warden` are served there, and on the
//! public listener they are paths like any other.

use reqwest::Method;
use serde_json::Value;

use crate::support::{metric, Env, Options, ADMIN};

/// Status, `WWW-Authenticate` and body of a GET on the public listener.
async fn public(env: &Env, path: &str, token: Option<&str>) -> (u16, Option<String>, String) {
    let res = env.get(path, token).await;
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, res.text().await.unwrap())
}

#[tokio::test]
async fn the_public_listener_answers_ops_paths_as_it_answers_any_unrouted_path() {
    let (env, _) = Env::start(Options::default()).await;
    let token = env.token("crm:contacts:read").await;
    for credential in [None, Some(token.as_str())] {
        let unrouted = public(&env, "/nowhere", credential).await;
        assert!(unrouted.0 == 401 || unrouted.0 == 404, "{unrouted:?}");
        for path in [
            "/healthz",
            "/metrics",
            "/_warden",
            "/_warden/restrictions",
            "/_warden/restrictions/agt_x",
        ] {
            let got = public(&env, path, credential).await;
            assert_eq!(
                (got.0, &got.1),
                (unrouted.0, &unrouted.1),
                "{path}: {got:?}"
            );
            assert!(!got.2.contains("warden_gateway_"), "{path}: {}", got.2);
            assert!(!got.2.contains("revocation"), "{path}: {}", got.2);
        }
    }
    // With a valid token, an unrouted path is a route refusal, the admin token no key.
    let with_admin = env
        .http
        .get(format!("{}/_warden/restrictions", env.gateway_url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(with_admin.status(), 401);
}

#[tokio::test]
async fn the_ops_listener_serves_health_metrics_and_the_admin_api() {
    let (env, _) = Env::start(Options::default()).await;
    let health = env.ops_get("/healthz").await;
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["gateway_key"], env.gateway.key_id());

    let token = env.token("crm:contacts:read").await;
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
    assert_eq!(env.get("/crm/a", Some(&token)).await.status(), 200);
    assert_eq!(env.get("/crm/a", None).await.status(), 401);
    let res = env.ops_get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(
        metric(
            &text,
            "warden_gateway_decisions_total{decision=\"allow\",phase=\"forward\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "warden_gateway_decisions_total{decision=\"deny\",phase=\"verify\"}"
        ),
        1.0
    );
    assert_eq!(metric(&text, "warden_gateway_revocation_view_fresh"), 1.0);
    assert_eq!(metric(&text, "warden_gateway_verified_tokens_cached"), 1.0);
    // Counters are typed as such, under the name without `_total`, as Prometheus expects.
    assert!(text.contains("# TYPE warden_gateway_connections_refused counter\n"));
    assert!(text.contains("\nwarden_gateway_connections_refused_total 0\n"));
    // Every sample line is `name{labels} value` with a number for a value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    let admin = |method: Method, path: &str, token: Option<&str>| {
        let mut req = env.http.request(method, format!("{}{path}", env.ops_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        admin(Method::GET, "/_warden/restrictions", Some(ADMIN)).await,
        200
    );
    assert_eq!(admin(Method::GET, "/_warden/restrictions", None).await, 401);
    assert_eq!(
        admin(Method::GET, "/_warden/restrictions", Some(token.as_str())).await,
        401
    );
    assert_eq!(
        admin(Method::GET, "/crm/a", Some(token.as_str())).await,
        404
    );
}
