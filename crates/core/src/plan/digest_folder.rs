//! One trail's digest chain in one digest folder (`…/CloudTrail-Digest/{region}/`) over many
//! passes: where a pass starts listing, how many digests it takes, whether it walks at all
//! (a chain held at a digest it could not judge waits for that digest's retry), and what the
//! folder keeps after the walk.
//!
//! The walk itself is `integrity::chain::judge`; the cursor is the last digest it judged,
//! which never passes a digest it held.

use super::retry::{Retry, due};
use crate::integrity::chain::{Anchor, ChainReport, unlisted_logs};
use crate::integrity::layout;
use crate::integrity::verdict::Item;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The first pass validates digests this far back.
    pub initial_window: Duration,
    /// At most this many digests per pass: memory stays bounded after a long absence; the
    /// rest come next pass.
    pub max_digests: usize,
}

/// What a digest folder keeps between passes, per trail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestFolder {
    /// The last digest judged, whatever its verdict: the next walk starts after it and checks
    /// its successor's link against it.
    #[serde(default)]
    pub last: Option<Anchor>,
    /// The newest valid digest: a later digest may link to it over objects that are no
    /// digest.
    #[serde(default)]
    pub valid: Option<Anchor>,
    /// End of the newest valid digest.
    #[serde(default)]
    pub validated_until: Option<DateTime<Utc>>,
    /// Start of the oldest chain when it is a starting digest; checked once.
    #[serde(default)]
    pub origin: Option<DateTime<Utc>>,
    #[serde(default)]
    pub origin_checked: bool,
}

/// The key the listing starts after.
pub fn start_after(
    folder: &str,
    state: &DigestFolder,
    now: DateTime<Utc>,
    rules: &Rules,
) -> String {
    match &state.last {
        Some(last) => last.key.clone(),
        None => layout::start_after_for(folder, now - rules.initial_window),
    }
}

/// The digests this pass takes from the keys listed after the start (ascending).
pub fn this_pass<T>(mut keys: Vec<T>, rules: &Rules) -> Vec<T> {
    keys.truncate(rules.max_digests.max(1));
    keys
}

/// Whether the chain is walked now: a chain held at an object that could not be read waits
/// until that object's retry is due.
pub fn walk_now(hold: Option<&Retry>, now: DateTime<Utc>) -> bool {
    hold.is_none_or(|r| due(r, now))
}

/// The folder after a walk.
pub fn after(state: &DigestFolder, report: &ChainReport) -> DigestFolder {
    DigestFolder {
        last: report.last.clone().or_else(|| state.last.clone()),
        valid: report.anchor.clone().or_else(|| state.valid.clone()),
        validated_until: report
            .anchor
            .as_ref()
            .map(|a| a.end)
            .max(state.validated_until),
        origin: state.origin,
        origin_checked: state.origin_checked,
    }
}

/// Log files of the folder that no digest of the chain lists, though inside the interval
/// this walk's digests cover. A file counts as listed when any digest lists it: this walk's,
/// or one judged by an earlier pass (a file of the minute a digest ends at is listed by that
/// digest, which the previous pass judged).
pub fn unlisted(
    in_folder: &[(String, DateTime<Utc>)],
    listed_before: &HashSet<String>,
    report: &ChainReport,
) -> Vec<Item> {
    let Some(covered) = report.covered else {
        return Vec::new();
    };
    unlisted_logs(
        in_folder.iter().map(|(k, t)| (k.as_str(), *t)),
        |k| report.listed_logs.contains(k) || listed_before.contains(k),
        covered,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::chain::Held;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn anchor(key: &str, h: u32) -> Anchor {
        Anchor {
            key: key.into(),
            end: t(h),
            sha256: Some("ab".into()),
            signature: Some("cd".into()),
        }
    }

    #[test]
    fn the_cursor_is_the_last_digest_judged() {
        let rules = Rules {
            initial_window: Duration::days(1),
            max_digests: 2,
        };
        let folder = "AWSLogs/1/CloudTrail-Digest/us-east-1/";
        let fresh = DigestFolder::default();
        assert_eq!(
            start_after(folder, &fresh, t(12), &rules),
            "AWSLogs/1/CloudTrail-Digest/us-east-1/2026/11/290"
        );
        let state = DigestFolder {
            last: Some(anchor("d3", 3)),
            validated_until: Some(t(2)),
            ..Default::default()
        };
        assert_eq!(start_after(folder, &state, t(12), &rules), "d3");
        assert_eq!(this_pass(vec!["d4", "d5", "d6"], &rules), ["d4", "d5"]);
        // A walk that judged d4 (invalid) and held at d5: the cursor is d4; validation
        // still ends where the last valid digest did.
        let held = ChainReport {
            last: Some(anchor("d4", 4)),
            held: Some(Held {
                object: "d5".into(),
                digest: "d5".into(),
                reason: "AccessDenied".into(),
            }),
            ..Default::default()
        };
        let next = after(&state, &held);
        assert_eq!(next.last.unwrap().key, "d4");
        assert_eq!(next.validated_until, Some(t(2)));
        // A walk that judged nothing keeps everything.
        assert_eq!(after(&state, &ChainReport::default()), state);
    }

    #[test]
    fn a_file_listed_by_the_previous_pass_is_not_unlisted() {
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap();
        // This walk judged one digest covering 10:05:03 to 11:05:03, listing "b".
        let report = ChainReport {
            covered: Some((
                at(10, 5) + Duration::seconds(3),
                at(11, 5) + Duration::seconds(3),
            )),
            listed_logs: ["b".to_string()].into(),
            ..Default::default()
        };
        // "a" was delivered at 10:05:01, so the digest ending at 10:05:03 (judged by the
        // previous pass) lists it; its key says 10:05, inside this walk's slack.
        let folder = [
            ("a".to_string(), at(10, 5)),
            ("b".to_string(), at(10, 30)),
            ("stray".to_string(), at(10, 40)),
            ("next".to_string(), at(11, 5)),
        ];
        let before: HashSet<String> = ["a".to_string()].into();
        let found: Vec<String> = unlisted(&folder, &before, &report)
            .into_iter()
            .map(|i| i.object)
            .collect();
        assert_eq!(found, ["stray"], "'next' belongs to the next digest");
        let forgetful: Vec<String> = unlisted(&folder, &HashSet::new(), &report)
            .into_iter()
            .map(|i| i.object)
            .collect();
        assert_eq!(forgetful, ["a", "stray"], "what the walk alone would say");
        assert!(unlisted(&folder, &before, &ChainReport::default()).is_empty());
    }

    #[test]
    fn a_held_chain_waits_for_its_retry() {
        let retry = Retry {
            first_failed: t(1),
            attempts: 3,
            next_attempt: t(2),
            reason: "AccessDenied".into(),
        };
        assert!(walk_now(None, t(1)));
        assert!(!walk_now(Some(&retry), t(1)));
        assert!(walk_now(Some(&retry), t(2)));
    }
}
