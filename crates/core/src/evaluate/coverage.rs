//! The 90-day gap, covered for real: per region, the bucket holds log files from now back to
//! `min_days` (or to the trail's first chain when younger) with no hole longer than the
//! tolerance. Event history forgets after 90 days; this says the bucket still has it.

use super::delivery::{expected_regions, humanize};
use super::{CheckResult, Verdict};
use crate::integrity::coverage::gaps;
use crate::posture::{Trail, TrailEvidence};
use chrono::{DateTime, Duration, Utc};

pub fn log_coverage(
    trail: &Trail,
    evidence: &TrailEvidence,
    monitored: &[String],
    min_days: u64,
    tolerance: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    let mut problems = Vec::new();
    let mut fine = Vec::new();
    for region in expected_regions(trail, monitored) {
        let r = evidence.region(&trail.account, &region);
        let coverage = r.map(|r| r.coverage.clone()).unwrap_or_default();
        let g = gaps(
            &coverage,
            now,
            min_days as i64,
            tolerance,
            r.and_then(|r| r.origin),
        );
        if g.uncovered.is_empty() {
            fine.push(format!(
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
        problems.push(format!(
            "{region}: oldest log {}, must reach back to {}; uncovered: {}",
            coverage.oldest.map_or("none".into(), |t| t.to_rfc3339()),
            g.required_from.to_rfc3339(),
            holes.join(", ")
        ));
    }
    Ok(if problems.is_empty() {
        Verdict::pass(format!(
            "log files cover the last {min_days} days with no hole over {}: {}",
            humanize(tolerance),
            fine.join(", ")
        ))
    } else {
        Verdict::fail(problems.join("; "))
    })
}
