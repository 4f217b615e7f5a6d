//! A client for the lifecycle API, as the admin commands and the demo use it: as a
//! principal with its credentials (an admin token fetched with `private_key_jwt`), or with
//! the break-glass token from the data dir.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use rand_core::{OsRng, RngCore as _};
use serde_json::Value;
use warden_api::client::Auth;
use warden_api::ApiClient;

use crate::api_transport::ReqwestTransport;

pub struct AdminClient {
    base: String,
    api: ApiClient<ReqwestTransport>,
    http: reqwest::Client,
}

impl AdminClient {
    /// With the break-glass token.
    pub fn new(authority_url: &str, token: &str) -> Self {
        Self::with_auth(authority_url, Auth::BreakGlass(token.to_owned().into()))
    }

    pub fn with_auth(authority_url: &str, auth: Auth) -> Self {
        let http = reqwest::Client::new();
        let api = ApiClient::new(
            ReqwestTransport(http.clone()),
            authority_url,
            auth,
            Arc::new(crate::cmd::unix_now),
        );
        Self {
            base: format!("{}/admin/v1", authority_url.trim_end_matches('/')),
            api,
            http,
        }
    }

    /// The typed client underneath, for calls warden-api types.
    pub fn api(&self) -> &ApiClient<ReqwestTransport> {
        &self.api
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
        let token = self
            .api
            .bearer()
            .await
            .context("cannot authenticate to the authority")?;
        let res = req
            .bearer_auth(token.as_str())
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
