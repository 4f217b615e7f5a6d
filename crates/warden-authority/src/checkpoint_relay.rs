//! Every gateway following the revocation stream is a witness of the authority's audit log:
//! each signed checkpoint, once durable, goes out on every open stream (`event: checkpoint`),
//! and the gateway keeps the latest and serves it on its ops port. A root attacker on the
//! authority's host who cuts or rewrites the log then contradicts checkpoints held on
//! machines they do not control.
//!
//! The relay also knows what each open stream has delivered, so a clean stop can wait until
//! its last checkpoint has reached every gateway before it closes their streams.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use warden_audit::SignedCheckpoint;

pub struct CheckpointRelay {
    latest: watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    /// Per open stream, the `count` of the newest checkpoint it has sent (0: none yet).
    delivered: watch::Sender<BTreeMap<u64, u64>>,
    next_stream: AtomicU64,
}

impl CheckpointRelay {
    pub fn new(latest: watch::Receiver<Option<Arc<SignedCheckpoint>>>) -> Self {
        Self {
            latest,
            delivered: watch::channel(BTreeMap::new()).0,
            next_stream: AtomicU64::new(0),
        }
    }

    /// Counts a stream in until the returned handle is dropped.
    pub fn join(self: &Arc<Self>) -> RelayedStream {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        self.delivered.send_modify(|d| {
            d.insert(id, 0);
        });
        RelayedStream {
            id,
            sent: None,
            latest: self.latest.clone(),
            relay: Arc::clone(self),
        }
    }

    /// Waits until every open stream has sent the newest checkpoint, at most `limit`; false
    /// if some had not by then (a stalled gateway does not hold a stop for long).
    pub async fn all_delivered(&self, limit: Duration) -> bool {
        let Some(count) = self.latest.borrow().as_ref().map(|c| c.checkpoint.count) else {
            return true;
        };
        let mut delivered = self.delivered.subscribe();
        let all = delivered.wait_for(|d| d.values().all(|&sent| sent >= count));
        let reached = matches!(tokio::time::timeout(limit, all).await, Ok(Ok(_)));
        reached
    }
}

/// One stream's place in the relay.
pub struct RelayedStream {
    id: u64,
    sent: Option<u64>,
    latest: watch::Receiver<Option<Arc<SignedCheckpoint>>>,
    relay: Arc<CheckpointRelay>,
}

impl RelayedStream {
    /// The checkpoint line to send next, if one newer than what this stream sent exists;
    /// it counts as delivered once taken.
    pub fn take(&mut self) -> Option<String> {
        let cp = self.latest.borrow_and_update().clone()?;
        if self.sent.is_some_and(|s| cp.checkpoint.count <= s) {
            return None;
        }
        let sent = cp.checkpoint.count;
        self.sent = Some(sent);
        self.relay.delivered.send_modify(|d| {
            d.insert(self.id, sent);
        });
        String::from_utf8(cp.line()).ok()
    }

    /// Resolves when a newer checkpoint is made (or never, once the log is gone).
    pub async fn changed(&mut self) {
        if self.latest.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for RelayedStream {
    fn drop(&mut self) {
        self.relay.delivered.send_modify(|d| {
            d.remove(&self.id);
        });
    }
}
