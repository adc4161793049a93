//! What is retried, and when: an object that could not be read is retried on later passes,
//! first at once, then with a backoff that doubles up to a cap, for as long as it fails.
//! Nothing is ever given up silently: while it waits, it is counted and shown, and the
//! policies that depend on it say `error`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::hours(1);

/// A read that failed and waits for its next attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub first_failed: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    /// The last failure, as a person reads it.
    pub reason: String,
}

/// The retry after a failed attempt: the next pass tries again at once (most faults are
/// brief), then waits `base`, 2×`base`, 4×`base`… up to [`MAX_BACKOFF`].
pub fn after_failure(
    previous: Option<&Retry>,
    reason: &str,
    now: DateTime<Utc>,
    base: Duration,
) -> Retry {
    let attempts = previous.map_or(1, |r| r.attempts.saturating_add(1));
    let wait = match attempts {
        0 | 1 => Duration::zero(),
        n => {
            let doublings = (n - 2).min(30);
            base.checked_mul(1 << doublings)
                .unwrap_or(MAX_BACKOFF)
                .min(MAX_BACKOFF)
        }
    };
    Retry {
        first_failed: previous.map_or(now, |r| r.first_failed),
        attempts,
        next_attempt: now + wait,
        reason: reason.to_string(),
    }
}

/// Whether the retry's time has come.
pub fn due(retry: &Retry, now: DateTime<Utc>) -> bool {
    retry.next_attempt <= now
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn at_once_then_doubling_up_to_the_cap() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let base = Duration::seconds(30);
        let mut waits = Vec::new();
        let mut r: Option<Retry> = None;
        let mut now = t0;
        for _ in 0..10 {
            let next = after_failure(r.as_ref(), "AccessDenied", now, base);
            waits.push((next.next_attempt - now).num_seconds());
            assert!(!due(&next, now - Duration::seconds(1)));
            now = next.next_attempt;
            assert!(due(&next, now));
            r = Some(next);
        }
        assert_eq!(waits, [0, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        let r = r.unwrap();
        assert_eq!(
            (r.attempts, r.first_failed),
            (10, t0),
            "the first failure is kept"
        );
    }

    #[test]
    fn many_attempts_never_overflow() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let old = Retry {
            first_failed: t0,
            attempts: u32::MAX,
            next_attempt: t0,
            reason: String::new(),
        };
        let next = after_failure(Some(&old), "x", t0, Duration::days(365));
        assert_eq!(next.next_attempt - t0, MAX_BACKOFF);
        assert_eq!(next.attempts, u32::MAX);
    }
}
