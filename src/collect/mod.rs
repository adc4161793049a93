//! Collectors: the only code that calls AWS. Each turns API answers into the plain values of
//! [`crate::posture`]; failures become [`crate::posture::Unavailable`] reasons, never defaults.
//!
//! Two pollers use them: `trails` (ListTrails, DescribeTrails, GetTrailStatus, GetEventSelectors: cheap,
//! frequent, the Stop Logging signal) and `posture` (bucket, KMS key, AWS Config recorders).

pub mod account;
pub mod accounts;
pub mod aws;
pub mod bucket;
pub mod chain;
pub mod config_rules;
pub mod events;
pub mod key;
pub mod objects;
pub mod organization;
pub mod public_keys;
pub mod queue;
pub mod recorder;
pub mod remediation;
pub mod security_hub;
pub mod trails;

use crate::posture::{Fetched, Posture, Trail, TrailState, Unavailable};
use aws::Aws;
use chrono::{DateTime, Utc};

/// What the `trails` poller produces.
#[derive(Debug, Clone)]
pub struct TrailsResult {
    pub account: Fetched<String>,
    pub trails: Fetched<Vec<TrailState>>,
}

/// Lists trails in `regions`, then reads each trail's status and selectors.
pub async fn collect_trails(aws: &Aws, regions: &[String]) -> TrailsResult {
    let (account, listing) = tokio::join!(
        account::caller_account(aws),
        trails::list_trails(aws, regions)
    );
    let trails = match listing {
        Ok(list) => {
            let mut states = Vec::with_capacity(list.len());
            for trail in list {
                states.push(trails::trail_state(aws, trail).await);
            }
            Ok(states)
        }
        Err(e) => Err(e),
    };
    TrailsResult { account, trails }
}

/// Collects the buckets and keys of `trails` (each once) and the recorders of `regions`.
pub async fn collect_posture(
    aws: &Aws,
    regions: &[String],
    account: Option<&str>,
    trails: &[Trail],
) -> Posture {
    let mut posture = Posture::default();
    for trail in trails {
        if let Some(bucket) = &trail.s3_bucket_name
            && !posture.buckets.contains_key(bucket)
        {
            let value = match managed_elsewhere(trail, account, "bucket") {
                Some(reason) => Err(reason),
                None => bucket::bucket_posture(aws, &trail.home_region, bucket, account).await,
            };
            posture.buckets.insert(bucket.clone(), value);
        }
        if let Some(key) = &trail.kms_key_id
            && !posture.keys.contains_key(key)
        {
            let value = match managed_elsewhere(trail, account, "KMS key") {
                Some(reason) => Err(reason),
                None => key::key_posture(aws, &trail.home_region, key).await,
            };
            posture.keys.insert(key.clone(), value);
        }
    }
    for region in regions {
        posture
            .recorders
            .insert(region.clone(), recorder::recorders(aws, region).await);
    }
    posture
}

/// A trail owned by another account (an organization trail seen from a member account): its
/// bucket and key belong to the management or log archive account and are checked from
/// there. Policies that need them report `error` with this reason, not a false failure.
fn managed_elsewhere(trail: &Trail, ours: Option<&str>, what: &str) -> Option<Unavailable> {
    let ours = ours?;
    if trail.account.is_empty() || trail.account == ours {
        return None;
    }
    let kind = if trail.is_organization_trail {
        "an organization trail"
    } else {
        "a trail"
    };
    Some(Unavailable::new(format!(
        "{} is {kind} of account {}; its {what} is checked from that account, not from {ours}",
        trail.name, trail.account
    )))
}

/// AWS answers "" where it means "absent" (moto does so often); both become `None`.
pub(crate) fn nonempty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

pub(crate) fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(account: &str, org: bool) -> Trail {
        Trail {
            name: "org".into(),
            account: account.into(),
            is_organization_trail: org,
            ..Default::default()
        }
    }

    #[test]
    fn member_accounts_do_not_check_an_organization_trail_bucket() {
        let reason =
            managed_elsewhere(&trail("111111111111", true), Some("222222222222"), "bucket")
                .expect("another account's trail");
        assert!(!reason.from_api, "a known gap, not a failed call");
        assert!(
            reason
                .reason
                .contains("organization trail of account 111111111111"),
            "{}",
            reason.reason
        );
        assert!(
            managed_elsewhere(&trail("222222222222", true), Some("222222222222"), "bucket")
                .is_none()
        );
        // Unknown own account: try, and let S3 or KMS answer.
        assert!(managed_elsewhere(&trail("111111111111", false), None, "bucket").is_none());
    }
}
