//! Request plumbing shared by every endpoint: bounded body reads and the request timeout.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::Problem;
use crate::Authority;

/// Why a request body could not be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Declared or sent, more than the limit: 413.
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The client closed the connection (or ended the chunked stream) before the whole body
    /// arrived: its fault, and not a size problem, so a 400 of its own.
    #[error("request body ended before its declared length")]
    Incomplete,
    /// Any other failure of the connection while the body was read.
    #[error("request body could not be read")]
    Unreadable,
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Incomplete | Self::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    /// Classifies a failed read by what lies at the bottom of the error.
    fn of(e: &(dyn std::error::Error + 'static), limit: usize) -> Self {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err.is::<http_body_util::LengthLimitError>() {
                return Self::TooLarge { limit };
            }
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
                || err
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_incomplete_message)
            {
                return Self::Incomplete;
            }
            cur = err.source();
        }
        Self::Unreadable
    }
}

impl From<BodyError> for Problem {
    fn from(e: BodyError) -> Self {
        let title = match e {
            BodyError::TooLarge { .. } => "payload too large",
            BodyError::Incomplete | BodyError::Unreadable => "bad request",
        };
        Problem::new(e.status(), title, e.to_string())
    }
}

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| BodyError::of(&e, limit))
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
