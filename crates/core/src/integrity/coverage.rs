//! Delivery coverage of one region's log folder: the oldest and newest delivery, and every
//! hole longer than a tolerance. Built from the listing as it streams by (keys sort by
//! delivery time), in constant memory however many objects there are.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Holes kept per region; a bucket with more is reported as having at least this many.
pub const MAX_HOLES: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
    /// (last delivery before, first delivery after), oldest first.
    pub holes: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub files: u64,
    /// Latest write time (S3 LastModified) seen: to the second, where key names carry only
    /// the minute.
    #[serde(default)]
    pub last_write: Option<DateTime<Utc>>,
}

impl Coverage {
    /// When the newest log file arrived, as precisely as known.
    pub fn newest_delivery(&self) -> Option<DateTime<Utc>> {
        match (self.newest, self.last_write) {
            (Some(n), Some(w)) => Some(n.max(w)),
            (n, w) => n.or(w),
        }
    }

    pub fn written(&mut self, at: DateTime<Utc>) {
        if self.last_write.is_none_or(|w| at > w) {
            self.last_write = Some(at);
        }
    }

    /// Adds a delivery time. Times come in key order; one out of order only moves the ends.
    pub fn add(&mut self, delivered: DateTime<Utc>, tolerance: Duration) {
        self.files += 1;
        match self.newest {
            Some(newest) if delivered > newest => {
                if delivered - newest > tolerance && self.holes.len() < MAX_HOLES {
                    self.holes.push((newest, delivered));
                }
                self.newest = Some(delivered);
            }
            Some(_) => {}
            None => self.newest = Some(delivered),
        }
        if self.oldest.is_none_or(|o| delivered < o) {
            self.oldest = Some(delivered);
        }
    }
}

/// What the coverage policy concludes for one region.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaps {
    /// From when logs must be present.
    pub required_from: DateTime<Utc>,
    /// Uncovered stretches inside `[required_from, newest]`, the missing head included.
    pub uncovered: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Gaps {
    pub fn longest(&self) -> Duration {
        self.uncovered
            .iter()
            .map(|(a, b)| *b - *a)
            .max()
            .unwrap_or_else(Duration::zero)
    }
}

/// Logs must reach back `min_days` from `now`, or to the trail's origin when it is younger
/// (`origin`: when it was created, or the start of its oldest chain when that is a starting
/// digest), with no hole longer than `tolerance`. An origin with log files before it is no
/// origin: the folder had history (a trail deleted and created again), and a hole in it
/// counts.
pub fn gaps(
    c: &Coverage,
    now: DateTime<Utc>,
    min_days: i64,
    tolerance: Duration,
    origin: Option<DateTime<Utc>>,
) -> Gaps {
    let mut required_from = now - Duration::days(min_days);
    let origin = origin.filter(|o| c.oldest.is_none_or(|oldest| oldest >= *o - tolerance));
    if let Some(origin) = origin
        && origin > required_from
    {
        required_from = origin;
    }
    let mut uncovered = Vec::new();
    match c.oldest {
        None => uncovered.push((required_from, now)),
        Some(oldest) if oldest - required_from > tolerance => {
            uncovered.push((required_from, oldest));
        }
        Some(_) => {}
    }
    for &(a, b) in &c.holes {
        if b > required_from && b - a > tolerance {
            uncovered.push((a.max(required_from), b));
        }
    }
    Gaps {
        required_from,
        uncovered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(d)
    }

    #[test]
    fn a_two_day_hole_in_a_hundred_days() {
        let mut c = Coverage::default();
        for d in (0..=100).filter(|d| !(50..52).contains(d)) {
            c.add(day(d), Duration::hours(30));
        }
        assert_eq!(c.holes, [(day(49), day(52))]);
        assert_eq!(
            (c.oldest, c.newest, c.files),
            (Some(day(0)), Some(day(100)), 99)
        );
        let g = gaps(&c, day(100), 90, Duration::hours(30), None);
        assert_eq!(g.required_from, day(10));
        assert_eq!(g.uncovered, [(day(49), day(52))]);
        assert_eq!(g.longest(), Duration::days(3));
        // Once the hole is older than the window, it no longer matters.
        let g = gaps(&c, day(145), 90, Duration::hours(30), None);
        assert!(g.uncovered.is_empty(), "{g:?}");
    }

    #[test]
    fn a_young_trail_is_covered_from_its_origin_and_no_logs_is_all_gap() {
        let mut c = Coverage::default();
        for d in 80..=100 {
            c.add(day(d), Duration::hours(30));
        }
        let g = gaps(&c, day(100), 90, Duration::hours(30), Some(day(80)));
        assert!(g.uncovered.is_empty(), "{g:?}");
        let g = gaps(&c, day(100), 90, Duration::hours(30), None);
        assert_eq!(g.uncovered, [(day(10), day(80))]);
        let g = gaps(&Coverage::default(), day(100), 90, Duration::hours(1), None);
        assert_eq!(g.uncovered, [(day(10), day(100))]);
        // Log files before the origin: the trail was created again over older history, and
        // the window counts in full.
        let mut again = Coverage::default();
        for d in [20].into_iter().chain(80..=100) {
            again.add(day(d), Duration::hours(30));
        }
        let g = gaps(&again, day(100), 90, Duration::hours(30), Some(day(80)));
        assert_eq!(g.uncovered, [(day(10), day(20)), (day(20), day(80))]);
    }
}
