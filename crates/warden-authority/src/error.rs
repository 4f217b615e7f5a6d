//! The authority's two error shapes: OAuth error JSON (RFC 6749 §5.2) at OAuth endpoints,
//! problem+json (RFC 9457) everywhere else. Internal failures are logged and answered with a
//! generic 500 that names nothing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use warden_store::StoreError;

/// An OAuth endpoint's refusal.
#[derive(Debug)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
    pub status: StatusCode,
    /// `WWW-Authenticate` scheme to challenge with, for `invalid_client` over HTTP auth.
    pub challenge: Option<&'static str>,
    /// `Retry-After` seconds, for refusals that a later retry can pass.
    pub retry_after: Option<u32>,
}

impl OAuthError {
    fn new(code: &'static str, status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            status,
            challenge: None,
            retry_after: None,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", StatusCode::UNAUTHORIZED, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new("invalid_scope", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new("invalid_target", StatusCode::BAD_REQUEST, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new("unauthorized_client", StatusCode::BAD_REQUEST, d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", StatusCode::BAD_REQUEST, d)
    }
    pub fn invalid_dpop_proof(d: impl Into<String>) -> Self {
        Self::new("invalid_dpop_proof", StatusCode::BAD_REQUEST, d)
    }
    pub fn temporarily_unavailable(d: impl Into<String>) -> Self {
        Self::new(
            "temporarily_unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            d,
        )
    }
    pub fn server_error() -> Self {
        Self::new(
            "server_error",
            StatusCode::INTERNAL_SERVER_ERROR,
            "the authority could not complete the request",
        )
    }

    /// A 503 the client may retry after [`crate::readiness::RETRY_AFTER_SECS`].
    pub fn unavailable(d: impl Into<String>) -> Self {
        let mut e = Self::temporarily_unavailable(d);
        e.retry_after = Some(crate::readiness::RETRY_AFTER_SECS);
        e
    }

    /// A `429` after too many failed client authentications, retried after `secs`. Its
    /// code is RFC 6749's for "retry later", since OAuth has none for a rate limit.
    pub fn throttled(d: impl Into<String>, secs: u32) -> Self {
        let mut e = Self::new("temporarily_unavailable", StatusCode::TOO_MANY_REQUESTS, d);
        e.retry_after = Some(secs);
        e
    }

    pub fn with_challenge(mut self, scheme: &'static str) -> Self {
        self.challenge = Some(scheme);
        self
    }
}

/// A body that could not be read is the client's `invalid_request`; only its status differs.
impl From<crate::http::BodyError> for OAuthError {
    fn from(e: crate::http::BodyError) -> Self {
        Self::new("invalid_request", e.status(), e.to_string())
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure at token endpoint");
        match e.unavailable() {
            Some(why) => Self::unavailable(format!("{why}; retry later")),
            None => Self::server_error(),
        }
    }
}

#[derive(Serialize)]
struct OAuthBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            axum::Json(OAuthBody {
                error: self.code,
                error_description: &self.description,
            }),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(scheme) = self.challenge {
            if let Ok(v) = HeaderValue::from_str(&format!("{scheme} realm=\"warden\"")) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        res.extensions_mut().insert(OAuthErrorCode(self.code));
        res
    }
}

/// The `error` an [`OAuthError`] answer carries, kept on the response for the metrics of the
/// endpoint that answered (it never reaches the client).
#[derive(Debug, Clone, Copy)]
pub struct OAuthErrorCode(pub &'static str);

/// A problem+json refusal (RFC 9457).
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// `Retry-After` seconds, for refusals that a later retry can pass.
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid value", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    /// A 503 the client may retry after [`crate::readiness::RETRY_AFTER_SECS`].
    pub fn unavailable(title: &'static str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::SERVICE_UNAVAILABLE, title, detail);
        p.retry_after = Some(crate::readiness::RETRY_AFTER_SECS);
        p
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "the authority could not complete the request",
        )
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            // Another call took this call's Idempotency-Key over, presuming it dead.
            StoreError::ReservationLost => {
                Self::conflict("a request with this Idempotency-Key is still in progress")
            }
            other => {
                tracing::error!(error = %other, "store failure in lifecycle API");
                match other.unavailable() {
                    Some(why) => Self::unavailable(
                        "storage unavailable",
                        format!("{why}; nothing was changed, retry later"),
                    ),
                    None => Self::internal(),
                }
            }
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut res = (self.status, bytes).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"warden-admin\""),
            );
        }
        res
    }
}
