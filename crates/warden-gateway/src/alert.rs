//! Delivering what the behaviour detectors found, off the request path: signed webhook
//! alerts, and quarantine revocations sent to the authority.
//!
//! The request path only queues (`try_send` on bounded queues); a full queue is counted,
//! never waited on. Each alert body is signed with the gateway's own Ed25519 key, whose
//! public half the authority publishes in its JWKS under the gateway's `kid`:
//! `Warden-Signature: kid="gw-…", alg="EdDSA", sig="<base64url of the signature over the
//! exact body bytes>"`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::http_client::full;
use crate::Gateway;

/// The header that carries an alert's signature.
pub const SIGNATURE_HEADER: &str = "warden-signature";

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at revoking a quarantined token before giving up (it stays refused locally
/// until it expires).
const REVOKE_ATTEMPTS: u32 = 4;

/// A quarantine to carry out at the authority: the principal acting through the token is
/// revoked, which ends its live tokens (this one among them) and refuses it new ones until
/// an operator reinstates it.
#[derive(Debug)]
pub struct Revoke {
    /// The token that misbehaved, for the log.
    pub jti: String,
    pub principal: String,
    pub reason: String,
}

/// Queues and counters; the senders run as tasks started by [`Alerts::spawn`].
pub struct Alerts {
    webhook: Option<mpsc::Sender<Bytes>>,
    revoke: mpsc::Sender<Revoke>,
    raised: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    revoked: AtomicU64,
    revoke_failed: AtomicU64,
}

/// The receiving ends, until the gateway exists to own the tasks.
pub struct Receivers {
    webhook: Option<(String, mpsc::Receiver<Bytes>)>,
    revoke: mpsc::Receiver<Revoke>,
}

impl Alerts {
    pub fn new(webhook: Option<&str>, queue: usize) -> (Self, Receivers) {
        let queue = queue.max(1);
        let (hook_tx, hook_rx) = match webhook {
            Some(url) => {
                let (tx, rx) = mpsc::channel(queue);
                (Some(tx), Some((url.to_owned(), rx)))
            }
            None => (None, None),
        };
        let (revoke_tx, revoke_rx) = mpsc::channel(queue);
        (
            Self {
                webhook: hook_tx,
                revoke: revoke_tx,
                raised: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                revoked: AtomicU64::new(0),
                revoke_failed: AtomicU64::new(0),
            },
            Receivers {
                webhook: hook_rx,
                revoke: revoke_rx,
            },
        )
    }

    /// Queues an alert body for the webhook, if one is configured; never waits.
    pub fn send(&self, body: &serde_json::Value) {
        self.raised.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.webhook else { return };
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        if tx.try_send(bytes).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("alert queue full; alert dropped (counted)");
        }
    }

    /// Queues a quarantine revocation; never waits.
    pub fn revoke(&self, r: Revoke) {
        if self.revoke.try_send(r).is_err() {
            self.revoke_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("revocation queue full; quarantined token is refused locally only");
        }
    }

    /// Alerts raised (whether or not a webhook is configured).
    pub fn raised_total(&self) -> u64 {
        self.raised.load(Ordering::Relaxed)
    }

    /// Alerts lost to a full queue.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Alerts the webhook did not accept (no 2xx, timeout, unreachable).
    pub fn failed_total(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn revoked_total(&self) -> u64 {
        self.revoked.load(Ordering::Relaxed)
    }

    pub fn revoke_failed_total(&self) -> u64 {
        self.revoke_failed.load(Ordering::Relaxed)
    }

    /// Starts the webhook sender and the revoker; both end when the gateway is dropped.
    pub fn spawn(gateway: &Arc<Gateway>, receivers: Receivers) {
        if let Some((url, rx)) = receivers.webhook {
            tokio::spawn(deliver(Arc::downgrade(gateway), url, rx));
        }
        tokio::spawn(revoke(Arc::downgrade(gateway), receivers.revoke));
    }
}

/// `kid="…", alg="EdDSA", sig="…"` for `body`, signed by the gateway's key.
pub fn signature_header(gateway: &Gateway, body: &[u8]) -> String {
    let sig = gateway.key.key.sign(body);
    format!(
        "kid=\"{}\", alg=\"EdDSA\", sig=\"{}\"",
        gateway.key.kid,
        URL_SAFE_NO_PAD.encode(sig)
    )
}

async fn deliver(gateway: Weak<Gateway>, url: String, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(body) = rx.recv().await {
        let Some(g) = gateway.upgrade() else { return };
        let signature = signature_header(&g, &body);
        let req = hyper::Request::post(&url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(full(body));
        let outcome = match req {
            Err(e) => Err(e.to_string()),
            Ok(req) => match tokio::time::timeout(WEBHOOK_TIMEOUT, g.client.request(req)).await {
                Err(_) => Err("timed out".to_owned()),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(res)) if res.status().is_success() => Ok(()),
                Ok(Ok(res)) => Err(format!("answered {}", res.status())),
            },
        };
        let alerts = &g.alerts;
        match (outcome, alerts) {
            (Ok(()), Some(a)) => {
                a.delivered.fetch_add(1, Ordering::Relaxed);
            }
            (Err(e), Some(a)) => {
                a.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(webhook = %url, error = %e, "alert not delivered");
            }
            (_, None) => {}
        }
    }
}

async fn revoke(gateway: Weak<Gateway>, mut rx: mpsc::Receiver<Revoke>) {
    while let Some(r) = rx.recv().await {
        let Some(g) = gateway.upgrade() else { return };
        let body = warden_api::admin::Reason {
            reason: Some(r.reason.clone()),
        };
        let mut backoff = Duration::from_millis(100);
        let mut done = false;
        for attempt in 1..=REVOKE_ATTEMPTS {
            match g.authority.revoke_principal(&r.principal, &body).await {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(jti = %r.jti, attempt, error = %e, "quarantine revocation failed");
                }
            }
            if attempt < REVOKE_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 4;
            }
        }
        if let Some(a) = &g.alerts {
            if done {
                a.revoked.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(jti = %r.jti, principal = %r.principal, "quarantined principal revoked at the authority");
            } else {
                a.revoke_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(jti = %r.jti, principal = %r.principal, "quarantined principal could not be revoked; its token is refused locally until it expires");
            }
        }
    }
}

/// The `detail` of a problem+json answer, for a log line; empty when there is none.
pub fn detail_of(answer: &serde_json::Value) -> &str {
    answer
        .get("detail")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_full_queue_counts_the_loss_instead_of_waiting() {
        let (alerts, _receivers) = Alerts::new(Some("http://127.0.0.1:9/hook"), 2);
        for _ in 0..5 {
            alerts.send(&json!({ "n": 1 }));
        }
        assert_eq!(alerts.raised_total(), 5);
        assert_eq!(alerts.dropped_total(), 3);
        // Without a webhook, alerts are counted as raised and go to the audit log only.
        let (quiet, _r) = Alerts::new(None, 2);
        quiet.send(&json!({}));
        assert_eq!((quiet.raised_total(), quiet.dropped_total()), (1, 0));
    }
}
