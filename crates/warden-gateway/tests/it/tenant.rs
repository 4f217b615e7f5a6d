//! A route's `tenant`: confirmed with the authority at start (by id or by name), and
//! enforced by the gateway itself in the `tenant` phase, with or without policies.

use std::sync::Arc;

use serde_json::Value;

use crate::support::{launch_gateway, Env, Launched, Options};

const OTHER_TENANT: &str = "the token belongs to another tenant than this route's";

/// `[gateway]` with one route per `(prefix, tenant)`, each to the echo upstream.
fn tenant_routes(env: &Env, routes: &[(&str, Option<&str>)]) -> String {
    let mut toml = format!("[gateway]\nauthority = \"{}\"\n", env.authority_url);
    for (prefix, tenant) in routes {
        toml.push_str(&format!(
            "\n[[gateway.route]]\nprefix = \"{prefix}\"\nupstream = \"{}\"\naudience = \"up\"\n",
            env.upstream_url
        ));
        if let Some(t) = tenant {
            toml.push_str(&format!("tenant = \"{t}\"\n"));
        }
        toml.push_str("[gateway.route.scopes]\nGET = \"crm:contacts:read\"\n");
    }
    toml
}

async fn launch(env: &Env, toml: &str) -> Result<Launched, warden_gateway::StartError> {
    launch_gateway(toml, &env.clock, warden_test::gateway::gate(true)).await
}

async fn get(env: &Env, gw: &Launched, path: &str, token: &str) -> (u16, Value) {
    let res = env
        .http
        .get(format!("{}{path}", gw.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn tenant_id(env: &Env, name: &str) -> String {
    let v: Value = env
        .http
        .get(format!("{}/admin/v1/tenants/{name}", env.authority_url))
        .bearer_auth(crate::support::ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_routes_tenant_is_enforced_without_any_policy_by_id_or_by_name() {
    // No policy_dir: the tenant-isolation policy is nowhere to be found.
    let (env, _) = Env::start(Options::default()).await;
    assert!(env.gateway.policies.is_none());
    let acme = tenant_id(&env, "acme").await;
    let toml = tenant_routes(
        &env,
        &[
            ("/by-id/", Some(&acme)),
            ("/by-name/", Some("acme")),
            ("/shared/", None),
        ],
    );
    let gw = launch(&env, &toml).await.unwrap();
    // The name was resolved to the id the authority knows.
    for path in ["/by-id/x", "/by-name/x"] {
        let route = gw.gateway.config.route_for(path).unwrap();
        assert_eq!(route.tenant_id(), Some(acme.as_str()), "{path}");
    }

    let own = env.token("crm:contacts:read").await;
    let (globex, agent, key) = env.tenant_with_agent("globex", "crm:contacts:read").await;
    let foreign = env.token_of(&agent, &key, "crm:contacts:read").await;
    assert_ne!(globex, acme);

    for path in ["/by-id/a", "/by-name/a", "/shared/a"] {
        let (s, v) = get(&env, &gw, path, &own).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    for path in ["/by-id/a", "/by-name/a"] {
        let (s, v) = get(&env, &gw, path, &foreign).await;
        assert_eq!(s, 403, "{path}: {v}");
        assert_eq!(v["detail"], OTHER_TENANT, "{path}: {v}");
    }
    let (s, v) = get(&env, &gw, "/shared/a", &foreign).await;
    assert_eq!(s, 200, "a route without a tenant is shared: {v}");

    // Audited like any refusal, by phase, before any policy ran.
    let audit = Arc::clone(&gw.audit);
    assert!(
        crate::support::eventually(|| audit
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.decision == "deny"
                && e.phase == "tenant"
                && e.reason == OTHER_TENANT
                && e.status == 403
                && e.sub.as_deref() == Some(agent.as_str())
                && e.policy_ids.is_empty())
            .count()
            == 2)
        .await,
        "{:?}",
        gw.audit.lock().unwrap()
    );
}

#[tokio::test]
async fn a_tenant_policy_does_not_replace_the_tenant_phase() {
    // With the example policies (tenant isolation among them), the gateway's own phase still
    // refuses first: the refusal names the `tenant` phase, not a policy.
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for name in ["default.cedar", "tenant_isolation.cedar"] {
        std::fs::copy(repo.join(name), dir.path().join(name)).unwrap();
    }
    let (env, _) = Env::start(Options::default()).await;
    let mut toml = tenant_routes(&env, &[("/acme/", Some("acme"))]);
    toml = toml.replacen(
        "[gateway]\n",
        &format!("[gateway]\npolicy_dir = \"{}\"\n", dir.path().display()),
        1,
    );
    let gw = launch(&env, &toml).await.unwrap();
    let (_, agent, key) = env.tenant_with_agent("globex", "crm:contacts:read").await;
    let foreign = env.token_of(&agent, &key, "crm:contacts:read").await;
    let (s, v) = get(&env, &gw, "/acme/a", &foreign).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["detail"], OTHER_TENANT, "{v}");
    assert!(v.get("policy_ids").is_none(), "{v}");
    let own = env.token("crm:contacts:read").await;
    let (s, v) = get(&env, &gw, "/acme/a", &own).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn an_unknown_route_tenant_fails_the_start_with_its_line_and_reason() {
    let (env, _) = Env::start(Options::default()).await;
    for written in ["nope", "tnt_AAAAAAAAAAAAAAAAAAAAAA", "acme "] {
        let toml = tenant_routes(&env, &[("/ok/", None), ("/t/", Some(written))]);
        let line = toml
            .lines()
            .position(|l| l.starts_with("tenant = "))
            .unwrap()
            + 1;
        let Err(e) = launch(&env, &toml).await else {
            panic!("`{written}` was accepted");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "test.toml:{line}: route `/t/`: tenant `{written}`: no such tenant at the authority"
            )
        );
    }
}
