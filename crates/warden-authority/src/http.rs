//! Request plumbing shared by every endpoint: bounded body reads and the request timeout.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Problem;
use crate::Authority;

/// Reads the whole body, refusing more than `limit` bytes; `Err` carries the limit.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, usize> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(limit);
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| limit)
}

pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

pub async fn request_timeout(
    State(a): State<Arc<Authority>>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(a.config.limits.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long and was abandoned",
        )
        .into_response(),
    }
}

pub async fn not_found() -> Problem {
    Problem::not_found("no such endpoint")
}
