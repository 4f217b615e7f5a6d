//! An authority, a gateway and an echo upstream on loopback ports, sharing a clock the test
//! moves.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use axum::extract::Request;
use axum::routing::any;
use rand_core::OsRng;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use warden_authority::{router, server, Authority, AuthorityConfig};
use warden_core::claims::{AccessClaims, Audience};
use warden_core::crypto::SealingKey;
use warden_core::id::random_token_id;
use warden_core::jwks::Jwk;
use warden_core::time::ManualClock;
use warden_core::{jws, SigningKey};
use warden_gateway::audit::{AuditEvent, AuditWriter};
use warden_gateway::{Gateway, GatewayConfig, StartError, StartOptions};
use warden_store::sqlite::SqliteStore;

pub const ADMIN: &str = "wadm_gateway-test";
pub const T0: i64 = 1_900_000_000;

pub struct Env {
    pub authority_url: String,
    pub authority: Arc<Authority>,
    pub store: Arc<SqliteStore>,
    master_key: [u8; 32],
    authority_stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub gateway_url: String,
    pub gateway: Arc<Gateway>,
    /// The echo upstream every route of [`routes_toml`] forwards to.
    pub upstream_url: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub audit: Arc<Mutex<Vec<AuditEvent>>>,
    pub agent_id: String,
    pub agent_key: SigningKey,
}

/// Records audit entries in memory; `gate` lets a test stall the writer to fill the queue.
pub struct MemoryAudit {
    pub events: Arc<Mutex<Vec<AuditEvent>>>,
    pub gate: Arc<(Mutex<bool>, Condvar)>,
}

impl AuditWriter for MemoryAudit {
    fn write_batch(&mut self, events: Vec<AuditEvent>) -> std::io::Result<()> {
        let (lock, cv) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.events.lock().unwrap().extend(events);
        Ok(())
    }
}

/// An upstream that answers with what it received: method, path, headers.
async fn echo(req: Request) -> axum::Json<Value> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    axum::Json(
        json!({ "method": req.method().as_str(), "path": req.uri().path(), "headers": headers }),
    )
}

/// An upstream that reads the whole body before it answers, as an upload handler does.
async fn upload(req: Request) -> (axum::http::StatusCode, axum::Json<Value>) {
    match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(b) => (
            axum::http::StatusCode::OK,
            axum::Json(json!({ "received": b.len() })),
        ),
        Err(e) => (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({ "upstream_error": e.to_string() })),
        ),
    }
}

async fn hang() -> &'static str {
    std::future::pending::<()>().await;
    ""
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
    pub async fn start(opts: Options<'_>) -> (Self, Arc<(Mutex<bool>, Condvar)>) {
        let clock = Arc::new(ManualClock::new(T0));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority_url = format!("http://{}", listener.local_addr().unwrap());
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let master_key = *SealingKey::generate(&mut OsRng).as_bytes();
        let (authority, authority_stop) =
            serve_authority(listener, &authority_url, &store, master_key, &clock).await;

        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_url = format!("http://{}", up.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/slow/{*rest}", any(hang))
            .route("/crm/upload", any(upload))
            .fallback(echo);
        tokio::spawn(async move { axum::serve(up, app).await });

        let extra = format!(
            "audit_queue = {}\ntrusted_proxies = {}\n{}\n",
            opts.audit_queue, opts.trusted_proxies, opts.extra_toml
        );
        let toml = routes_toml(&authority_url, &upstream_url, opts.policy_dir, &extra);
        let gate = Arc::new((Mutex::new(opts.audit_open), Condvar::new()));
        let launched = launch_gateway(&toml, &clock, Arc::clone(&gate))
            .await
            .unwrap();

        let http = reqwest::Client::new();
        let tenant: Value = http
            .post(format!("{authority_url}/admin/v1/tenants"))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": "acme" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let agent_key = SigningKey::generate(&mut OsRng);
        let agent: Value = http
            .post(format!(
                "{authority_url}/admin/v1/tenants/{}/principals",
                tenant["id"].as_str().unwrap()
            ))
            .bearer_auth(ADMIN)
            .json(&json!({
                "kind": "agent", "name": "bot", "scopes": "crm:contacts:read crm:contacts:write",
                "public_key": Jwk::from_public_key(&agent_key.public_key(), None),
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            Self {
                authority_url,
                authority,
                store,
                master_key,
                authority_stop: Some(authority_stop),
                gateway_url: launched.url,
                gateway: launched.gateway,
                upstream_url,
                clock,
                http,
                audit: launched.audit,
                agent_id: agent["id"].as_str().unwrap().to_owned(),
                agent_key,
            },
            gate,
        )
    }

    pub fn now(&self) -> i64 {
        use warden_core::time::Clock as _;
        self.clock.now()
    }

    /// Stops the authority: its listener and every open connection close.
    pub fn stop_authority(&mut self) {
        if let Some(stop) = self.authority_stop.take() {
            let _ = stop.send(());
        }
    }

    /// Starts the authority again on the same address and store.
    pub async fn start_authority(&mut self) {
        let addr = self.authority_url.trim_start_matches("http://");
        let listener = TcpListener::bind(addr).await.unwrap();
        let (authority, stop) = serve_authority(
            listener,
            &self.authority_url,
            &self.store,
            self.master_key,
            &self.clock,
        )
        .await;
        self.authority = authority;
        self.authority_stop = Some(stop);
    }

    /// POSTs to the lifecycle API with the admin token.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/admin/v1{path}", self.authority_url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A token from the real token endpoint.
    pub async fn token(&self, scope: &str) -> String {
        self.token_of(&self.agent_id, &self.agent_key, scope).await
    }

    /// A token from the real token endpoint for the agent `id` with `key`.
    pub async fn token_of(&self, id: &str, key: &SigningKey, scope: &str) -> String {
        let endpoint = format!("{}/oauth2/token", self.authority_url);
        let claims = warden_core::AssertionClaims {
            iss: id.to_owned(),
            sub: id.to_owned(),
            aud: Audience::One(endpoint.clone()),
            exp: self.now() + 60,
            iat: Some(self.now()),
            nbf: None,
            jti: random_token_id(&mut OsRng),
        };
        let assertion = jws::encode("JWT", None, &claims, key).unwrap();
        let res: Value = self
            .http
            .post(endpoint)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{res}"))
            .to_owned()
    }

    /// A new tenant with one agent holding `scopes`: its id, the agent's id and key.
    pub async fn tenant_with_agent(
        &self,
        name: &str,
        scopes: &str,
    ) -> (String, String, SigningKey) {
        let (s, tenant) = self.admin_post("/tenants", json!({ "name": name })).await;
        assert_eq!(s, 201, "{tenant}");
        let tenant = tenant["id"].as_str().unwrap().to_owned();
        let key = SigningKey::generate(&mut OsRng);
        let (s, agent) = self
            .admin_post(
                &format!("/tenants/{tenant}/principals"),
                json!({
                    "kind": "agent", "name": "bot", "scopes": scopes,
                    "public_key": Jwk::from_public_key(&key.public_key(), None),
                }),
            )
            .await;
        assert_eq!(s, 201, "{agent}");
        (tenant, agent["id"].as_str().unwrap().to_owned(), key)
    }

    /// A token with claims of the test's choosing, signed by the authority's active key.
    pub fn forge(&self, edit: impl FnOnce(&mut AccessClaims)) -> String {
        let keys = self.authority.keys.current();
        let now = self.now();
        let mut c = AccessClaims {
            iss: self.authority_url.clone(),
            sub: self.agent_id.clone(),
            aud: Audience::One("warden".into()),
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: random_token_id(&mut OsRng),
            client_id: self.agent_id.clone(),
            tenant: "tnt_AAAAAAAAAAAAAAAAAAAAAA".into(),
            scope: "crm:contacts:read".into(),
            act: None,
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        };
        edit(&mut c);
        jws::encode("at+jwt", Some(&keys.active_kid), &c, &keys.active).unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.gateway_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }
}

/// A running gateway of the test's own.
pub struct Launched {
    pub url: String,
    pub gateway: Arc<Gateway>,
    pub audit: Arc<Mutex<Vec<AuditEvent>>>,
}

/// Starts a gateway from `toml` (origin `test.toml`), auditing to memory behind `gate`, and
/// serves it on a fresh loopback port; `Err` is what the gateway's start refused.
pub async fn launch_gateway(
    toml: &str,
    clock: &Arc<ManualClock>,
    gate: Arc<(Mutex<bool>, Condvar)>,
) -> Result<Launched, StartError> {
    let config = GatewayConfig::parse(toml, "test.toml", None).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let gateway = Gateway::start(
        config,
        StartOptions {
            admin_token: ADMIN.into(),
            clock: Arc::clone(clock) as _,
            audit_writer: Some(Box::new(MemoryAudit {
                events: Arc::clone(&events),
                gate,
            })),
            name: "test-gateway".into(),
        },
    )
    .await?;
    let gl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", gl.local_addr().unwrap());
    tokio::spawn(Arc::clone(&gateway).serve(gl, std::future::pending()));
    Ok(Launched {
        url,
        gateway,
        audit: events,
    })
}

async fn serve_authority(
    listener: TcpListener,
    url: &str,
    store: &Arc<SqliteStore>,
    master_key: [u8; 32],
    clock: &Arc<ManualClock>,
) -> (Arc<Authority>, tokio::sync::oneshot::Sender<()>) {
    let mut config = AuthorityConfig::new(url.to_owned());
    config.revocation_heartbeat = std::time::Duration::from_millis(100);
    let limits = config.limits.clone();
    // The authority records to an audit log of its own, kept while it serves.
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_signer: Arc<dyn warden_audit::CheckpointSigner> =
        Arc::new(SigningKey::generate(&mut OsRng));
    let (audit, _) = warden_audit::AuditLog::open(
        audit_dir.path(),
        audit_signer,
        warden_audit::Options::default(),
    )
    .unwrap();
    let authority = Authority::start(
        config,
        Arc::clone(store) as _,
        SealingKey::from_bytes(&master_key).unwrap(),
        ADMIN,
        Arc::clone(clock) as _,
        audit,
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(
        listener,
        router(Arc::clone(&authority)),
        limits,
        async move {
            let _audit_dir = audit_dir;
            let _ = stopped.await;
        },
    ));
    (authority, stop)
}

/// Waits until `cond` holds, checking every 10 ms, for at most 5 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}
