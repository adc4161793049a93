//! LookupEvents' real limit: 2 requests per second per account and region. A sliding window:
//! a third call within one second of two others is throttled.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub const PER_SECOND: usize = 2;

#[derive(Default)]
pub struct Limiter {
    recent: HashMap<(String, String), VecDeque<Instant>>,
}

impl Limiter {
    /// True if the call may proceed (and counts it); false if it must be throttled.
    pub fn admit(&mut self, account: &str, region: &str, now: Instant) -> bool {
        let window = self
            .recent
            .entry((account.to_string(), region.to_string()))
            .or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= PER_SECOND {
            return false;
        }
        window.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_call_within_a_second_is_refused() {
        let mut l = Limiter::default();
        let t = Instant::now();
        assert!(l.admit("a", "r", t));
        assert!(l.admit("a", "r", t + Duration::from_millis(100)));
        assert!(!l.admit("a", "r", t + Duration::from_millis(200)));
        // Another account or region has its own budget.
        assert!(l.admit("b", "r", t + Duration::from_millis(200)));
        assert!(l.admit("a", "s", t + Duration::from_millis(200)));
        // A second later the oldest has left the window.
        assert!(l.admit("a", "r", t + Duration::from_millis(1000)));
        assert!(!l.admit("a", "r", t + Duration::from_millis(1050)));
    }
}
