//! A real authority on a loopback port, with a clock the test moves.

use std::sync::Arc;

use rand_core::OsRng;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use warden_audit::AuditLog;
use warden_authority::{router, server, Authority, AuthorityConfig};
use warden_core::claims::{AssertionClaims, Audience};
use warden_core::crypto::SealingKey;
use warden_core::id::random_token_id;
use warden_core::jwks::{Jwk, JwkSet};
use warden_core::time::ManualClock;
use warden_core::{jws, KeySet, SigningKey};
use warden_store::sqlite::SqliteStore;
use warden_store::Store;

pub const ADMIN: &str = "wadm_test-admin-token";
pub const T0: i64 = 1_900_000_000;

pub struct Harness {
    pub url: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub authority: Arc<Authority>,
    pub store: Arc<SqliteStore>,
    /// The master key's bytes, for another authority on the same store (a restart).
    pub master_key: [u8; 32],
    /// Where the harness's own audit log writes, when the test did not bring one.
    _audit_dir: Option<tempfile::TempDir>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A fresh audit log in `dir`, its checkpoints signed with a throwaway key.
pub fn audit_log(dir: &std::path::Path) -> AuditLog {
    let signer: Arc<dyn warden_audit::CheckpointSigner> =
        Arc::new(SigningKey::generate(&mut OsRng));
    AuditLog::open(dir, signer, warden_audit::Options::default())
        .unwrap()
        .0
}

pub struct Agent {
    pub id: String,
    pub key: SigningKey,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut AuthorityConfig)) -> Self {
        Self::start_inner(tweak, None).await
    }

    /// An authority that records to `log`, for tests that read what it recorded.
    pub async fn start_audited(log: AuditLog) -> Self {
        Self::start_inner(|_| {}, Some(log)).await
    }

    async fn start_inner(tweak: impl FnOnce(&mut AuthorityConfig), log: Option<AuditLog>) -> Self {
        let (log, audit_dir) = match log {
            Some(log) => (log, None),
            None => {
                let dir = tempfile::tempdir().unwrap();
                (audit_log(dir.path()), Some(dir))
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = AuthorityConfig::new(url.clone());
        tweak(&mut config);
        let limits = config.limits.clone();
        let clock = Arc::new(ManualClock::new(T0));
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let master_key = *SealingKey::generate(&mut OsRng).as_bytes();
        let authority = Authority::start(
            config,
            Arc::clone(&store) as Arc<dyn Store>,
            SealingKey::from_bytes(&master_key).unwrap(),
            ADMIN,
            Arc::clone(&clock) as _,
            log,
        )
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(Arc::clone(&authority));
        tokio::spawn(server::serve(listener, app, limits, async {
            let _ = rx.await;
        }));
        Self {
            url,
            http: reqwest::Client::new(),
            clock,
            authority,
            store,
            master_key,
            _audit_dir: audit_dir,
            _shutdown: tx,
        }
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.url)
    }

    pub fn now(&self) -> i64 {
        use warden_core::time::Clock as _;
        self.clock.now()
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn tenant(&self, name: &str) -> String {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/tenants",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn agent(&self, tenant: &str, name: &str, scopes: &str) -> Agent {
        self.agent_with(tenant, name, json!({ "scopes": scopes }))
            .await
    }

    pub async fn agent_with(&self, tenant: &str, name: &str, extra: Value) -> Agent {
        let key = SigningKey::generate(&mut OsRng);
        let mut body = json!({
            "kind": "agent",
            "name": name,
            "public_key": Jwk::from_public_key(&key.public_key(), None),
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                &format!("/tenants/{tenant}/principals"),
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        Agent {
            id: v["id"].as_str().unwrap().to_owned(),
            key,
        }
    }

    pub fn assertion_claims(&self, agent: &Agent) -> AssertionClaims {
        AssertionClaims {
            iss: agent.id.clone(),
            sub: agent.id.clone(),
            aud: Audience::One(self.token_endpoint()),
            exp: self.now() + 60,
            iat: Some(self.now()),
            nbf: None,
            jti: random_token_id(&mut OsRng),
        }
    }

    pub fn assertion(&self, agent: &Agent) -> String {
        jws::encode("JWT", None, &self.assertion_claims(agent), &agent.key).unwrap()
    }

    /// POSTs a form to the token endpoint; returns status and JSON body.
    pub async fn token_form(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(self.token_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn token_with_assertion(&self, assertion: &str, scope: Option<&str>) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_form(&form).await
    }

    pub async fn jwks(&self) -> KeySet {
        let jwks: JwkSet = self
            .http
            .get(format!("{}/.well-known/jwks.json", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        KeySet::from_jwks(&jwks).unwrap()
    }
}

/// Asserts an OAuth error response.
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

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl Harness {
    /// POSTs a form to `path` with extra headers (repeated names are all sent); returns status
    /// and JSON body (`Null` when the body is not JSON).
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
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

    /// The client's own token (client credentials), which must be issued.
    pub async fn own_token(&self, client: &Agent) -> String {
        let got = self
            .post_as(
                client,
                "/oauth2/token",
                &[("grant_type", "client_credentials")],
                &[],
            )
            .await;
        assert_eq!(got.0, 200, "{}", got.1);
        got.1["access_token"].as_str().unwrap().to_owned()
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

    /// An exchange that must succeed; returns the new token.
    pub async fn exchanged(&self, client: &Agent, subject_token: &str) -> String {
        let got = self.exchange(client, subject_token, &[]).await;
        assert_eq!(got.0, 200, "{}", got.1);
        got.1["access_token"].as_str().unwrap().to_owned()
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

    /// A delegation grant from `user` to `agent`, which must be created; returns its JSON.
    pub async fn grant(&self, user: &Agent, agent: &Agent, scopes: &str) -> Value {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/delegations",
                Some(json!({ "user": user.id, "agent": agent.id, "scopes": scopes })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// A DPoP proof for a request to the token endpoint.
    pub fn dpop_proof(&self, key: &SigningKey) -> String {
        self.dpop_proof_for(key, "POST", &self.token_endpoint(), self.now())
    }

    pub fn dpop_proof_for(&self, key: &SigningKey, htm: &str, htu: &str, iat: i64) -> String {
        warden_core::dpop::create_proof(
            key,
            &warden_core::dpop::ProofClaims {
                jti: random_token_id(&mut OsRng),
                htm: htm.into(),
                htu: htu.into(),
                iat,
                ath: None,
                nonce: None,
            },
        )
        .unwrap()
    }
}

/// A token's claims, read without verification (the tests inspect what the authority signed).
pub fn claims_of(token: &str) -> warden_core::AccessClaims {
    jws::UnverifiedToken::parse(token)
        .unwrap()
        .claims_unverified()
        .unwrap()
}

/// The `access_token` of a successful token response.
#[track_caller]
pub fn issued(got: &(u16, Value)) -> String {
    assert_eq!(got.0, 200, "{}", got.1);
    got.1["access_token"].as_str().unwrap().to_owned()
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct SseMessage {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseMessage {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads server-sent events off a streaming response.
pub struct SseReader {
    res: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(res: reqwest::Response) -> Self {
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next event (comment-only blocks skipped), waiting at most `within`.
    pub async fn next_within(&mut self, within: std::time::Duration) -> SseMessage {
        tokio::time::timeout(within, self.next_message())
            .await
            .expect("no server-sent event in time")
    }

    pub async fn next(&mut self) -> SseMessage {
        self.next_within(std::time::Duration::from_secs(5)).await
    }

    /// The next event of kind `event`, skipping others (heartbeats), waiting at most 5 s.
    pub async fn next_of(&mut self, event: &str) -> SseMessage {
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                let m = self.next_message().await;
                if m.event == event {
                    return m;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{event}` event in time"))
    }

    async fn next_message(&mut self) -> SseMessage {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = SseMessage::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => m.event = value.to_owned(),
                        "id" => m.id = Some(value.to_owned()),
                        "data" => data.push(value.to_owned()),
                        _ => {}
                    }
                }
                if m.event.is_empty() && data.is_empty() {
                    continue;
                }
                if m.event.is_empty() {
                    m.event = "message".into();
                }
                m.data = data.join("\n");
                return m;
            }
            let chunk = self.res.chunk().await.unwrap().expect("the stream ended");
            self.buf.push_str(
                &String::from_utf8(chunk.to_vec())
                    .unwrap()
                    .replace("\r\n", "\n"),
            );
        }
    }
}

/// Waits until `cond` holds, checking every 10 ms, for at most 5 s.
pub async fn eventually_async<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Sends `head` (request line and headers, without the blank line) and then only `sent` of
/// the body over a raw connection, closes the write half, and reads the whole answer:
/// status and JSON body (`Null` when there is none).
pub async fn send_cut_short(url: &str, head: &str, sent: &[u8]) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://").to_owned();
    let request = [
        format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes(),
        sent.to_vec(),
    ]
    .concat();
    let text = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        conn.write_all(&request).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
