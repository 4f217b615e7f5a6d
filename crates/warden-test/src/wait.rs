//! Waiting for a condition with a deadline, never a bare sleep standing in for it.

use std::future::Future;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(10);
const ROUNDS: u32 = 500;

/// Whether `cond` came to hold, checked every 10 ms for at most 5 s.
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..ROUNDS {
        if cond() {
            return true;
        }
        tokio::time::sleep(EVERY).await;
    }
    false
}

/// [`eventually`] for a condition that must itself wait (a request, say).
pub async fn eventually_async<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..ROUNDS {
        if cond().await {
            return true;
        }
        tokio::time::sleep(EVERY).await;
    }
    false
}
