//! Digest integrity: the verdicts of digest validation found within the window. Any
//! failure (missing or forged digest, broken link, missing, modified or unlisted log file,
//! unexplained restart, unverifiable item) fails the policy; explained restarts do not.

use super::delivery::humanize;
use super::{CheckResult, Verdict};
use crate::posture::{Trail, TrailEvidence, Unavailable};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// CloudTrail writes a trail's first digest within the hour after logging (or validation)
/// starts; a little slack on top.
pub const FIRST_DIGEST: Duration = Duration::minutes(75);

pub fn digest_integrity(
    trail: &Trail,
    evidence: &TrailEvidence,
    window: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut first = None;
    for v in evidence
        .verdicts
        .iter()
        .filter(|v| now - v.found_at <= window && v.class != "explained_restart")
    {
        *kinds.entry(v.class.as_str()).or_default() += 1;
        first.get_or_insert(v);
    }
    // A definite failure stands, whatever else is unknown.
    if let Some(v) = first {
        let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        return Ok(Verdict::fail(format!(
            "{} in the last {} (newest: {} {} in {} {}: {})",
            counts.join(", "),
            humanize(window),
            v.class,
            v.object,
            v.account,
            v.region,
            v.detail
        )));
    }
    let mut unknown: Vec<String> = evidence
        .regions
        .iter()
        .filter_map(|r| {
            let e = r.digest_error.as_deref()?;
            Some(format!("{} {}: {e}", r.account, r.region))
        })
        .collect();
    if let Some(u) = evidence.unread.first() {
        unknown.push(format!(
            "{} object(s) could not be read, e.g. {} ({}, {} attempts since {}: {})",
            evidence.unread.len(),
            u.object,
            u.kind,
            u.attempts,
            u.first_failed.to_rfc3339(),
            u.reason
        ));
    }
    if !unknown.is_empty() {
        return Err(Unavailable::new(unknown.join("; ")));
    }
    if !evidence.digests_seen {
        let why = format!(
            "no digest file of {} in its bucket yet (log file validation {})",
            trail.name,
            if trail.log_file_validation_enabled {
                "on"
            } else {
                "off"
            }
        );
        let young = evidence.changed.is_some_and(|c| now - c < FIRST_DIGEST);
        return if trail.log_file_validation_enabled && young {
            Ok(Verdict::pending(format!(
                "{why}; the first is due within the hour after the trail started or changed"
            )))
        } else {
            Err(Unavailable::new(why))
        };
    }
    Ok(Verdict::pass(format!(
        "digests and log files verified; no failure in the last {}",
        humanize(window)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::verdict::StoredItem;
    use crate::posture::{RegionEvidence, UnreadObject};
    use chrono::TimeZone;

    #[test]
    fn failures_stand_unknowns_are_errors_and_young_trails_wait() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let trail = Trail {
            name: "lab".into(),
            log_file_validation_enabled: true,
            ..Default::default()
        };
        let seen = TrailEvidence {
            digests_seen: true,
            regions: vec![RegionEvidence {
                account: "1".into(),
                region: "us-east-1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let failure = StoredItem {
            trail: "lab".into(),
            account: "1".into(),
            region: "eu-west-1".into(),
            class: "modified_log".into(),
            object: "k".into(),
            time: None,
            until: None,
            detail: "hash value doesn't match".into(),
            found_at: now,
        };
        let unread = UnreadObject {
            object: "b/d".into(),
            kind: "digest".into(),
            account: "1".into(),
            region: "us-east-1".into(),
            reason: "GetObject: AccessDenied".into(),
            first_failed: now,
            attempts: 2,
            next_attempt: now,
        };
        let mut failed_region = seen.clone();
        failed_region.regions[0].digest_error = Some("ListPublicKeys: timed out".into());
        let cases = [
            ("verified", seen.clone(), "pass"),
            (
                "a failure, and a region not read",
                TrailEvidence {
                    verdicts: vec![failure],
                    ..failed_region.clone()
                },
                "fail",
            ),
            ("a region not read", failed_region, "error"),
            (
                "an object waiting for its retry",
                TrailEvidence {
                    unread: vec![unread],
                    ..seen.clone()
                },
                "error",
            ),
            (
                "no digest yet, trail created ten minutes ago",
                TrailEvidence {
                    changed: Some(now - Duration::minutes(10)),
                    ..Default::default()
                },
                "pending",
            ),
            (
                "no digest two hours after",
                TrailEvidence {
                    changed: Some(now - Duration::hours(2)),
                    ..Default::default()
                },
                "error",
            ),
        ];
        for (name, evidence, expected) in cases {
            let got = digest_integrity(&trail, &evidence, Duration::days(7), now);
            let outcome = crate::evaluate::finding::status_of(&got).as_str();
            assert_eq!(outcome, expected, "{name}: {got:?}");
        }
    }
}
