//! What a listener does when `accept` fails. Out of descriptors (`EMFILE`, `ENFILE`) or
//! memory, retrying at once only fails again, thousands of times a second, each with a log
//! line: so it waits, twice as long after each failure up to a second, and logs at most one
//! line a second with the count of failures it did not log.

use std::io;
use std::time::{Duration, Instant};

use crate::throttle::Throttle;

/// The wait after the first failure of a run.
const FIRST_DELAY: Duration = Duration::from_millis(5);
/// The longest wait; the listener retries at least this often however long the run lasts.
const MAX_DELAY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct AcceptErrors {
    /// The wait after the last failure; `None` while accepts succeed.
    delay: Option<Duration>,
    log: Throttle,
}

impl AcceptErrors {
    pub(crate) const fn new() -> Self {
        Self {
            delay: None,
            log: Throttle::new(LOG_EVERY),
        }
    }

    /// How long to wait after `e` at `now`, or `None` to accept again at once: a connection
    /// that failed between the handshake and `accept` says nothing about the listener.
    pub(crate) fn failed(&mut self, e: &io::Error, now: Instant) -> Option<Duration> {
        if is_one_connections_failure(e) {
            tracing::debug!(error = %e, "a connection failed before it was accepted");
            return None;
        }
        let delay = self
            .delay
            .map_or(FIRST_DELAY, |d| d.saturating_mul(2).min(MAX_DELAY));
        self.delay = Some(delay);
        if let Some(suppressed) = self.log.admit(now) {
            tracing::warn!(
                error = %e,
                suppressed,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "accept failed"
            );
        }
        Some(delay)
    }

    /// An accept succeeded: the next failure waits the shortest time again.
    pub(crate) fn succeeded(&mut self) {
        if self.delay.take().is_some() {
            let suppressed = self.log.take_held_back();
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "accepting again; accept errors since the last `accept failed` line were not logged"
                );
            }
        }
    }
}

fn is_one_connections_failure(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::other("Too many open files (os error 24)")
    }

    #[test]
    fn waits_double_up_to_a_second_and_start_again_after_a_success() {
        let t0 = Instant::now();
        let mut errors = AcceptErrors::new();
        let waits: Vec<u128> = (0..12)
            .filter_map(|_| errors.failed(&emfile(), t0))
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]
        );
        errors.succeeded();
        assert_eq!(errors.failed(&emfile(), t0), Some(FIRST_DELAY));
    }

    #[test]
    fn one_connections_failure_is_no_reason_to_wait() {
        let mut errors = AcceptErrors::new();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(errors.failed(&aborted, Instant::now()), None);
        assert_eq!(errors.failed(&emfile(), Instant::now()), Some(FIRST_DELAY));
    }
}
