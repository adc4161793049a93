//! Delivery freshness: the newest log file of each region the trail logs is recent. A trail
//! can say `IsLogging: true` while nothing arrives (a bucket policy that denies CloudTrail,
//! a disabled KMS key): the bucket is the evidence.

use super::{CheckResult, Verdict};
use crate::posture::{Trail, TrailEvidence};
use chrono::{DateTime, Duration, Utc};

/// The regions whose log folders a trail must fill: every monitored region for a
/// multi-region trail, else its home region; in the trail owner's account folder.
pub fn expected_regions(trail: &Trail, monitored: &[String]) -> Vec<String> {
    if trail.is_multi_region_trail {
        monitored.to_vec()
    } else {
        vec![trail.home_region.clone()]
    }
}

pub fn delivery_freshness(
    trail: &Trail,
    evidence: &TrailEvidence,
    monitored: &[String],
    max_age: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    let mut stale = Vec::new();
    let mut newest_all = Vec::new();
    for region in expected_regions(trail, monitored) {
        match evidence
            .region(&trail.account, &region)
            .and_then(|r| r.coverage.newest_delivery())
        {
            None => stale.push(format!("{region}: no log file in the bucket")),
            Some(t) if now - t > max_age => stale.push(format!(
                "{region}: newest log file delivered {} ago ({})",
                humanize(now - t),
                t.to_rfc3339()
            )),
            Some(t) => newest_all.push(format!("{region} {}", humanize(now - t))),
        }
    }
    Ok(if stale.is_empty() {
        Verdict::pass(format!(
            "log files delivered within {}: {}",
            humanize(max_age),
            newest_all.join(", ")
        ))
    } else {
        Verdict::fail(format!(
            "no log file delivered within {}: {}",
            humanize(max_age),
            stale.join("; ")
        ))
    })
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

    #[test]
    fn stale_and_missing_regions_fail() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let trail = Trail {
            account: "1".into(),
            home_region: "us-east-1".into(),
            is_multi_region_trail: true,
            ..Default::default()
        };
        let regions = ["us-east-1".to_string()];
        let fresh = evidence(Some(now - Duration::minutes(5)));
        let v = delivery_freshness(&trail, &fresh, &regions, Duration::minutes(30), now).unwrap();
        assert!(v.passed, "{}", v.message);
        let old = evidence(Some(now - Duration::hours(3)));
        let v = delivery_freshness(&trail, &old, &regions, Duration::minutes(30), now).unwrap();
        assert!(!v.passed);
        assert!(
            v.message
                .contains("us-east-1: newest log file delivered 3h ago"),
            "{}",
            v.message
        );
        let both = ["us-east-1".to_string(), "eu-west-1".to_string()];
        let v = delivery_freshness(&trail, &fresh, &both, Duration::minutes(30), now).unwrap();
        assert!(
            v.message.contains("eu-west-1: no log file"),
            "{}",
            v.message
        );
    }
}
