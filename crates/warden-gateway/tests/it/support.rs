//! An authority, a gateway and an echo upstream on loopback ports, sharing a clock the test
//! moves (all from `warden-test`), and the routes these tests configure.

use std::path::Path;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::Value;
use warden_core::claims::AccessClaims;
use warden_core::time::ManualClock;
use warden_core::SigningKey;
use warden_gateway::audit::AuditEvent;
use warden_gateway::Gateway;
use warden_test::authority::{Agent, TestAuthority};
use warden_test::gateway::{self as launcher, Gate};

pub use warden_test::gateway::Launched;
pub use warden_test::wait::eventually;
pub use warden_test::ADMIN;

pub struct Env {
    pub auth: TestAuthority,
    pub authority_url: String,
    pub gateway_url: String,
    /// The gateway's ops listener: `/healthz`, `/metrics`, `/_warden`.
    pub ops_url: String,
    pub gateway: Arc<Gateway>,
    /// The echo upstream every route of [`routes_toml`] forwards to.
    pub upstream_url: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub audit: Arc<Mutex<Vec<AuditEvent>>>,
    pub agent_id: String,
    pub agent_key: SigningKey,
}

pub fn routes_toml(
    authority: &str,
    upstream: &str,
    policy_dir: Option<&Path>,
    extra: &str,
) -> String {
    let policy = policy_dir.map_or(String::new(), |p| {
        format!("policy_dir = \"{}\"\n", p.display())
    });
    format!(
        r#"
[gateway]
authority = "{authority}"
upstream_timeout_ms = 500
{policy}{extra}
[[gateway.route]]
prefix = "/crm/"
upstream = "{upstream}"
audience = "crm"
[gateway.route.scopes]
GET = "crm:contacts:read"
POST = "crm:contacts:write"

[[gateway.route]]
prefix = "/limited/"
upstream = "{upstream}"
audience = "limited"
rate = 1
burst = 2
[gateway.route.scopes]
GET = "crm:contacts:read"

[[gateway.route]]
prefix = "/open/"
upstream = "{upstream}"
audience = "open"
fail_mode = "open"
[gateway.route.scopes]
GET = "crm:contacts:read"

[[gateway.route]]
prefix = "/slow/"
upstream = "{upstream}"
audience = "slow"
[gateway.route.scopes]
GET = "crm:contacts:read"

[[gateway.route]]
prefix = "/down/"
upstream = "http://127.0.0.1:9"
audience = "down"
[gateway.route.scopes]
GET = "crm:contacts:read"
"#
    )
}

pub struct Options<'a> {
    pub policy_dir: Option<&'a Path>,
    /// TOML array of trusted proxies; the tests' client (loopback) is one by default.
    pub trusted_proxies: &'a str,
    pub extra_toml: &'a str,
    pub audit_queue: usize,
    pub audit_open: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            policy_dir: None,
            trusted_proxies: "[\"127.0.0.1/32\"]",
            extra_toml: "",
            audit_queue: 1024,
            audit_open: true,
        }
    }
}

impl Env {
    /// The authority, the echo upstream and a gateway with [`routes_toml`], and tenant `acme`
    /// with one agent holding `crm:contacts:read crm:contacts:write`; the gate of the
    /// gateway's audit writer.
    pub async fn start(opts: Options<'_>) -> (Self, Gate) {
        let auth = TestAuthority::start_with(|c| {
            c.revocation_heartbeat = std::time::Duration::from_millis(100);
        })
        .await;
        let upstream_url = warden_test::upstream::echo().await;
        let extra = format!(
            "audit_queue = {}\ntrusted_proxies = {}\n{}\n",
            opts.audit_queue, opts.trusted_proxies, opts.extra_toml
        );
        let toml = routes_toml(&auth.url, &upstream_url, opts.policy_dir, &extra);
        let gate = launcher::gate(opts.audit_open);
        let launched = launch_gateway(&toml, &auth.clock, Arc::clone(&gate))
            .await
            .unwrap();
        let tenant = auth.tenant("acme").await;
        let Agent { id, key } = auth
            .agent(&tenant, "bot", "crm:contacts:read crm:contacts:write")
            .await;
        (
            Self {
                authority_url: auth.url.clone(),
                clock: Arc::clone(&auth.clock),
                http: auth.http.clone(),
                auth,
                gateway_url: launched.url,
                ops_url: launched.ops_url,
                gateway: launched.gateway,
                upstream_url,
                audit: launched.audit,
                agent_id: id,
                agent_key: key,
            },
            gate,
        )
    }

    pub fn now(&self) -> i64 {
        self.auth.now()
    }

    /// Stops the authority: its listener and every open connection close.
    pub fn stop_authority(&mut self) {
        self.auth.stop();
    }

    /// Starts the authority again on the same address and store.
    pub async fn start_authority(&mut self) {
        self.auth.restart().await;
    }

    /// POSTs to the lifecycle API with the admin token.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.auth.admin(Method::POST, path, Some(body)).await
    }

    /// A token from the real token endpoint.
    pub async fn token(&self, scope: &str) -> String {
        self.token_of(&self.agent_id, &self.agent_key, scope).await
    }

    /// A token from the real token endpoint for the agent `id` with `key`.
    pub async fn token_of(&self, id: &str, key: &SigningKey, scope: &str) -> String {
        let assertion =
            warden_test::keys::assertion(id, key, &self.auth.token_endpoint(), self.now());
        warden_test::authority::issued(
            &self
                .auth
                .token_with_assertion(&assertion, Some(scope))
                .await,
        )
    }

    /// A new tenant with one agent holding `scopes`: its id, the agent's id and key.
    pub async fn tenant_with_agent(
        &self,
        name: &str,
        scopes: &str,
    ) -> (String, String, SigningKey) {
        let tenant = self.auth.tenant(name).await;
        let Agent { id, key } = self.auth.agent(&tenant, "bot", scopes).await;
        (tenant, id, key)
    }

    /// A token of the agent, in a tenant that does not exist, with claims of the test's
    /// choosing, signed by the authority's active key.
    pub fn forge(&self, edit: impl FnOnce(&mut AccessClaims)) -> String {
        self.auth
            .forge(&self.agent_id, "tnt_AAAAAAAAAAAAAAAAAAAAAA", edit)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.gateway_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// A GET to the gateway's ops listener.
    pub async fn ops_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.ops_url))
            .send()
            .await
            .unwrap()
    }

    /// The `/metrics` text of the ops listener.
    pub async fn metrics(&self) -> String {
        let res = self.ops_get("/metrics").await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }
}

/// The value of the sample `name` (with its labels, if any) in a `/metrics` text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Starts a gateway from `toml` on the test's clock, auditing to memory behind `gate`.
pub async fn launch_gateway(
    toml: &str,
    clock: &Arc<ManualClock>,
    gate: Gate,
) -> Result<Launched, warden_gateway::StartError> {
    launcher::launch(toml, Arc::clone(clock) as _, gate).await
}
