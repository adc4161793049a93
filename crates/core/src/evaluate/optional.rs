//! Optional checks, off unless listed in the policy file: SNS notification, CloudWatch Logs
//! integration, bucket access logging, S3 Object Lock.

use super::finding::{CheckResult, Verdict, need};
use crate::posture::{BucketPosture, Fetched, TrailState};

pub fn sns_notification(state: &TrailState) -> CheckResult {
    let Some(topic) = &state.trail.sns_topic_arn else {
        return Ok(Verdict::fail(
            "trail sends no SNS notification on log delivery",
        ));
    };
    if let Some(error) = &need(&state.status)?.latest_notification_error {
        return Ok(Verdict::fail(format!(
            "notifications to {topic} fail: {error}"
        )));
    }
    Ok(Verdict::pass(format!("trail notifies {topic}")))
}

pub fn cloudwatch_logs(state: &TrailState) -> CheckResult {
    let trail = &state.trail;
    let (Some(group), Some(_role)) = (
        &trail.cloud_watch_logs_log_group_arn,
        &trail.cloud_watch_logs_role_arn,
    ) else {
        return Ok(Verdict::fail(
            "trail does not send events to CloudWatch Logs (log group or role missing)",
        ));
    };
    if let Some(error) = &need(&state.status)?.latest_cloud_watch_logs_delivery_error {
        return Ok(Verdict::fail(format!(
            "delivery to CloudWatch Logs group {group} fails: {error}"
        )));
    }
    Ok(Verdict::pass(format!("trail sends events to {group}")))
}

pub fn bucket_access_logging(bucket: Fetched<&BucketPosture>) -> CheckResult {
    let bucket = bucket?;
    Ok(match need(&bucket.access_logging)? {
        Some(l) => Verdict::pass(format!(
            "bucket {} logs access to {}",
            bucket.name, l.target_bucket
        )),
        None => Verdict::fail(format!(
            "bucket {} has no server access logging",
            bucket.name
        )),
    })
}

pub fn object_lock(
    bucket: Fetched<&BucketPosture>,
    min_retention_days: Option<u64>,
) -> CheckResult {
    let bucket = bucket?;
    let lock = match need(&bucket.object_lock)? {
        Some(lock) if lock.enabled => lock,
        _ => {
            return Ok(Verdict::fail(format!(
                "bucket {} has no S3 Object Lock",
                bucket.name
            )));
        }
    };
    let days = lock
        .days
        .map(i64::from)
        .or(lock.years.map(|y| i64::from(y) * 365));
    if let Some(required) = min_retention_days {
        match days {
            Some(d) if d >= required as i64 => {}
            Some(d) => {
                return Ok(Verdict::fail(format!(
                    "bucket {} locks objects for {d} days by default, under the required {required}",
                    bucket.name
                )));
            }
            None => {
                return Ok(Verdict::fail(format!(
                    "bucket {} has Object Lock but no default retention",
                    bucket.name
                )));
            }
        }
    }
    let mode = lock.mode.as_deref().unwrap_or("no default mode");
    Ok(Verdict::pass(format!(
        "bucket {} has Object Lock ({mode})",
        bucket.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::{lab_bucket, logging_trail};
    use crate::posture::ObjectLock;

    #[test]
    fn sns_and_cloudwatch_need_configuration() {
        let mut s = logging_trail();
        assert!(!sns_notification(&s).unwrap().passed);
        s.trail.sns_topic_arn = Some("arn:aws:sns:us-east-1:111122223333:t".into());
        assert!(sns_notification(&s).unwrap().passed);
        s.status.as_mut().unwrap().latest_notification_error = Some("AuthorizationError".into());
        assert!(!sns_notification(&s).unwrap().passed);

        assert!(!cloudwatch_logs(&s).unwrap().passed);
        s.trail.cloud_watch_logs_log_group_arn =
            Some("arn:aws:logs:us-east-1:1:log-group:g".into());
        s.trail.cloud_watch_logs_role_arn = Some("arn:aws:iam::1:role/r".into());
        assert!(cloudwatch_logs(&s).unwrap().passed);
    }

    #[test]
    fn object_lock_and_access_logging() {
        let mut b = lab_bucket();
        assert!(!object_lock(Ok(&b), None).unwrap().passed);
        b.object_lock = Ok(Some(ObjectLock {
            enabled: true,
            mode: Some("COMPLIANCE".into()),
            days: Some(400),
            years: None,
        }));
        assert!(object_lock(Ok(&b), Some(365)).unwrap().passed);
        assert!(!object_lock(Ok(&b), Some(500)).unwrap().passed);
        assert!(!bucket_access_logging(Ok(&b)).unwrap().passed);
    }
}
