//! High-severity alerts raised by the authority (a honeytoken used at the token, exchange,
//! introspection or revocation endpoint).
//!
//! Every alert is logged at once (target `warden::alert`). With a webhook configured, it is
//! also delivered as a Security Event Token (RFC 8417: a JWS with `typ: secevent+jwt`, signed
//! by the authority's active key, verifiable against its JWKS) by a background task with a
//! bounded queue: raising an alert never waits on the receiver, and a full queue is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand_core::OsRng;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use warden_core::id::random_token_id;
use warden_core::jws;

use crate::keys::Keyring;

/// The event type URI of a honeytoken alert in a Security Event Token.
pub const HONEYTOKEN_EVENT: &str = "https://warden.dev/secevent/honeytoken-used";

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub severity: &'static str,
    pub kind: &'static str,
    /// The honeytoken (or otherwise implicated) principal.
    pub principal: String,
    /// Where it happened: `token_endpoint`, `token_exchange`, `introspection`, `revocation`.
    pub at: &'static str,
    pub client_ip: Option<String>,
    pub time: i64,
}

pub struct Alerts {
    queue: Option<mpsc::Sender<Alert>>,
    dropped: AtomicU64,
}

impl Alerts {
    /// Starts the webhook sender when `webhook` is set.
    pub fn start(webhook: Option<String>, issuer: String, keys: Arc<Keyring>) -> Self {
        let queue = webhook.map(|url| {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(deliver(rx, url, issuer, keys));
            tx
        });
        Self {
            queue,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn raise(&self, alert: Alert) {
        tracing::error!(
            target: "warden::alert",
            severity = alert.severity, kind = alert.kind, principal = %alert.principal,
            at = alert.at, client_ip = ?alert.client_ip, "security alert"
        );
        if let Some(q) = &self.queue {
            if q.try_send(alert).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Alerts logged but not delivered to the webhook because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn deliver(mut rx: mpsc::Receiver<Alert>, url: String, issuer: String, keys: Arc<Keyring>) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    while let Some(alert) = rx.recv().await {
        let set = json!({
            "iss": issuer,
            "iat": alert.time,
            "jti": random_token_id(&mut OsRng),
            "events": { HONEYTOKEN_EVENT: &alert },
        });
        let k = keys.current();
        let Ok(body) = jws::encode("secevent+jwt", Some(&k.active_kid), &set, &k.active) else {
            continue;
        };
        let req = hyper::Request::post(&url)
            .header("content-type", "application/secevent+jwt")
            .body(Full::new(Bytes::from(body)));
        let Ok(req) = req else { continue };
        match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            Ok(Ok(res)) if res.status().is_success() => {}
            Ok(Ok(res)) => tracing::warn!(status = %res.status(), "alert webhook refused an alert"),
            Ok(Err(e)) => tracing::warn!(error = %e, "alert webhook unreachable"),
            Err(_) => tracing::warn!("alert webhook timed out"),
        }
    }
}
