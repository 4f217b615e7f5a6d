//! The admin API as the admin commands and the demo call it (typed calls of
//! [`warden_api::admin::Call`], answers shown as JSON): as a
//! principal with its credentials (an admin token fetched with `private_key_jwt`), or with
//! the break-glass token from the data dir.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use warden_api::admin::Call;
use warden_api::client::Auth;
use warden_api::{ApiClient, ApiError};

use crate::api_transport::ReqwestTransport;

pub struct AdminClient {
    api: ApiClient<ReqwestTransport>,
}

impl AdminClient {
    /// With the break-glass token.
    pub fn new(authority_url: &str, token: &str) -> Self {
        Self::with_auth(authority_url, Auth::BreakGlass(token.to_owned().into()))
    }

    pub fn with_auth(authority_url: &str, auth: Auth) -> Self {
        let api = ApiClient::new(
            ReqwestTransport(reqwest::Client::new()),
            authority_url,
            auth,
            Arc::new(crate::cmd::unix_now),
        );
        Self { api }
    }

    /// The typed client underneath, for calls warden-api types.
    pub fn api(&self) -> &ApiClient<ReqwestTransport> {
        &self.api
    }

    /// One admin call whose answer must be an `R` (a [`warden_api::admin`] answer type): an
    /// authority answering outside the contract is an error, not garbage.
    pub async fn typed<R: DeserializeOwned>(&self, call: Call) -> anyhow::Result<R> {
        let what = format!("{} {}", call.method().as_str(), call.path());
        serde_json::from_value(self.call(call).await?)
            .with_context(|| format!("{what}: the authority's answer is not the API's"))
    }

    /// [`AdminClient::typed`], shown as JSON.
    pub async fn call_as<R: DeserializeOwned + Serialize>(
        &self,
        call: Call,
    ) -> anyhow::Result<Value> {
        Ok(serde_json::to_value(self.typed::<R>(call).await?)?)
    }

    /// One admin call; a refusal is its status and the authority's reason.
    pub async fn call(&self, call: Call) -> anyhow::Result<Value> {
        self.api.admin(&call).await.map_err(|e| match e {
            ApiError::Refused { status, detail } => anyhow!("{status} {detail}"),
            other => anyhow::Error::new(other).context(format!(
                "{} {} at {} failed",
                call.method().as_str(),
                call.path(),
                self.api.authority()
            )),
        })
    }
}
