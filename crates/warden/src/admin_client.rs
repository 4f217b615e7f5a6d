//! A client for the lifecycle API, as the admin commands and the demo use it.

use anyhow::{anyhow, Context as _};
use rand_core::{OsRng, RngCore as _};
use serde_json::Value;

pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(authority_url: &str, token: &str) -> Self {
        Self {
            base: format!("{authority_url}/admin/v1"),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// A mutating call, with a fresh `Idempotency-Key` so that a retry can never apply twice.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        self.mutate(reqwest::Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.mutate(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn mutate(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut key = [0u8; 16];
        OsRng.fill_bytes(&mut key);
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("idempotency-key", key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b)?);
        }
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let res = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the authority at {}", self.base))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let detail = body
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("no detail");
        Err(anyhow!("{} {}", status.as_u16(), detail))
    }
}
