//! Single use of client-assertion `jti`s, with group commit: concurrent token requests
//! share one insert statement instead of paying a store round trip each. A request waits
//! for the statement that carries its `jti`; nothing is issued before the `jti` is recorded.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use warden_store::{AssertionJti, Store, StoreError};

/// Most `jti`s one statement carries.
const MAX_BATCH: usize = 512;
/// Requests that may wait for a batch; beyond this, callers wait for room.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<bool, Arc<StoreError>>>;

#[derive(Clone)]
pub struct JtiRecorder {
    tx: mpsc::Sender<(AssertionJti, Reply)>,
}

impl JtiRecorder {
    /// Starts the recorder; each batch's store round trip is observed in `took`.
    pub fn spawn(
        store: Arc<dyn Store>,
        took: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx, took));
        Self { tx }
    }

    /// True if this is the first use of the `jti` by this client.
    pub async fn record(&self, entry: AssertionJti) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        // The recorder only stops with the runtime: to a caller, the store is gone.
        let closed = || StoreError::Unavailable("the jti recorder has stopped");
        self.tx.send((entry, reply)).await.map_err(|_| closed())?;
        answer
            .await
            .map_err(|_| closed())?
            .map_err(StoreError::Shared)
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(AssertionJti, Reply)>,
    took: prometheus_client::metrics::histogram::Histogram,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Waits for the first request, then takes whatever else is already queued: no timer,
    // so a lone request is not delayed.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (entries, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let started = std::time::Instant::now();
        let recorded = store.record_assertion_jtis(&entries).await;
        took.observe(started.elapsed().as_secs_f64());
        match recorded {
            Ok(fresh) => {
                for (reply, f) in replies.into_iter().zip(fresh) {
                    let _ = reply.send(Ok(f));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = entries.len(), "recording assertion jtis failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(Arc::clone(&e)));
                }
            }
        }
    }
}
