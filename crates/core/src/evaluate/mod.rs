//! Evaluation: pure functions from a [`Snapshot`] to findings. No I/O, no clock reads: `now`
//! is passed in. One file per check family; this file only dispatches.

pub mod accounts;
pub mod condition;
pub mod config_recording;
pub mod config_rules;
pub mod coverage;
pub mod custom;
pub mod delivery;
pub mod detection;
#[cfg(test)]
mod detection_cases;
pub mod document;
pub mod finding;
pub mod hunt;
pub mod integrity;
pub mod log_records;
pub mod logging;
pub mod management_events;
pub mod optional;
pub mod public_bucket;
pub mod record_facts;
pub mod regions;
pub mod retention;
pub mod sse_kms;
#[cfg(test)]
pub mod testing;
pub mod validation;

use crate::config::{Check, Policy, PolicySet};
use crate::posture::{Snapshot, TrailState, Unavailable};
use chrono::{DateTime, Utc};
use document::TrailDocument;
pub use finding::{CheckResult, Finding, Status, Verdict};

/// Every enabled policy against every trail it applies to (or every region, for regional
/// checks). Findings come sorted by policy, then resource.
pub fn evaluate(policies: &PolicySet, snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let account = snapshot.account.clone().unwrap_or_default();
    for policy in &policies.policies {
        if let Check::ConfigRecording = policy.check {
            for region in &snapshot.regions {
                let recorders = snapshot
                    .posture
                    .as_ref()
                    .and_then(|p| p.recorders.get(region));
                let result = config_recording::config_recording(region, recorders);
                findings.push(finding(policy, &account, region, region, region, result));
            }
            continue;
        }
        let trails = match &snapshot.trails {
            Ok(trails) => trails,
            Err(e) => {
                let why = format!("trails could not be listed: {e}");
                findings.push(account_finding(policy, &account, Err(why)));
                continue;
            }
        };
        let selected: Vec<&TrailState> = trails
            .iter()
            .filter(|s| policy.applies_to(&s.trail.name, &s.trail.arn))
            .collect();
        if selected.is_empty() {
            // No trail is the worst case of every trail policy. The listing is whole (ListTrails
            // names every region's trails) or failed, which is an error above.
            findings.push(account_finding(
                policy,
                &account,
                Ok(no_trail_message(policy)),
            ));
            continue;
        }
        if let Check::ManagementEvents = policy.check {
            let result = management_events::any_trail_covers(&selected).map_err(|e| e.reason);
            findings.push(account_finding(policy, &account, result));
            continue;
        }
        for state in selected {
            let result = check_trail(policy, state, snapshot, now);
            let t = &state.trail;
            findings.push(finding(
                policy,
                &t.account,
                &t.home_region,
                &t.arn,
                &t.name,
                result,
            ));
        }
    }
    findings.sort_by(|a, b| (&a.policy, &a.resource).cmp(&(&b.policy, &b.resource)));
    findings
}

/// A bucket policy before the bucket poller's first pass: the daemon has not looked yet.
const NOT_READ_YET: &str = "waiting for the first read of the trail's bucket";

fn duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn check_trail(
    policy: &Policy,
    state: &TrailState,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> CheckResult {
    let trail = &state.trail;
    match &policy.check {
        Check::TrailLogging => logging::trail_logging(state),
        Check::SseKms {
            required_key,
            require_rotation,
        } => sse_kms::sse_kms(
            trail,
            snapshot.key_of(trail),
            required_key.as_deref(),
            *require_rotation,
        ),
        Check::LogFileValidation => validation::log_file_validation(trail),
        Check::ManagementEvents | Check::ConfigRecording => {
            unreachable!("account and regional checks are dispatched in evaluate()")
        }
        Check::Retention {
            min_days,
            min_noncurrent_days,
        } => retention::retention(
            trail,
            snapshot.bucket_of(trail),
            *min_days,
            *min_noncurrent_days,
        ),
        Check::BucketNotPublic => public_bucket::bucket_not_public(snapshot.bucket_of(trail)),
        Check::SnsNotification => optional::sns_notification(state),
        Check::CloudWatchLogs => optional::cloudwatch_logs(state),
        Check::BucketAccessLogging => optional::bucket_access_logging(snapshot.bucket_of(trail)),
        Check::ObjectLock { min_retention_days } => {
            optional::object_lock(snapshot.bucket_of(trail), *min_retention_days)
        }
        Check::DeliveryFreshness { max_age } => {
            let Some(evidence) = snapshot.evidence_of(trail)? else {
                return Ok(Verdict::pending(NOT_READ_YET));
            };
            unless_start_unknown(
                delivery::delivery_freshness(
                    trail,
                    state.status.as_ref().ok(),
                    evidence,
                    &snapshot.regions,
                    &snapshot.members,
                    duration(*max_age),
                    now,
                ),
                &state.status,
            )
        }
        Check::LogCoverage {
            min_days,
            tolerance,
        } => {
            let Some(evidence) = snapshot.evidence_of(trail)? else {
                return Ok(Verdict::pending(NOT_READ_YET));
            };
            unless_start_unknown(
                coverage::log_coverage(
                    trail,
                    state.status.as_ref().ok(),
                    evidence,
                    &snapshot.regions,
                    &snapshot.members,
                    *min_days,
                    duration(*tolerance),
                    now,
                ),
                &state.status,
            )
        }
        Check::DigestIntegrity { window } => {
            let Some(evidence) = snapshot.evidence_of(trail)? else {
                return Ok(Verdict::pending(NOT_READ_YET));
            };
            integrity::digest_integrity(trail, evidence, duration(*window), now)
        }
        Check::Custom {
            condition,
            pending_while,
        } => custom::custom(
            condition,
            pending_while.as_ref(),
            &TrailDocument::build(state, snapshot),
            now,
        ),
    }
}

/// Delivery and coverage excuse a trail that (re)started logging recently, and only
/// GetTrailStatus says when it did. Without it, a bucket with nothing new may be a trail
/// whose first file is not due yet: their failure is then `error`, with both reasons,
/// never a false `fail`.
fn unless_start_unknown(
    result: CheckResult,
    status: &crate::posture::Fetched<crate::posture::TrailStatus>,
) -> CheckResult {
    match (result, status) {
        (Ok(v), Err(why)) if !v.passed && !v.pending => Err(Unavailable {
            reason: format!(
                "trail status unavailable ({}), so whether logging started too recently to judge is unknown; the bucket says: {}",
                why.reason, v.message
            ),
            from_api: false,
        }),
        (result, _) => result,
    }
}

fn no_trail_message(policy: &Policy) -> Verdict {
    if policy.trails.is_empty() {
        Verdict::fail("no CloudTrail trail exists in the monitored regions")
    } else {
        Verdict::fail(format!(
            "no trail named {} was found",
            policy.trails.join(" or ")
        ))
    }
}

fn account_finding(policy: &Policy, account: &str, result: Result<Verdict, String>) -> Finding {
    let result = result.map_err(crate::posture::Unavailable::new);
    let mut f = finding(policy, account, "", "account", "account", result);
    f.resource = if account.is_empty() {
        "account".to_string()
    } else {
        format!("account/{account}")
    };
    f
}

fn finding(
    policy: &Policy,
    account: &str,
    region: &str,
    resource: &str,
    resource_name: &str,
    result: CheckResult,
) -> Finding {
    let status = finding::status_of(&result);
    let message = match result {
        Ok(v) => v.message,
        Err(e) => e.reason,
    };
    Finding {
        policy: policy.id.clone(),
        severity: policy.severity,
        status,
        account: account.to_string(),
        region: region.to_string(),
        resource: resource.to_string(),
        resource_name: resource_name.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Severity, yaml::parse_str};
    use std::path::Path;
    use testing::{lab_now, lab_snapshot, unavailable};

    fn policies(yaml: &str) -> PolicySet {
        parse_str(Path::new("p.yaml"), yaml).unwrap()
    }

    const ALL: &str = include_str!("../../../../config/policies.yaml");

    #[test]
    fn the_lab_passes_the_shipped_policies() {
        let findings = evaluate(&policies(ALL), &lab_snapshot(), lab_now());
        assert!(!findings.is_empty());
        for f in &findings {
            assert_eq!(f.status, Status::Pass, "{f:?}");
        }
    }

    #[test]
    fn no_trail_fails_every_trail_policy() {
        let mut snap = lab_snapshot();
        snap.trails = Ok(vec![]);
        let findings = evaluate(&policies(ALL), &snap, lab_now());
        let logging = findings
            .iter()
            .find(|f| f.policy == "trail-logging")
            .unwrap();
        assert_eq!(logging.status, Status::Fail);
        assert_eq!(logging.resource, "account/111122223333");
        assert_eq!(logging.severity, Severity::Critical);
    }

    #[test]
    fn unlisted_trails_are_errors_not_passes() {
        let mut snap = lab_snapshot();
        snap.trails = Err(unavailable(
            "us-east-1: DescribeTrails: cannot reach the endpoint",
        ));
        snap.posture = None;
        for f in evaluate(&policies(ALL), &snap, lab_now()) {
            assert_eq!(f.status, Status::Error, "{f:?}");
            assert!(!f.message.is_empty());
        }
    }

    /// Found by the fault matrix under load: GetTrailStatus timed out just as a new trail's
    /// bucket was read before its first delivery, and delivery and coverage failed.
    #[test]
    fn an_empty_bucket_with_the_trails_status_unknown_is_an_error_not_a_failure() {
        let status_of = |snap: &Snapshot, id: &str| {
            evaluate(&policies(ALL), snap, lab_now())
                .into_iter()
                .find(|f| f.policy == id)
                .unwrap()
        };
        let arn = testing::logging_trail().trail.arn;
        let mut empty = lab_snapshot();
        let mut bucket = testing::healthy_bucket();
        bucket.regions[0].coverage = Default::default();
        empty.evidence = Some([(arn.clone(), Ok(bucket))].into_iter().collect());
        // (started logging, status readable) → delivery, coverage
        let cases = [
            (Some(1), true, Status::Pending, Status::Pending),
            (Some(60 * 24 * 3), true, Status::Fail, Status::Fail),
            (None, false, Status::Error, Status::Error),
        ];
        for (started_minutes_ago, readable, delivery, coverage) in cases {
            let mut snap = empty.clone();
            if let Ok(trails) = &mut snap.trails {
                let state = &mut trails[0];
                if let (Some(m), Ok(s)) = (started_minutes_ago, state.status.as_mut()) {
                    s.start_logging_time = Some(lab_now() - chrono::Duration::minutes(m));
                }
                if !readable {
                    state.status = Err(unavailable("GetTrailStatus: timed out"));
                }
            }
            let d = status_of(&snap, "log-delivery-fresh");
            let c = status_of(&snap, "log-coverage");
            assert_eq!(d.status, delivery, "{started_minutes_ago:?}: {d:?}");
            assert_eq!(c.status, coverage, "{started_minutes_ago:?}: {c:?}");
            if !readable {
                assert!(d.message.contains("GetTrailStatus: timed out"), "{d:?}");
                assert!(d.message.contains("no log file in the bucket"), "{d:?}");
            }
        }
    }

    #[test]
    fn trail_filter_limits_a_policy() {
        let set = policies(
            "policies:\n- id: only-other\n  check: trail_logging\n  severity: high\n  trails: [other]\n",
        );
        let findings = evaluate(&set, &lab_snapshot(), lab_now());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].status, Status::Fail);
        assert!(findings[0].message.contains("no trail named other"));
    }

    #[test]
    fn metric_labels_never_carry_arns() {
        for f in evaluate(&policies(ALL), &lab_snapshot(), lab_now()) {
            assert!(!f.resource_name.starts_with("arn:"), "{f:?}");
        }
    }
}
