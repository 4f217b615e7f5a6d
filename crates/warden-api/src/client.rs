//! One typed client for Warden's HTTP API, over any [`Transport`]: the CLI brings one over
//! reqwest, a gateway one over its pooled hyper client. The client authenticates as the
//! break-glass credential or as a principal, fetching (and renewing) admin tokens with
//! `private_key_jwt` and `resource=<issuer>/admin/v1` itself.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use warden_core::id::random_token_id;
use zeroize::Zeroizing;

use crate::admin::{segment, Call};
use crate::credentials::Credentials;
use crate::gateway::{
    EnrollGateway, EnrolledGateway, RegisterGatewayKey, RegisteredGatewayKey, TenantRef,
    UsageAccepted, UsageReport,
};
use crate::problem::{OAuthError, Problem};
use crate::scope::{admin_audience, ADMIN_PATH};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A request as the client hands it to a transport.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub bearer: Option<Zeroizing<String>>,
    /// Sent as `Idempotency-Key`: the authority answers a repeat with the first answer.
    pub idempotency_key: Option<String>,
    pub body: Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Json(Vec<u8>),
    Form(String),
}

impl Body {
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Self::Empty => None,
            Self::Json(_) => Some("application/json"),
            Self::Form(_) => Some("application/x-www-form-urlencoded"),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Empty => Vec::new(),
            Self::Json(b) => b,
            Self::Form(s) => s.into_bytes(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Carries a [`Request`] to the authority; `Err` is a one-line reason (unreachable, timed
/// out, cut off).
pub trait Transport: Send + Sync + 'static {
    fn send(&self, request: Request) -> impl Future<Output = Result<Response, String>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the authority: {0}")]
    Transport(String),
    #[error("the authority refused ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("the token endpoint refused the credentials: {0}")]
    Token(String),
    #[error("unexpected answer from the authority: {0}")]
    Decode(String),
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialsError),
}

impl ApiError {
    /// The HTTP status of a refusal, if the authority answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How the client authenticates.
pub enum Auth {
    /// The bootstrap token from the authority's data dir.
    BreakGlass(Zeroizing<String>),
    /// A principal's credentials, optionally asking for fewer scopes than its ceiling.
    Principal {
        credentials: Box<Credentials>,
        scope: Option<String>,
    },
}

/// The discovery document's part the client needs (RFC 8414).
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
}

struct CachedToken {
    token: Zeroizing<String>,
    renew_at: Instant,
}

/// The typed client. Cheap to share behind an `Arc`; the token cache is its own.
pub struct ApiClient<T> {
    transport: T,
    authority: String,
    auth: Auth,
    /// Seconds since the epoch on the authority's clock, for client assertions.
    now: Arc<dyn Fn() -> i64 + Send + Sync>,
    metadata: Mutex<Option<Metadata>>,
    token: Mutex<Option<CachedToken>>,
}

impl<T: Transport> ApiClient<T> {
    pub fn new(
        transport: T,
        authority: &str,
        auth: Auth,
        now: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self {
            transport,
            authority: authority.trim_end_matches('/').to_owned(),
            auth,
            now,
            metadata: Mutex::new(None),
            token: Mutex::new(None),
        }
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The principal the client acts as; `None` for break-glass.
    pub fn principal(&self) -> Option<&str> {
        match &self.auth {
            Auth::BreakGlass(_) => None,
            Auth::Principal { credentials, .. } => Some(credentials.client_id()),
        }
    }

    /// A bearer token for the admin API: the break-glass token, or a live admin token
    /// fetched with the principal's key (renewed half-way through its lifetime).
    pub async fn bearer(&self) -> Result<Zeroizing<String>, ApiError> {
        let (credentials, scope) = match &self.auth {
            Auth::BreakGlass(token) => return Ok(token.clone()),
            Auth::Principal { credentials, scope } => (credentials, scope),
        };
        if let Some(cached) = lock(&self.token).as_ref() {
            if Instant::now() < cached.renew_at {
                return Ok(cached.token.clone());
            }
        }
        let meta = self.metadata().await?;
        let assertion = credentials.assertion(&meta.token_endpoint, (self.now)())?;
        let resource = admin_audience(&meta.issuer);
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
            ("resource", resource.as_str()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s.as_str()));
        }
        let form =
            serde_urlencoded::to_string(&form).map_err(|e| ApiError::Decode(e.to_string()))?;
        let res = self
            .transport
            .send(Request {
                method: Method::Post,
                url: meta.token_endpoint.clone(),
                bearer: None,
                idempotency_key: None,
                body: Body::Form(form),
            })
            .await
            .map_err(ApiError::Transport)?;
        if res.status != 200 {
            let why = serde_json::from_slice::<OAuthError>(&res.body).map_or_else(
                |_| format!("status {}", res.status),
                |e| match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                },
            );
            return Err(ApiError::Token(why));
        }
        let issued: TokenResponse =
            serde_json::from_slice(&res.body).map_err(|e| ApiError::Decode(e.to_string()))?;
        let half = Duration::from_secs(u64::try_from(issued.expires_in / 2).unwrap_or(0));
        let token = Zeroizing::new(issued.access_token);
        *lock(&self.token) = Some(CachedToken {
            token: token.clone(),
            renew_at: Instant::now() + half,
        });
        Ok(token)
    }

    /// Forgets the cached token, so that the next call fetches a fresh one.
    pub fn forget_token(&self) {
        *lock(&self.token) = None;
    }

    async fn metadata(&self) -> Result<Metadata, ApiError> {
        if let Some(m) = lock(&self.metadata).clone() {
            return Ok(m);
        }
        let res = self
            .transport
            .send(Request {
                method: Method::Get,
                url: format!("{}/.well-known/oauth-authorization-server", self.authority),
                bearer: None,
                idempotency_key: None,
                body: Body::Empty,
            })
            .await
            .map_err(ApiError::Transport)?;
        if res.status != 200 {
            return Err(ApiError::Decode(format!(
                "discovery answered status {}",
                res.status
            )));
        }
        let meta: Metadata =
            serde_json::from_slice(&res.body).map_err(|e| ApiError::Decode(e.to_string()))?;
        *lock(&self.metadata) = Some(meta.clone());
        Ok(meta)
    }

    /// One call of the admin API. A mutating one carries a fresh `Idempotency-Key` (the same
    /// on the retry after a 401), so that no retry can apply it twice.
    pub async fn admin<R: DeserializeOwned>(&self, call: &Call) -> Result<R, ApiError> {
        let body = call
            .body()
            .map_err(|e| ApiError::Decode(e.to_string()))?
            .map_or(Body::Empty, Body::Json);
        let key = call
            .mutates()
            .then(|| random_token_id(&mut rand_core::OsRng));
        self.send_admin(call.method(), &call.path(), body, key)
            .await
    }

    /// One admin API call under `/admin/v1` with a body of the caller's type.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ApiError> {
        let body = match body {
            Some(b) => {
                Body::Json(serde_json::to_vec(b).map_err(|e| ApiError::Decode(e.to_string()))?)
            }
            None => Body::Empty,
        };
        self.send_admin(method, path, body, None).await
    }

    /// A 401 to a principal's cached token is retried once with a fresh token (the old one
    /// may have been revoked with a key rotation, or outlived its renewal point on a paused
    /// machine).
    async fn send_admin<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
        idempotency_key: Option<String>,
    ) -> Result<R, ApiError> {
        let url = format!("{}{ADMIN_PATH}{path}", self.authority);
        let mut retried = false;
        loop {
            let res = self
                .transport
                .send(Request {
                    method,
                    url: url.clone(),
                    bearer: Some(self.bearer().await?),
                    idempotency_key: idempotency_key.clone(),
                    body: body.clone(),
                })
                .await
                .map_err(ApiError::Transport)?;
            if res.status == 401 && !retried && matches!(self.auth, Auth::Principal { .. }) {
                retried = true;
                self.forget_token();
                continue;
            }
            if !(200..300).contains(&res.status) {
                let detail = serde_json::from_slice::<Problem>(&res.body).map_or_else(
                    |_| String::from_utf8_lossy(&res.body).into_owned(),
                    |p| p.detail,
                );
                return Err(ApiError::Refused {
                    status: res.status,
                    detail,
                });
            }
            return serde_json::from_slice(&res.body).map_err(|e| ApiError::Decode(e.to_string()));
        }
    }

    pub async fn register_gateway_key(
        &self,
        kid: &str,
        req: &RegisterGatewayKey,
    ) -> Result<RegisteredGatewayKey, ApiError> {
        self.call(Method::Put, &format!("/gateway-keys/{kid}"), Some(req))
            .await
    }

    pub async fn report_use(&self, report: &UsageReport) -> Result<UsageAccepted, ApiError> {
        self.call(Method::Post, "/activity", Some(report)).await
    }

    pub async fn revoke_principal(
        &self,
        id: &str,
        req: &crate::admin::Reason,
    ) -> Result<Option<crate::admin::Revocation>, ApiError> {
        self.call(Method::Post, &format!("/principals/{id}/revoke"), Some(req))
            .await
    }

    /// A tenant by id or name.
    pub async fn tenant(&self, key: &str) -> Result<TenantRef, ApiError> {
        self.call::<(), _>(Method::Get, &format!("/tenants/{}", segment(key)), None)
            .await
    }

    pub async fn enroll_gateway(&self, req: &EnrollGateway) -> Result<EnrolledGateway, ApiError> {
        self.call(Method::Post, "/gateways", Some(req)).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
