//! Retention: no lifecycle rule expires or deletes the trail's log objects before `min_days`,
//! so what event history forgets after 90 days is still in the bucket. In a versioned bucket a
//! deleted log survives as a noncurrent version; a rule that expires those before
//! `min_noncurrent_days` makes a deletion permanent too early.

use super::finding::{CheckResult, Verdict, need};
use crate::posture::{BucketPosture, Fetched, LifecycleRule, Trail, Unavailable, Versioning};

pub fn retention(
    trail: &Trail,
    bucket: Fetched<&BucketPosture>,
    min_days: u64,
    min_noncurrent_days: u64,
) -> CheckResult {
    let bucket = bucket?;
    let rules = need(&bucket.lifecycle_rules)?;
    let logs = log_prefix(trail);
    let mut problems = Vec::new();
    let mut unknown: Option<Unavailable> = None;
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
        if let Some(days) = rule.noncurrent_expiration_days
            && (days as i64) < min_noncurrent_days as i64
        {
            // The rule only deletes something in a bucket that has had versioning on.
            match &bucket.versioning {
                Ok(Versioning::Off) => {}
                Ok(_) => problems.push(format!(
                    "lifecycle rule {name:?} deletes noncurrent log versions after {days} days, under the required {min_noncurrent_days}"
                )),
                Err(e) => {
                    unknown.get_or_insert_with(|| {
                        Unavailable::new(format!(
                            "lifecycle rule {name:?} expires noncurrent versions after {days} days, and whether the bucket is versioned is unknown: {e}"
                        ))
                    });
                }
            }
        }
    }
    if !problems.is_empty() {
        return Ok(Verdict::fail(format!(
            "bucket {}: {}",
            bucket.name,
            problems.join("; ")
        )));
    }
    if let Some(e) = unknown {
        return Err(e);
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
        retention(&trail, Ok(&bucket), 365, 365).unwrap()
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
    fn noncurrent_expiration_counts_only_in_a_versioned_bucket() {
        let trail = logging_trail().trail;
        let mut bucket = lab_bucket();
        let mut r = rule(None, Some(400));
        r.noncurrent_expiration_days = Some(7);
        bucket.lifecycle_rules = Ok(vec![r]);
        bucket.versioning = Ok(Versioning::Enabled);
        let v = retention(&trail, Ok(&bucket), 365, 365).unwrap();
        assert!(!v.passed);
        assert!(
            v.message.contains("noncurrent log versions after 7 days"),
            "{}",
            v.message
        );
        // Lowered on purpose by the user.
        assert!(retention(&trail, Ok(&bucket), 365, 7).unwrap().passed);
        // Never versioned: the rule has nothing to delete.
        bucket.versioning = Ok(Versioning::Off);
        assert!(retention(&trail, Ok(&bucket), 365, 365).unwrap().passed);
        // Unknown versioning: cannot say.
        bucket.versioning = Err(crate::evaluate::testing::unavailable(
            "GetBucketVersioning: bad",
        ));
        assert!(retention(&trail, Ok(&bucket), 365, 365).is_err());
    }

    #[test]
    fn unreadable_lifecycle_is_an_error() {
        let trail = logging_trail().trail;
        let mut bucket = lab_bucket();
        bucket.lifecycle_rules = Err(crate::evaluate::testing::unavailable("AccessDenied"));
        assert!(retention(&trail, Ok(&bucket), 365, 365).is_err());
    }
}
