//! One log folder (`…/CloudTrail/{region}/` of one account) over many passes: what a pass
//! lists, which listed keys it reads, what counts for coverage, and how far the cursor moves.
//!
//! Keys carry only the delivery minute and a random suffix, so key order is not arrival
//! order: a file written later can sort below a key already read (a smaller suffix in the same
//! minute, or a late delivery). So a pass lists again from `look_back` before its cursor and
//! reads every key it has not read before, whatever its place; a full listing every `rescan`
//! catches anything later still. The cursor is a delivery minute, and it never passes a key
//! that was wanted and is neither read nor recorded for a retry.

use crate::integrity::coverage::Coverage;
use crate::integrity::layout::{self, AccountRoot};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The first pass reads log files delivered this far back; older ones count for
    /// coverage only.
    pub initial_window: Duration,
    /// Each pass lists again from this far before its cursor.
    pub look_back: Duration,
    /// The whole folder is listed this often: deletions show only that way, and so do keys
    /// written later than the look-back.
    pub rescan: Duration,
    /// Log files delivered longer ago are never read: the store forgets event ids after this
    /// long, so reading them could count an event twice. Event history (90 days) has them.
    pub read_window: Duration,
}

/// What a folder keeps between passes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFolder {
    pub coverage: Coverage,
    /// The cursor: every key delivered before this minute was read, is waiting for a retry,
    /// or is out of the window.
    #[serde(default)]
    pub done_until: Option<DateTime<Utc>>,
    /// The last key listed: coverage counts keys after it, and keys before it only when new.
    #[serde(default)]
    pub listed_until: Option<String>,
    /// The start of the first pass's window: keys delivered before it are never read.
    #[serde(default)]
    pub read_from: Option<DateTime<Utc>>,
    /// When the last full listing finished.
    #[serde(default)]
    pub scanned_at: Option<DateTime<Utc>>,
}

/// Where a pass starts listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// `None`: from the folder's first key.
    pub start_after: Option<String>,
    /// The whole folder: coverage is rebuilt from this listing.
    pub full: bool,
}

pub fn listing(
    root: &AccountRoot,
    region: &str,
    state: &LogFolder,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Listing {
    let full = state.scanned_at.is_none_or(|t| now - t >= rules.rescan);
    let start_after = match (full, state.done_until) {
        (true, _) => None,
        (false, Some(done)) => Some(layout::log_key_floor(root, region, done - rules.look_back)),
        (false, None) => Some(layout::start_after_for(
            &root.logs(region),
            read_from(state, now, rules),
        )),
    };
    Listing { start_after, full }
}

/// The start of the window of log files to read.
pub fn read_from(state: &LogFolder, now: DateTime<Utc>, rules: &Rules) -> DateTime<Utc> {
    state.read_from.unwrap_or(now - rules.initial_window)
}

/// What the store knows of a listed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    New,
    /// Read before (its hash is kept).
    Read,
    /// Its read failed; it waits for a retry, which the retry list drives.
    Retrying,
}

/// What a pass does with a listed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Read,
    /// Read before, or waiting for its retry: nothing to do.
    Done,
    /// Delivered before the window, as expected: counted for coverage only.
    Before,
    /// New, after the cursor, yet older than the read window: the daemon was away longer
    /// than the window. Not read (it could count events again); reported.
    Missed,
}

pub fn decide(
    delivered: DateTime<Utc>,
    known: Known,
    state: &LogFolder,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Decision {
    if known != Known::New {
        return Decision::Done;
    }
    let floor = read_from(state, now, rules).max(now - rules.read_window);
    if delivered >= floor {
        return Decision::Read;
    }
    let after_cursor = state
        .done_until
        .is_some_and(|done| delivered >= done - rules.look_back);
    if after_cursor {
        Decision::Missed
    } else {
        Decision::Before
    }
}

/// Whether a listed key adds to the folder's coverage: everything in a full listing; in an
/// incremental one, keys after the last listed, and new keys the look-back finds.
pub fn counts_for_coverage(key: &str, state: &LogFolder, full: bool, decision: Decision) -> bool {
    full || state.listed_until.as_deref().is_none_or(|l| key > l) || decision == Decision::Read
}

/// Whether a pass is finished with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Read, recorded for a retry, read before, or out of the window.
    Done,
    /// Wanted, and neither read nor recorded: the cursor must not pass it.
    Open,
}

/// The cursor after a pass: the newest delivery minute it finished, but never past the
/// oldest key it left open (the next pass lists from before it again).
pub fn advance(
    previous: Option<DateTime<Utc>>,
    keys: impl IntoIterator<Item = (DateTime<Utc>, Handled)>,
) -> Option<DateTime<Utc>> {
    let mut newest = previous;
    let mut oldest_open: Option<DateTime<Utc>> = None;
    for (delivered, handled) in keys {
        match handled {
            Handled::Done => newest = newest.max(Some(delivered)),
            Handled::Open => {
                oldest_open = Some(oldest_open.map_or(delivered, |o| o.min(delivered)));
            }
        }
    }
    match (newest, oldest_open) {
        (Some(n), Some(o)) => Some(n.min(o)),
        (None, Some(o)) => Some(o),
        (n, None) => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn rules() -> Rules {
        Rules {
            initial_window: Duration::days(1),
            look_back: Duration::hours(1),
            rescan: Duration::hours(6),
            read_window: Duration::days(3),
        }
    }

    fn root() -> AccountRoot {
        AccountRoot {
            prefix: None,
            org: None,
            account: "111122223333".into(),
        }
    }

    #[test]
    fn listing_starts_full_then_a_look_back_before_the_cursor() {
        let now = t(12, 0);
        let fresh = LogFolder::default();
        assert_eq!(
            listing(&root(), "us-east-1", &fresh, now, &rules()),
            Listing {
                start_after: None,
                full: true
            }
        );
        let state = LogFolder {
            done_until: Some(t(11, 30)),
            scanned_at: Some(t(9, 0)),
            ..Default::default()
        };
        let l = listing(&root(), "us-east-1", &state, now, &rules());
        assert!(!l.full);
        assert_eq!(
            l.start_after.as_deref(),
            Some(
                "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/01/111122223333_CloudTrail_us-east-1_20261201T1030Z"
            )
        );
        let due = LogFolder {
            scanned_at: Some(t(6, 0)),
            ..state
        };
        assert!(listing(&root(), "us-east-1", &due, now, &rules()).full);
    }

    #[test]
    fn which_listed_keys_are_read() {
        let now = t(12, 0);
        let state = LogFolder {
            done_until: Some(t(11, 30)),
            read_from: Some(now - Duration::days(1)),
            scanned_at: Some(t(9, 0)),
            ..Default::default()
        };
        let long_away = LogFolder {
            done_until: Some(now - Duration::days(5)),
            ..state.clone()
        };
        let cases = [
            (
                "new, after the cursor",
                t(11, 45),
                Known::New,
                &state,
                Decision::Read,
            ),
            (
                "new, below the cursor (a smaller suffix, or late)",
                t(11, 10),
                Known::New,
                &state,
                Decision::Read,
            ),
            (
                "read before",
                t(11, 10),
                Known::Read,
                &state,
                Decision::Done,
            ),
            (
                "waiting for a retry",
                t(11, 10),
                Known::Retrying,
                &state,
                Decision::Done,
            ),
            (
                "before the first window",
                now - Duration::days(2),
                Known::New,
                &state,
                Decision::Before,
            ),
            (
                "after a long absence, older than the read window",
                now - Duration::days(4),
                Known::New,
                &long_away,
                Decision::Missed,
            ),
            (
                "after a long absence, inside the read window",
                now - Duration::days(2),
                Known::New,
                &LogFolder {
                    read_from: Some(now - Duration::days(6)),
                    ..long_away.clone()
                },
                Decision::Read,
            ),
        ];
        for (name, delivered, known, state, expected) in cases {
            assert_eq!(
                decide(delivered, known, state, now, &rules()),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn coverage_counts_each_key_once() {
        let state = LogFolder {
            listed_until: Some("k5".into()),
            ..Default::default()
        };
        assert!(counts_for_coverage("k6", &state, false, Decision::Done));
        assert!(!counts_for_coverage("k4", &state, false, Decision::Done));
        assert!(counts_for_coverage("k4", &state, false, Decision::Read));
        assert!(counts_for_coverage("k4", &state, true, Decision::Done));
    }

    #[test]
    fn the_cursor_never_passes_an_open_key() {
        let cases = [
            (
                "all done",
                None,
                vec![(t(1, 0), Handled::Done), (t(1, 5), Handled::Done)],
                Some(t(1, 5)),
            ),
            (
                "an open key stops it",
                None,
                vec![
                    (t(1, 0), Handled::Done),
                    (t(1, 5), Handled::Open),
                    (t(1, 10), Handled::Done),
                ],
                Some(t(1, 5)),
            ),
            (
                "a late open key below the old cursor moves it back",
                Some(t(2, 0)),
                vec![(t(1, 50), Handled::Open), (t(2, 5), Handled::Done)],
                Some(t(1, 50)),
            ),
            (
                "nothing listed keeps it",
                Some(t(2, 0)),
                vec![],
                Some(t(2, 0)),
            ),
            (
                "only open",
                None,
                vec![(t(3, 0), Handled::Open)],
                Some(t(3, 0)),
            ),
        ];
        for (name, previous, keys, expected) in cases {
            assert_eq!(advance(previous, keys), expected, "{name}");
        }
    }
}
