//! Delivery freshness: the newest log file of each region the trail logs is recent. A trail
//! can say `IsLogging: true` while nothing arrives (a bucket policy that denies CloudTrail,
//! a disabled KMS key): the bucket is the evidence.

use super::CheckResult;
use super::regions::RegionResults;
use crate::posture::{Membership, Trail, TrailEvidence, TrailStatus};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// The regions whose log folders a trail must fill: every monitored region for a
/// multi-region trail, else its home region; in the trail owner's account folder.
pub fn expected_regions(trail: &Trail, monitored: &[String]) -> Vec<String> {
    if trail.is_multi_region_trail {
        monitored.to_vec()
    } else {
        vec![trail.home_region.clone()]
    }
}

/// A trail that started logging less than this ago may have delivered nothing yet:
/// CloudTrail delivers within about 5 minutes, 15 at worst.
pub const FIRST_DELIVERY: Duration = Duration::minutes(15);

/// When the trail last started logging, if GetTrailStatus said so.
pub fn started_logging(status: Option<&TrailStatus>) -> Option<DateTime<Utc>> {
    status.and_then(|s| s.start_logging_time)
}

/// `members`: the organization's accounts with when they belonged (empty outside
/// many-account mode); an organization trail must keep each member's folder fresh while it
/// belongs, and not after it left.
pub fn delivery_freshness(
    trail: &Trail,
    status: Option<&TrailStatus>,
    evidence: &TrailEvidence,
    monitored: &[String],
    members: &BTreeMap<String, Membership>,
    max_age: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    let started = started_logging(status);
    let mut results = RegionResults::default();
    for folder in results.readable(trail, evidence, monitored, members) {
        let region = &folder.label;
        if folder.membership.left.is_some_and(|left| left <= now) {
            continue;
        }
        let newest = folder.evidence.and_then(|r| r.coverage.newest_delivery());
        // Logging (re)started, or the account joined: whichever came last.
        let since = started.max(folder.membership.joined);
        // Nothing delivered since then, and the first delivery is not due yet. A minute of
        // slack: keys carry the minute, S3 write times the second.
        let awaiting_first = since.is_some_and(|s| {
            now - s < max_age.max(FIRST_DELIVERY)
                && newest.is_none_or(|n| n + Duration::minutes(1) < s)
        });
        match newest {
            Some(t) if now - t <= max_age => {
                results
                    .passed
                    .push(format!("{region} {}", humanize(now - t)));
            }
            _ if awaiting_first => results.pending.push(format!(
                "{region}: logging started (or the account joined) {} ago; its first log file is not due yet",
                humanize(now - since.unwrap_or(now))
            )),
            None => results
                .failed
                .push(format!("{region}: no log file in the bucket")),
            Some(t) => results.failed.push(format!(
                "{region}: newest log file delivered {} ago ({})",
                humanize(now - t),
                t.to_rfc3339()
            )),
        }
    }
    results.conclude(
        &format!("no log file delivered within {}", humanize(max_age)),
        &format!("log files delivered within {}", humanize(max_age)),
    )
}

pub fn humanize(d: Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::RegionEvidence;
    use chrono::TimeZone;

    fn evidence(newest: Option<DateTime<Utc>>) -> TrailEvidence {
        let mut r = RegionEvidence {
            account: "1".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        r.coverage.newest = newest;
        TrailEvidence {
            regions: vec![r],
            ..Default::default()
        }
    }

    fn trail() -> Trail {
        Trail {
            account: "1".into(),
            home_region: "us-east-1".into(),
            is_multi_region_trail: true,
            ..Default::default()
        }
    }

    fn status(started: DateTime<Utc>) -> TrailStatus {
        TrailStatus {
            is_logging: true,
            start_logging_time: Some(started),
            ..Default::default()
        }
    }

    #[test]
    fn stale_missing_failed_and_young_regions() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let east = ["us-east-1".to_string()];
        let both = ["us-east-1".to_string(), "eu-west-1".to_string()];
        let old = status(now - Duration::days(30));
        let fresh = evidence(Some(now - Duration::minutes(5)));
        let stale = evidence(Some(now - Duration::hours(3)));
        let mut failed = fresh.clone();
        failed.regions[0].log_error = Some("ListObjectsV2: AccessDenied".into());
        /// name, evidence, monitored regions, status, expected outcome, words of its message
        type Case<'a> = (
            &'a str,
            &'a TrailEvidence,
            &'a [String],
            TrailStatus,
            &'a str,
            &'a str,
        );
        let cases: [Case; 7] = [
            ("fresh", &fresh, &east, old.clone(), "pass", "us-east-1 5m"),
            (
                "stale",
                &stale,
                &east,
                old.clone(),
                "fail",
                "us-east-1: newest log file delivered 3h ago",
            ),
            (
                "a region with no log file",
                &fresh,
                &both,
                old.clone(),
                "fail",
                "eu-west-1: no log file",
            ),
            (
                "a region that could not be listed",
                &failed,
                &east,
                old.clone(),
                "error",
                "AccessDenied",
            ),
            (
                "a trail that started logging a minute ago",
                &evidence(None),
                &east,
                status(now - Duration::minutes(1)),
                "pending",
                "not due yet",
            ),
            (
                "restarted a minute ago after a long stop",
                &stale,
                &east,
                status(now - Duration::minutes(1)),
                "pending",
                "not due yet",
            ),
            (
                "started an hour ago and still nothing",
                &evidence(None),
                &east,
                status(now - Duration::hours(1)),
                "fail",
                "no log file",
            ),
        ];
        for (name, evidence, regions, status, expected, message) in cases {
            let got = delivery_freshness(
                &trail(),
                Some(&status),
                evidence,
                regions,
                &BTreeMap::new(),
                Duration::minutes(30),
                now,
            );
            let outcome = crate::evaluate::finding::status_of(&got).as_str();
            let text = match got {
                Ok(v) => v.message,
                Err(e) => e.reason,
            };
            assert_eq!(outcome, expected, "{name}: {text}");
            assert!(text.contains(message), "{name}: {text}");
        }
    }

    #[test]
    fn an_organization_trail_keeps_each_member_folder_fresh_while_it_belongs() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let east = ["us-east-1".to_string()];
        let mut org = trail();
        org.is_organization_trail = true;
        let folder = |account: &str, newest: Option<DateTime<Utc>>| {
            let mut r = RegionEvidence {
                account: account.into(),
                region: "us-east-1".into(),
                ..Default::default()
            };
            r.coverage.newest = newest;
            r
        };
        let member = |joined: Option<i64>, left: Option<i64>| Membership {
            joined: joined.map(|m| now - Duration::minutes(m)),
            left: left.map(|m| now - Duration::minutes(m)),
        };
        let fresh = Some(now - Duration::minutes(5));
        let stale = Some(now - Duration::hours(3));
        // name, member's folder newest file, membership, outcome, words of the message
        let cases = [
            (
                "a member delivering",
                fresh,
                member(None, None),
                "pass",
                "2 us-east-1",
            ),
            (
                "a member gone quiet",
                stale,
                member(None, None),
                "fail",
                "2 us-east-1",
            ),
            (
                "a member never delivered",
                None,
                member(None, None),
                "fail",
                "2 us-east-1",
            ),
            (
                "a member that left",
                stale,
                member(None, Some(60)),
                "pass",
                "1 us-east-1",
            ),
            (
                "a member that just joined",
                None,
                member(Some(5), None),
                "pending",
                "joined",
            ),
            (
                "a member joined long ago",
                None,
                member(Some(600), None),
                "fail",
                "2 us-east-1",
            ),
        ];
        for (name, newest, membership, expected, words) in cases {
            let evidence = TrailEvidence {
                regions: vec![folder("1", fresh), folder("2", newest)],
                ..Default::default()
            };
            let members: BTreeMap<String, Membership> = [
                ("1".to_string(), Membership::default()),
                ("2".to_string(), membership),
            ]
            .into_iter()
            .collect();
            let got = delivery_freshness(
                &org,
                Some(&status(now - Duration::days(30))),
                &evidence,
                &east,
                &members,
                Duration::minutes(30),
                now,
            );
            let outcome = crate::evaluate::finding::status_of(&got).as_str();
            let text = match got {
                Ok(v) => v.message,
                Err(e) => e.reason,
            };
            assert_eq!(outcome, expected, "{name}: {text}");
            assert!(text.contains(words), "{name}: {text}");
            // Outside many-account mode the owner's folder alone is judged.
            let alone = delivery_freshness(
                &org,
                Some(&status(now - Duration::days(30))),
                &evidence,
                &east,
                &BTreeMap::new(),
                Duration::minutes(30),
                now,
            );
            assert!(alone.unwrap().passed, "{name}");
        }
    }
}
