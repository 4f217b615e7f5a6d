//! How many connections a listener holds at once, and how many it turned away. Owns the
//! count only: deciding what a refused connection hears is [`crate::refusal`]'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A listener's bound on open connections; clones share one count, so a metrics endpoint
/// can read what the accept loop enforces.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    places: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
}

/// One open connection's place under the cap, held by the task serving it: the place is
/// free again when the task ends, however it ends.
#[derive(Debug)]
pub struct Permit {
    _place: OwnedSemaphorePermit,
}

impl ConnectionLimit {
    /// At most `max` connections at once; `max` is taken as at least 1 (config validation
    /// refuses 0 before it gets here) and at most what a semaphore can count.
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                places: Arc::new(Semaphore::new(max)),
                max,
                refused: AtomicU64::new(0),
            }),
        }
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Connections holding a place now.
    pub fn open(&self) -> usize {
        self.inner
            .max
            .saturating_sub(self.inner.places.available_permits())
    }

    /// Connections refused for want of a place since the listener started.
    pub fn refused_total(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// A place for one more connection, or `None` at the cap (counted as a refusal).
    pub(crate) fn try_admit(&self) -> Option<Permit> {
        match Arc::clone(&self.inner.places).try_acquire_owned() {
            Ok(place) => Some(Permit { _place: place }),
            Err(_) => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_free_again_when_its_permit_drops() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_admit();
        let b = limit.try_admit();
        assert!(a.is_some() && b.is_some());
        assert_eq!(limit.open(), 2);
        assert!(limit.try_admit().is_none());
        assert_eq!(limit.refused_total(), 1);
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.try_admit().is_some());
        assert_eq!(limit.refused_total(), 1);
    }

    #[test]
    fn zero_means_one() {
        let limit = ConnectionLimit::new(0);
        assert_eq!(limit.max(), 1);
        let _only = limit.try_admit();
        assert!(limit.try_admit().is_none());
    }
}
