//! The gateway's side of the gateway ↔ authority calls: warden-api's typed client over the
//! gateway's pooled hyper client. Run with its own credentials, the gateway is a service
//! principal holding `warden:gateway` and nothing else.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use warden_api::client::{Request, Response};
use warden_api::{ApiClient, Transport};

use crate::http_client::{full, HttpClient};

/// Longest any one call to the authority may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the authority.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

pub type AuthorityClient = ApiClient<HyperTransport>;

pub struct HyperTransport(pub HttpClient);

impl Transport for HyperTransport {
    fn send(
        &self,
        request: Request,
    ) -> impl std::future::Future<Output = Result<Response, String>> + Send {
        let client = self.0.clone();
        async move {
            let url = request.url.clone();
            let mut builder = hyper::Request::builder()
                .method(request.method.as_str())
                .uri(&request.url);
            if let Some(token) = &request.bearer {
                builder = builder.header("authorization", format!("Bearer {}", token.as_str()));
            }
            if let Some(k) = &request.idempotency_key {
                builder = builder.header("idempotency-key", k);
            }
            if let Some(ct) = request.body.content_type() {
                builder = builder.header("content-type", ct);
            }
            let req = builder
                .body(full(Bytes::from(request.body.into_bytes())))
                .map_err(|e| e.to_string())?;
            let res = tokio::time::timeout(CALL_TIMEOUT, client.request(req))
                .await
                .map_err(|_| format!("{url}: timed out"))?
                .map_err(|e| format!("{url}: {e}"))?;
            let status = res.status().as_u16();
            let body = http_body_util::Limited::new(res.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes()
                .to_vec();
            Ok(Response { status, body })
        }
    }
}
