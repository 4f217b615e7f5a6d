//! At most one log line per period for an event that can repeat thousands of times a second
//! (an accept error, a refusal), with a count of the occurrences it kept quiet about.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Throttle {
    period: Duration,
    last_line: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period,
            last_line: None,
            held_back: 0,
        }
    }

    /// One more occurrence at `now`: `Some(n)` means write a line, mentioning the `n`
    /// occurrences not logged since the previous line; `None` means stay quiet.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last_line {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.held_back = self.held_back.saturating_add(1);
                None
            }
            _ => {
                self.last_line = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }

    /// The occurrences not logged since the last line; the count starts again at zero.
    pub(crate) fn take_held_back(&mut self) -> u64 {
        std::mem::take(&mut self.held_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_counting_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1));
        assert_eq!(t.admit(t0), Some(0));
        for i in 1..=500 {
            assert_eq!(t.admit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.admit(t0 + Duration::from_millis(1000)), Some(500));
        assert_eq!(t.admit(t0 + Duration::from_millis(1001)), None);
        assert_eq!(t.take_held_back(), 1);
        assert_eq!(t.take_held_back(), 0);
    }
}
