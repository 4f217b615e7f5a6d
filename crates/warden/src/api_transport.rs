//! warden-api's transport over reqwest, for the CLI.

use warden_api::client::{Method, Request, Response};
use warden_api::Transport;

pub struct ReqwestTransport(pub reqwest::Client);

impl Transport for ReqwestTransport {
    fn send(
        &self,
        request: Request,
    ) -> impl std::future::Future<Output = Result<Response, String>> + Send {
        let http = self.0.clone();
        async move {
            let method = match request.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
                Method::Delete => reqwest::Method::DELETE,
            };
            let mut req = http.request(method, &request.url);
            if let Some(t) = &request.bearer {
                req = req.bearer_auth(t.as_str());
            }
            if let Some(k) = &request.idempotency_key {
                req = req.header("idempotency-key", k);
            }
            if let Some(ct) = request.body.content_type() {
                req = req.header("content-type", ct);
            }
            let res = req
                .body(request.body.into_bytes())
                .send()
                .await
                .map_err(|e| format!("{}: {e}", request.url))?;
            let status = res.status().as_u16();
            let body = res
                .bytes()
                .await
                .map_err(|e| format!("{}: {e}", request.url))?
                .to_vec();
            Ok(Response { status, body })
        }
    }
}
