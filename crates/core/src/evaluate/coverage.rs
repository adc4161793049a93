//! The 90-day gap, covered for real: per region, the bucket holds log files from now back to
//! `min_days` (or to the trail's first chain when younger) with no hole longer than the
//! tolerance. Event history forgets after 90 days; this says the bucket still has it.

use super::CheckResult;
use super::delivery::{FIRST_DELIVERY, humanize, started_logging};
use super::integrity::FIRST_DIGEST;
use super::regions::RegionResults;
use crate::integrity::coverage::gaps;
use crate::posture::{Membership, Trail, TrailEvidence, TrailStatus};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// When the trail began: its CreateTrail when known, else the start of its oldest chain when
/// that is a starting digest. Nothing can be missing from before it.
fn began(evidence: &TrailEvidence, origin: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    evidence.created.or(origin)
}

/// `members` as in `delivery_freshness`: an organization trail must cover each member's
/// folder from when it joined (or the window's start) until it left (or now).
#[allow(clippy::too_many_arguments)] // the check's inputs, each plain
pub fn log_coverage(
    trail: &Trail,
    status: Option<&TrailStatus>,
    evidence: &TrailEvidence,
    monitored: &[String],
    members: &BTreeMap<String, Membership>,
    min_days: u64,
    tolerance: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    let started = started_logging(status);
    let mut results = RegionResults::default();
    for folder in results.readable(trail, evidence, monitored, members) {
        let (region, r, member) = (&folder.label, folder.evidence, folder.membership);
        // A departed member's folder is required only up to when it left: the window ends
        // there, and is shorter by as much.
        let end = member.left.map_or(now, |left| left.min(now));
        let days = min_days as i64 - (now - end).num_days();
        if days <= 0 {
            continue;
        }
        let coverage = r.map(|r| r.coverage.clone()).unwrap_or_default();
        let since = started.max(member.joined);
        let young = since.is_some_and(|s| now - s < FIRST_DELIVERY);
        if coverage.oldest.is_none() && young {
            results.pending.push(format!(
                "{region}: logging started {} ago; no log file is due yet",
                humanize(now - started.unwrap_or(now))
            ));
            continue;
        }
        // Nothing can be missing from before the trail began, or before the account joined.
        let began = began(evidence, r.and_then(|r| r.origin)).max(member.joined);
        let g = gaps(&coverage, end, days, tolerance, began);
        // Every log file is from after logging (re)started, and nothing says yet whether the
        // trail is new (its CreateTrail shows in event history minutes late; its first digest
        // comes within the hour): wait for that, not a failure of the whole window.
        let unproven_new = began.is_none()
            && started.is_some_and(|s| {
                now - s < FIRST_DIGEST
                    && coverage
                        .oldest
                        .is_some_and(|o| o + Duration::minutes(1) >= s)
            });
        if !g.uncovered.is_empty() && unproven_new {
            results.pending.push(format!(
                "{region}: logging started {} ago and no log file is older; waiting for event history or the first digest to show whether the trail is new",
                humanize(now - started.unwrap_or(now))
            ));
            continue;
        }
        if g.uncovered.is_empty() {
            results.passed.push(format!(
                "{region} since {}",
                coverage
                    .oldest
                    .map_or("-".into(), |t| t.date_naive().to_string())
            ));
            continue;
        }
        let holes: Vec<String> = g
            .uncovered
            .iter()
            .map(|(a, b)| {
                format!(
                    "{} to {} ({})",
                    a.to_rfc3339(),
                    b.to_rfc3339(),
                    humanize(*b - *a)
                )
            })
            .collect();
        results.failed.push(format!(
            "{region}: oldest log {}, must reach back to {}; uncovered: {}",
            coverage.oldest.map_or("none".into(), |t| t.to_rfc3339()),
            g.required_from.to_rfc3339(),
            holes.join(", ")
        ));
    }
    results.conclude(
        "log files do not cover the window",
        &format!(
            "log files cover the last {min_days} days with no hole over {}",
            humanize(tolerance)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::RegionEvidence;
    use chrono::TimeZone;

    #[test]
    fn a_young_trail_a_created_trail_a_failed_region_and_a_hole() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let trail = Trail {
            account: "1".into(),
            home_region: "us-east-1".into(),
            ..Default::default()
        };
        let status = |ago: Duration| TrailStatus {
            is_logging: true,
            start_logging_time: Some(now - ago),
            ..Default::default()
        };
        let region = |from: DateTime<Utc>| {
            let mut r = RegionEvidence {
                account: "1".into(),
                region: "us-east-1".into(),
                ..Default::default()
            };
            let mut t = from;
            while t <= now {
                r.coverage.add(t, Duration::hours(1));
                t += Duration::minutes(5);
            }
            r
        };
        let with = |r: Option<RegionEvidence>, created: Option<DateTime<Utc>>| TrailEvidence {
            regions: r.into_iter().collect(),
            created,
            ..Default::default()
        };
        let mut failed = region(now - Duration::days(100));
        failed.log_error = Some("ListObjectsV2: SlowDown".into());
        let cases = [
            (
                "a hundred days of logs",
                with(Some(region(now - Duration::days(100))), None),
                status(Duration::days(100)),
                "pass",
            ),
            (
                "created a minute ago, nothing yet",
                with(None, Some(now - Duration::minutes(1))),
                status(Duration::minutes(1)),
                "pending",
            ),
            (
                "created a day ago: counted from then",
                with(
                    Some(region(now - Duration::days(1) + Duration::minutes(5))),
                    Some(now - Duration::days(1)),
                ),
                status(Duration::days(1)),
                "pass",
            ),
            (
                "started ten minutes ago, logs since, creation not known yet",
                with(Some(region(now - Duration::minutes(9))), None),
                status(Duration::minutes(10)),
                "pending",
            ),
            (
                "restarted ten minutes ago over older logs",
                with(Some(region(now - Duration::days(1))), None),
                status(Duration::minutes(10)),
                "fail",
            ),
            (
                "started two hours ago and still no proof it is new",
                with(Some(region(now - Duration::minutes(119))), None),
                status(Duration::hours(2)),
                "fail",
            ),
            (
                "a day of logs and no proof the trail is young",
                with(Some(region(now - Duration::days(1))), None),
                status(Duration::days(1)),
                "fail",
            ),
            (
                "a region that could not be listed",
                with(Some(failed), None),
                status(Duration::days(100)),
                "error",
            ),
        ];
        for (name, evidence, status, expected) in cases {
            let got = log_coverage(
                &trail,
                Some(&status),
                &evidence,
                &["us-east-1".to_string()],
                &BTreeMap::new(),
                90,
                Duration::hours(6),
                now,
            );
            let outcome = crate::evaluate::finding::status_of(&got).as_str();
            assert_eq!(outcome, expected, "{name}: {got:?}");
        }
    }

    #[test]
    fn a_member_folder_is_covered_from_joining_until_leaving() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let day = |d: i64| now - Duration::days(d);
        let org = Trail {
            account: "1".into(),
            home_region: "us-east-1".into(),
            is_organization_trail: true,
            ..Default::default()
        };
        // A folder with a log file every 5 minutes from `from` to `to` (days ago).
        let folder = |account: &str, from: i64, to: i64| {
            let mut r = RegionEvidence {
                account: account.into(),
                region: "us-east-1".into(),
                ..Default::default()
            };
            let mut t = day(from);
            while t <= day(to) {
                r.coverage.add(t, Duration::hours(1));
                t += Duration::minutes(5);
            }
            r
        };
        let member = |joined: Option<i64>, left: Option<i64>| Membership {
            joined: joined.map(day),
            left: left.map(day),
        };
        // name, member folder (from, to days ago), membership, outcome
        let cases = [
            ("a member for years", (100, 0), member(None, None), "pass"),
            (
                "a member since 10 days",
                (10, 0),
                member(Some(10), None),
                "pass",
            ),
            (
                "10 days of logs, joining unknown",
                (10, 0),
                member(None, None),
                "fail",
            ),
            (
                "left 20 days ago, covered until then",
                (100, 20),
                member(None, Some(20)),
                "pass",
            ),
            (
                "left 20 days ago, a hole before",
                (50, 20),
                member(None, Some(20)),
                "fail",
            ),
            (
                "left 95 days ago",
                (300, 95),
                member(None, Some(95)),
                "pass",
            ),
        ];
        for (name, (from, to), membership, expected) in cases {
            let evidence = TrailEvidence {
                regions: vec![folder("1", 100, 0), folder("2", from, to)],
                ..Default::default()
            };
            let members: BTreeMap<String, Membership> =
                [("2".to_string(), membership)].into_iter().collect();
            let got = log_coverage(
                &org,
                None,
                &evidence,
                &["us-east-1".to_string()],
                &members,
                90,
                Duration::hours(6),
                now,
            );
            let outcome = crate::evaluate::finding::status_of(&got).as_str();
            assert_eq!(outcome, expected, "{name}: {got:?}");
        }
    }
}
