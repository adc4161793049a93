//! Retention: no lifecycle rule expires or deletes the trail's log objects before `min_days`,
//! so what event history forgets after 90 days is still in the bucket.

use super::finding::{CheckResult, Verdict, need};
use crate::posture::{BucketPosture, Fetched, LifecycleRule, Trail};

pub fn retention(
    trail: &Trail,
    bucket: Fetched<&BucketPosture>,
    min_days: u64,
    min_noncurrent_days: Option<u64>,
) -> CheckResult {
    let bucket = bucket?;
    let rules = need(&bucket.lifecycle_rules)?;
    let logs = log_prefix(trail);
    let mut problems = Vec::new();
    let mut shortest: Option<(i32, String)> = None;
    for rule in rules.iter().filter(|r| applies_to_logs(r, &logs)) {
        let name = rule.id.as_deref().unwrap_or("unnamed").to_string();
        if let Some(date) = rule.expiration_date {
            problems.push(format!(
                "lifecycle rule {name:?} expires log objects on {}",
                date.date_naive()
            ));
        }
        if let Some(days) = rule.expiration_days {
            if (days as i64) < min_days as i64 {
                problems.push(format!(
                    "lifecycle rule {name:?} expires log objects after {days} days, under the required {min_days}"
                ));
            }
            if shortest.as_ref().is_none_or(|(d, _)| days < *d) {
                shortest = Some((days, name.clone()));
            }
        }
        if let (Some(required), Some(days)) = (min_noncurrent_days, rule.noncurrent_expiration_days)
            && (days as i64) < required as i64
        {
            problems.push(format!(
                "lifecycle rule {name:?} deletes noncurrent log versions after {days} days, under the required {required}"
            ));
        }
    }
    if !problems.is_empty() {
        return Ok(Verdict::fail(format!(
            "bucket {}: {}",
            bucket.name,
            problems.join("; ")
        )));
    }
    Ok(Verdict::pass(match shortest {
        Some((days, name)) => format!(
            "bucket {} keeps log objects {days} days (rule {name:?}), at least {min_days}",
            bucket.name
        ),
        None => format!(
            "bucket {}: no lifecycle rule expires objects under {logs}",
            bucket.name
        ),
    }))
}

/// Where the trail writes: `<prefix>/AWSLogs/` (logs and digests, all accounts and regions).
pub fn log_prefix(trail: &Trail) -> String {
    match trail.s3_key_prefix.as_deref().map(|p| p.trim_matches('/')) {
        Some(p) if !p.is_empty() => format!("{p}/AWSLogs/"),
        _ => "AWSLogs/".to_string(),
    }
}

/// A rule touches the logs if it is enabled, matches untagged objects, and its prefix
/// contains the log prefix or lies inside it (then it deletes part of the logs).
fn applies_to_logs(rule: &LifecycleRule, logs: &str) -> bool {
    if !rule.enabled || rule.requires_tags {
        return false;
    }
    match rule.prefix.as_deref() {
        None | Some("") => true,
        Some(p) => logs.starts_with(p) || p.starts_with(logs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::{lab_bucket, logging_trail};

    fn rule(prefix: Option<&str>, days: Option<i32>) -> LifecycleRule {
        LifecycleRule {
            id: Some("r".into()),
            enabled: true,
            prefix: prefix.map(str::to_string),
            expiration_days: days,
            ..Default::default()
        }
    }

    fn check(rules: Vec<LifecycleRule>, prefix: Option<&str>) -> Verdict {
        let mut trail = logging_trail().trail;
        trail.s3_key_prefix = prefix.map(str::to_string);
        let mut bucket = lab_bucket();
        bucket.lifecycle_rules = Ok(rules);
        retention(&trail, Ok(&bucket), 365, None).unwrap()
    }

    #[test]
    fn no_rules_keep_logs_forever() {
        assert!(check(vec![], None).passed);
    }

    #[test]
    fn long_expiration_passes_short_fails() {
        assert!(check(vec![rule(None, Some(400))], None).passed);
        let v = check(vec![rule(None, Some(30))], None);
        assert!(!v.passed);
        assert!(v.message.contains("after 30 days"), "{}", v.message);
    }

    #[test]
    fn prefix_decides_whether_a_rule_applies() {
        // A rule on another folder does not touch the logs.
        assert!(check(vec![rule(Some("tmp/"), Some(1))], None).passed);
        // A rule on part of the logs does.
        assert!(!check(vec![rule(Some("AWSLogs/111122223333/"), Some(1))], None).passed);
        // With a custom prefix, a rule on the bare AWSLogs/ folder misses the logs.
        assert!(check(vec![rule(Some("AWSLogs/"), Some(1))], Some("audit")).passed);
        assert!(!check(vec![rule(Some("audit/"), Some(1))], Some("audit/")).passed);
    }

    #[test]
    fn disabled_tagged_and_dated_rules() {
        let mut r = rule(None, Some(1));
        r.enabled = false;
        assert!(check(vec![r.clone()], None).passed);
        r.enabled = true;
        r.requires_tags = true;
        assert!(check(vec![r], None).passed);
        let mut dated = rule(None, None);
        dated.expiration_date = Some(chrono::Utc::now());
        assert!(!check(vec![dated], None).passed);
    }

    #[test]
    fn noncurrent_expiration_is_checked_when_asked() {
        let trail = logging_trail().trail;
        let mut bucket = lab_bucket();
        let mut r = rule(None, Some(400));
        r.noncurrent_expiration_days = Some(7);
        bucket.lifecycle_rules = Ok(vec![r]);
        assert!(retention(&trail, Ok(&bucket), 365, None).unwrap().passed);
        let v = retention(&trail, Ok(&bucket), 365, Some(90)).unwrap();
        assert!(v.message.contains("noncurrent"), "{}", v.message);
    }

    #[test]
    fn unreadable_lifecycle_is_an_error() {
        let trail = logging_trail().trail;
        let mut bucket = lab_bucket();
        bucket.lifecycle_rules = Err(crate::evaluate::testing::unavailable("AccessDenied"));
        assert!(retention(&trail, Ok(&bucket), 365, None).is_err());
    }
}
