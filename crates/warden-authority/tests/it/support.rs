//! A real authority on a loopback port, with a clock the test moves.

use std::sync::Arc;

use rand_core::OsRng;
use serde_json::{json, Value};
use tokio::net::TcpListener;
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
    _shutdown: tokio::sync::oneshot::Sender<()>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = AuthorityConfig::new(url.clone());
        tweak(&mut config);
        let limits = config.limits.clone();
        let clock = Arc::new(ManualClock::new(T0));
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let authority = Authority::start(
            config,
            Arc::clone(&store) as Arc<dyn Store>,
            SealingKey::generate(&mut OsRng),
            ADMIN,
            Arc::clone(&clock) as _,
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
