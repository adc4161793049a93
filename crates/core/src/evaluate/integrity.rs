//! Digest integrity: the verdicts of digest validation found within the window. Any
//! failure (missing or forged digest, broken link, missing, modified or unlisted log file,
//! unexplained restart, unverifiable item) fails the policy; explained restarts do not.

use super::delivery::humanize;
use super::{CheckResult, Verdict};
use crate::posture::{Trail, TrailEvidence, Unavailable};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

pub fn digest_integrity(
    trail: &Trail,
    evidence: &TrailEvidence,
    window: Duration,
    now: DateTime<Utc>,
) -> CheckResult {
    if !evidence.digests_seen {
        return Err(Unavailable::new(format!(
            "no digest file of {} in its bucket yet (log file validation {})",
            trail.name,
            if trail.log_file_validation_enabled {
                "on"
            } else {
                "off"
            }
        )));
    }
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
    Ok(match first {
        None => Verdict::pass(format!(
            "digests and log files verified; no failure in the last {}",
            humanize(window)
        )),
        Some(v) => {
            let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            Verdict::fail(format!(
                "{} in the last {} (newest: {} {} in {} {}: {})",
                counts.join(", "),
                humanize(window),
                v.class,
                v.object,
                v.account,
                v.region,
                v.detail
            ))
        }
    })
}
