//! A real authority on a free loopback port: an in-memory SQLite store, a throwaway audit
//! log, a clock the test moves, and the calls a test makes of it over HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use rand_core::OsRng;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warden_audit::{AuditLog, CheckpointSigner};
use warden_authority::{router, server, Authority, AuthorityConfig};
use warden_core::claims::{AccessClaims, AssertionClaims, Audience};
use warden_core::crypto::SealingKey;
use warden_core::id::random_token_id;
use warden_core::jwks::JwkSet;
use warden_core::time::{Clock, ManualClock, SystemClock};
use warden_core::{jws, KeySet, SigningKey};
use warden_store::sqlite::SqliteStore;
use warden_store::Store;

use crate::http::{answer, post_form};
use crate::keys::{self, new_key, public_jwk};
use crate::{ADMIN, T0};

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A principal the test created, with its private key.
pub struct Agent {
    pub id: String,
    pub key: SigningKey,
}

/// A fresh audit log in `dir`, its checkpoints signed with a throwaway key.
pub fn audit_log(dir: &std::path::Path) -> AuditLog {
    let signer: Arc<dyn CheckpointSigner> = Arc::new(new_key());
    AuditLog::open(dir, signer, warden_audit::Options::default())
        .unwrap()
        .0
}

/// How a [`TestAuthority`] starts beyond its configuration; the default is an in-memory
/// store, a clock the test moves and a throwaway audit log.
#[derive(Default)]
pub struct Setup {
    /// The store in a SQLite file at this path rather than in memory.
    pub store_file: Option<PathBuf>,
    /// The system's clock rather than one the test moves, for benchmarks that run in real
    /// time.
    pub real_time: bool,
    /// The audit log to record to.
    pub audit: Option<AuditLog>,
}

/// A running authority.
pub struct TestAuthority {
    pub url: String,
    pub http: reqwest::Client,
    /// The clock the test moves; what the authority reads unless it runs in real time.
    pub clock: Arc<ManualClock>,
    time: Arc<dyn Clock>,
    pub authority: Arc<Authority>,
    pub store: Arc<SqliteStore>,
    /// The master key's bytes, for another authority on the same store (a restart).
    pub master_key: [u8; 32],
    config: AuthorityConfig,
    /// Where its audit log writes, when the test did not bring one.
    audit_dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestAuthority {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// An authority whose configuration `tweak` adjusts first.
    pub async fn start_with(tweak: impl FnOnce(&mut AuthorityConfig)) -> Self {
        Self::launch(Setup::default(), tweak).await
    }

    /// An authority that records to `log`, for tests that read what it recorded.
    pub async fn start_audited(log: AuditLog) -> Self {
        let setup = Setup {
            audit: Some(log),
            ..Setup::default()
        };
        Self::launch(setup, |_| {}).await
    }

    /// An authority as `setup` says, its configuration adjusted by `tweak`.
    pub async fn launch(setup: Setup, tweak: impl FnOnce(&mut AuthorityConfig)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = AuthorityConfig::new(url.clone());
        tweak(&mut config);
        let store = Arc::new(match &setup.store_file {
            Some(path) => SqliteStore::open(path).await.unwrap(),
            None => SqliteStore::in_memory().await.unwrap(),
        });
        let master_key = *SealingKey::generate(&mut OsRng).as_bytes();
        let clock = Arc::new(ManualClock::new(T0));
        let time: Arc<dyn Clock> = if setup.real_time {
            Arc::new(SystemClock)
        } else {
            Arc::clone(&clock) as _
        };
        let running =
            Running::start(listener, &config, &store, master_key, &time, setup.audit).await;
        Self {
            url,
            http: reqwest::Client::new(),
            clock,
            time,
            authority: running.authority,
            store,
            master_key,
            config,
            audit_dir: running.audit_dir,
            stop: Some(running.stop),
        }
    }

    /// Stops serving: the listener and every open connection close.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Starts again on the same address, store, master key, clock and configuration, as a
    /// restarted process would, recording to a fresh audit log.
    pub async fn restart(&mut self) {
        self.stop();
        let addr = self.url.trim_start_matches("http://");
        let listener = TcpListener::bind(addr).await.unwrap();
        let running = Running::start(
            listener,
            &self.config,
            &self.store,
            self.master_key,
            &self.time,
            None,
        )
        .await;
        self.authority = running.authority;
        self.audit_dir = running.audit_dir;
        self.stop = Some(running.stop);
    }

    /// Another authority on this one's store, master key and clock, not serving, recording
    /// to `log`: what a restart finds.
    pub async fn sibling(&self, log: AuditLog) -> Arc<Authority> {
        Authority::start(
            AuthorityConfig::new(self.url.clone()),
            Arc::clone(&self.store) as Arc<dyn Store>,
            SealingKey::from_bytes(&self.master_key).unwrap(),
            ADMIN,
            Arc::clone(&self.time),
            log,
        )
        .await
        .unwrap()
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.url)
    }

    /// Serves the authority's ops endpoints (`/healthz`, `/readyz`, `/metrics`) on a fresh
    /// loopback port, until the test ends: their base URL.
    pub async fn serve_ops(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server::serve(
            listener,
            warden_authority::readiness::ops_router(Arc::clone(&self.authority)),
            self.config.limits.clone(),
            std::future::pending(),
        ));
        url
    }

    pub fn now(&self) -> i64 {
        self.time.now()
    }

    /// A lifecycle API call with the bootstrap admin token: status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.admin_as(ADMIN, method, path, body).await
    }

    /// POSTs `body` to the lifecycle API.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.admin(reqwest::Method::POST, path, Some(body)).await
    }

    /// The audience of admin tokens: `<issuer>/admin/v1`.
    pub fn admin_audience(&self) -> String {
        self.authority.admin_audience()
    }

    /// Client credentials for the admin API as `principal`, asking for `scope`: status and
    /// body.
    pub async fn admin_token_request(&self, principal: &Agent, scope: &str) -> (u16, Value) {
        let assertion = self.assertion(principal);
        let audience = self.admin_audience();
        self.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
            ("scope", scope),
            ("resource", &audience),
        ])
        .await
    }

    /// An admin token for `principal` with `scope`, which must be issued.
    pub async fn admin_token(&self, principal: &Agent, scope: &str) -> String {
        issued(&self.admin_token_request(principal, scope).await)
    }

    /// A lifecycle API call presenting `token`: status and JSON body.
    pub async fn admin_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A gateway enrolled as a service principal (`warden:gateway`), with its key.
    pub async fn enroll_gateway(&self, name: &str) -> Agent {
        let key = new_key();
        let (s, v) = self
            .admin_post(
                "/gateways",
                json!({ "name": name, "public_key": public_jwk(&key) }),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        Agent {
            id: v["client_id"].as_str().unwrap().to_owned(),
            key,
        }
    }

    /// The credentials a gateway or the CLI acts with, for `principal`.
    pub fn credentials(&self, principal: &Agent) -> warden_api::Credentials {
        warden_api::Credentials::new(
            principal.id.clone(),
            Some(self.url.clone()),
            SigningKey::from_bytes(principal.key.to_bytes().as_ref()).unwrap(),
        )
    }

    /// A new tenant, which must be created; its id.
    pub async fn tenant(&self, name: &str) -> String {
        let (s, v) = self.admin_post("/tenants", json!({ "name": name })).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// A new agent of `tenant` whose ceiling is `scopes`.
    pub async fn agent(&self, tenant: &str, name: &str, scopes: &str) -> Agent {
        self.agent_with(tenant, name, json!({ "scopes": scopes }))
            .await
    }

    /// A new principal of `tenant` (an agent unless `extra` names another `kind`), with a
    /// fresh key and the fields of `extra`.
    pub async fn agent_with(&self, tenant: &str, name: &str, extra: Value) -> Agent {
        let key = new_key();
        let mut body = json!({ "kind": "agent", "name": name, "public_key": public_jwk(&key) });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self
            .admin_post(&format!("/tenants/{tenant}/principals"), body)
            .await;
        assert_eq!(s, 201, "{v}");
        Agent {
            id: v["id"].as_str().unwrap().to_owned(),
            key,
        }
    }

    pub fn assertion_claims(&self, agent: &Agent) -> AssertionClaims {
        keys::assertion_claims(&agent.id, &self.token_endpoint(), self.now())
    }

    /// A fresh `private_key_jwt` assertion by `agent` for this token endpoint.
    pub fn assertion(&self, agent: &Agent) -> String {
        keys::sign_assertion(&self.assertion_claims(agent), &agent.key)
    }

    /// POSTs a form to the token endpoint.
    pub async fn token_form(&self, form: &[(&str, &str)]) -> (u16, Value) {
        post_form(&self.http, &self.token_endpoint(), form, &[]).await
    }

    /// Client credentials with `assertion`, asking for `scope` when given.
    pub async fn token_with_assertion(&self, assertion: &str, scope: Option<&str>) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_form(&form).await
    }

    /// A token for `agent` with `scope` (client credentials), which must be issued.
    pub async fn token(&self, agent: &Agent, scope: &str) -> String {
        issued(
            &self
                .token_with_assertion(&self.assertion(agent), Some(scope))
                .await,
        )
    }

    /// POSTs a form to `path` with extra headers (repeated names are all sent).
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        post_form(&self.http, &format!("{}{path}", self.url), form, headers).await
    }

    /// POSTs `form` to `path` authenticated as `client` with a fresh `private_key_jwt`.
    pub async fn post_as(
        &self,
        client: &Agent,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let assertion = self.assertion(client);
        let mut all = vec![
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ];
        all.extend_from_slice(form);
        self.post_form(path, &all, headers).await
    }

    /// The client's own token (client credentials, its whole ceiling), which must be issued.
    pub async fn own_token(&self, client: &Agent) -> String {
        issued(
            &self
                .post_as(
                    client,
                    "/oauth2/token",
                    &[("grant_type", "client_credentials")],
                    &[],
                )
                .await,
        )
    }

    /// Token exchange by `client` of `subject_token`, with extra parameters and headers.
    pub async fn exchange_with(
        &self,
        client: &Agent,
        subject_token: &str,
        extra: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ];
        form.extend_from_slice(extra);
        self.post_as(client, "/oauth2/token", &form, headers).await
    }

    pub async fn exchange(
        &self,
        client: &Agent,
        subject_token: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        self.exchange_with(client, subject_token, extra, &[]).await
    }

    /// An exchange that must succeed; the new token.
    pub async fn exchanged(&self, client: &Agent, subject_token: &str) -> String {
        issued(&self.exchange(client, subject_token, &[]).await)
    }

    /// Introspection of `token` by `client`; must answer 200.
    pub async fn introspect(&self, client: &Agent, token: &str) -> Value {
        let got = self
            .post_as(client, "/oauth2/introspect", &[("token", token)], &[])
            .await;
        assert_eq!(got.0, 200, "{}", got.1);
        got.1
    }

    /// A service of `tenant` whose ceiling is `warden:introspect` alone: it may introspect
    /// any token of its tenant, so tests can watch tokens they did not obtain.
    pub async fn introspector(&self, tenant: &str) -> Agent {
        self.agent_with(
            tenant,
            "introspector",
            json!({ "kind": "service", "scopes": "warden:introspect" }),
        )
        .await
    }

    /// Whether introspection by `client` says `token` is active (and nothing else when not).
    pub async fn active(&self, client: &Agent, token: &str) -> bool {
        let v = self.introspect(client, token).await;
        match v["active"].as_bool() {
            Some(true) => true,
            Some(false) => {
                assert_eq!(
                    v,
                    json!({ "active": false }),
                    "an inactive answer says no more"
                );
                false
            }
            None => panic!("no `active` in {v}"),
        }
    }

    /// A delegation grant from `user` to `agent`, which must be created; its JSON.
    pub async fn grant(&self, user: &Agent, agent: &Agent, scopes: &str) -> Value {
        let (s, v) = self
            .admin_post(
                "/delegations",
                json!({ "user": user.id, "agent": agent.id, "scopes": scopes }),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// A DPoP proof for a request to the token endpoint, now.
    pub fn dpop_proof(&self, key: &SigningKey) -> String {
        self.dpop_proof_for(key, "POST", &self.token_endpoint(), self.now())
    }

    pub fn dpop_proof_for(&self, key: &SigningKey, htm: &str, htu: &str, iat: i64) -> String {
        keys::dpop_proof(key, htm, htu, iat, None)
    }

    /// Lifts the revocation of principal `id` (`body`: `{"public_key": …}` to replace its
    /// key, or none): the status and the answer.
    pub async fn reinstate_with(&self, id: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/principals/{id}/reinstate");
        self.admin(reqwest::Method::POST, &path, body).await
    }

    /// Lifts the revocation of principal `id`, which must succeed.
    pub async fn reinstate(&self, id: &str) {
        let (s, v) = self.reinstate_with(id, None).await;
        assert_eq!(s, 200, "{v}");
    }

    /// GETs `path` (below the issuer), which must answer JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The published keys.
    pub async fn jwks(&self) -> KeySet {
        let jwks: JwkSet = self.get_json("/.well-known/jwks.json").await;
        KeySet::from_jwks(&jwks).unwrap()
    }

    /// An access token of `client_id` in `tenant` with claims of the test's choosing, signed
    /// by the active key: what only the authority could have issued, but never did.
    pub fn forge(
        &self,
        client_id: &str,
        tenant: &str,
        edit: impl FnOnce(&mut AccessClaims),
    ) -> String {
        let keys = self.authority.keys.current();
        let now = self.now();
        let mut c = AccessClaims {
            iss: self.url.clone(),
            sub: client_id.to_owned(),
            aud: Audience::One("warden".into()),
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: random_token_id(&mut OsRng),
            client_id: client_id.to_owned(),
            tenant: tenant.to_owned(),
            scope: "crm:contacts:read".into(),
            act: None,
            cnf: None,
            allowed_ips: None,
            max_uses: None,
        };
        edit(&mut c);
        jws::encode("at+jwt", Some(&keys.active_kid), &c, &keys.active).unwrap()
    }
}

impl Drop for TestAuthority {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One serving instance: the authority, the way to stop it, and its audit log's directory
/// when it brought its own.
struct Running {
    authority: Arc<Authority>,
    stop: oneshot::Sender<()>,
    audit_dir: Option<tempfile::TempDir>,
}

impl Running {
    async fn start(
        listener: TcpListener,
        config: &AuthorityConfig,
        store: &Arc<SqliteStore>,
        master_key: [u8; 32],
        time: &Arc<dyn Clock>,
        log: Option<AuditLog>,
    ) -> Self {
        let (log, audit_dir) = match log {
            Some(log) => (log, None),
            None => {
                let dir = tempfile::tempdir().unwrap();
                (audit_log(dir.path()), Some(dir))
            }
        };
        let authority = Authority::start(
            config.clone(),
            Arc::clone(store) as Arc<dyn Store>,
            SealingKey::from_bytes(&master_key).unwrap(),
            ADMIN,
            Arc::clone(time),
            log,
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server::serve(
            listener,
            router(Arc::clone(&authority)),
            config.limits.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            authority,
            stop,
            audit_dir,
        }
    }
}

/// Asserts an OAuth error answer: the status, the `error` code, and a description.
#[track_caller]
pub fn assert_oauth_error(got: &(u16, Value), status: u16, error: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], error, "{}", got.1);
    assert!(
        got.1["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "no description: {}",
        got.1
    );
}

/// The `access_token` of a successful token answer.
#[track_caller]
pub fn issued(got: &(u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {}", got.1))
        .to_owned()
}
