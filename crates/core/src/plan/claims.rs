//! How long claimed event ids are remembered: as long as either source may still bring the
//! event back. Event history re-reads `overlap` before its checkpoint; the bucket poller reads
//! log files delivered within `read_window`. Forgetting an id sooner would count its event
//! twice; the hour of slack covers a log file delivered late in its minute.

use chrono::{DateTime, Duration, Utc};

const SLACK: Duration = Duration::hours(1);

/// Claims of events older than this can no longer come back from either source.
pub fn forget_before(
    now: DateTime<Utc>,
    overlap: Duration,
    read_window: Duration,
) -> DateTime<Utc> {
    now - (overlap.max(read_window) + SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_outlive_whichever_source_reads_furthest_back() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let cases = [
            (
                "the defaults",
                Duration::minutes(15),
                Duration::days(3),
                Duration::days(3),
            ),
            (
                "a long read window",
                Duration::minutes(15),
                Duration::days(10),
                Duration::days(10),
            ),
            (
                "a long overlap",
                Duration::days(5),
                Duration::days(3),
                Duration::days(5),
            ),
        ];
        for (name, overlap, read_window, reach) in cases {
            assert_eq!(
                forget_before(now, overlap, read_window),
                now - reach - Duration::hours(1),
                "{name}"
            );
        }
    }
}
