//! S3: the trail bucket's location, encryption, lifecycle, versioning, object lock, public
//! access block, policy status, ACL and access logging.
//!
//! A "not configured" answer (no lifecycle, no policy...) is a value, `Ok(None)` or empty;
//! anything else that fails is [`Unavailable`] with the reason.

use super::aws::{Aws, error_code, unavailable};
use super::{nonempty, to_utc};
use crate::posture::{
    AccessLogging, BucketEncryption, BucketPosture, Fetched, LifecycleRule, ObjectLock,
    PublicAccessBlock, Unavailable, Versioning,
};
use aws_sdk_s3::types as s3;

/// The names of the account's buckets (ListBuckets): which account owns a trail's bucket.
pub async fn bucket_names(aws: &Aws, region: &str) -> Fetched<Vec<String>> {
    let mut names = Vec::new();
    let mut pages = aws.s3(region).list_buckets().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| unavailable("ListBuckets", &e))?;
        names.extend(
            page.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_string)),
        );
    }
    Ok(names)
}

/// Collects the posture of `bucket`. `owner` is the account the bucket must belong to: S3
/// refuses (403) rather than answer about a bucket owned by someone else.
pub async fn bucket_posture(
    aws: &Aws,
    default_region: &str,
    bucket: &str,
    owner: Option<&str>,
) -> Fetched<BucketPosture> {
    let lookup = aws.s3(default_region);
    let mut location = lookup.get_bucket_location().bucket(bucket);
    if let Some(owner) = owner {
        location = location.expected_bucket_owner(owner);
    }
    let region = match location.send().await {
        Ok(out) => bucket_region(out.location_constraint()),
        Err(e) => {
            let mut reason = unavailable("GetBucketLocation", &e);
            match error_code(&e) {
                Some("NoSuchBucket") => {
                    reason = Unavailable::new(format!("bucket {bucket} does not exist"));
                }
                Some("AccessDenied") => {
                    if let Some(owner) = owner {
                        reason.reason.push_str(&format!(
                            " (the bucket may be in another account than {owner})"
                        ));
                    }
                }
                _ => {}
            }
            return Err(reason);
        }
    };
    let s3 = aws.s3(&region);
    let owner = owner.map(str::to_string);
    // Each call is independent: run them together, one failure does not hide the others.
    let (encryption, lifecycle, versioning, object_lock, pab, policy, acl, logging) = tokio::join!(
        s3.get_bucket_encryption()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_bucket_versioning()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_object_lock_configuration()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_public_access_block()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_bucket_policy_status()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_bucket_acl()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
        s3.get_bucket_logging()
            .bucket(bucket)
            .set_expected_bucket_owner(owner.clone())
            .send(),
    );

    Ok(BucketPosture {
        name: bucket.to_string(),
        encryption: match encryption {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(encryption_from_rule)),
            Err(e) if error_code(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => {
                Ok(None)
            }
            Err(e) => Err(unavailable("GetBucketEncryption", &e)),
        },
        lifecycle_rules: match lifecycle {
            Ok(out) => Ok(out.rules().iter().map(lifecycle_rule).collect()),
            Err(e) if error_code(&e) == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
            Err(e) => Err(unavailable("GetBucketLifecycleConfiguration", &e)),
        },
        versioning: match versioning {
            Ok(out) => Ok(match out.status() {
                Some(s3::BucketVersioningStatus::Enabled) => Versioning::Enabled,
                Some(s3::BucketVersioningStatus::Suspended) => Versioning::Suspended,
                _ => Versioning::Off,
            }),
            Err(e) => Err(unavailable("GetBucketVersioning", &e)),
        },
        object_lock: match object_lock {
            Ok(out) => Ok(out.object_lock_configuration().map(object_lock_from_sdk)),
            Err(e) if error_code(&e) == Some("ObjectLockConfigurationNotFoundError") => Ok(None),
            Err(e) => Err(unavailable("GetObjectLockConfiguration", &e)),
        },
        public_access_block: match pab {
            Ok(out) => Ok(out
                .public_access_block_configuration()
                .map(|c| PublicAccessBlock {
                    block_public_acls: c.block_public_acls().unwrap_or(false),
                    ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                    block_public_policy: c.block_public_policy().unwrap_or(false),
                    restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                })),
            Err(e) if error_code(&e) == Some("NoSuchPublicAccessBlockConfiguration") => Ok(None),
            Err(e) => Err(unavailable("GetPublicAccessBlock", &e)),
        },
        policy_is_public: match policy {
            Ok(out) => match out.policy_status().and_then(|p| p.is_public()) {
                Some(public) => Ok(Some(public)),
                None => Err(Unavailable::api_failure(
                    "GetBucketPolicyStatus: answer without IsPublic",
                )),
            },
            Err(e) if error_code(&e) == Some("NoSuchBucketPolicy") => Ok(None),
            Err(e) => Err(unavailable("GetBucketPolicyStatus", &e)),
        },
        acl_is_public: match acl {
            Ok(out) => Ok(out.grants().iter().any(grant_is_public)),
            Err(e) => Err(unavailable("GetBucketAcl", &e)),
        },
        access_logging: match logging {
            Ok(out) => Ok(out.logging_enabled().map(|l| AccessLogging {
                target_bucket: l.target_bucket().to_string(),
                target_prefix: nonempty(Some(l.target_prefix())),
            })),
            Err(e) => Err(unavailable("GetBucketLogging", &e)),
        },
    })
}

/// `None` and `""` mean us-east-1; `EU` is the legacy name of eu-west-1.
fn bucket_region(constraint: Option<&s3::BucketLocationConstraint>) -> String {
    match constraint.map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    }
}

fn encryption_from_rule(rule: &s3::ServerSideEncryptionRule) -> Option<BucketEncryption> {
    let default = rule.apply_server_side_encryption_by_default()?;
    Some(BucketEncryption {
        algorithm: default.sse_algorithm().as_str().to_string(),
        kms_key_id: nonempty(default.kms_master_key_id()),
        bucket_key_enabled: rule.bucket_key_enabled().unwrap_or(false),
    })
}

fn lifecycle_rule(rule: &s3::LifecycleRule) -> LifecycleRule {
    // The prefix is in the filter, in the filter's And, or (deprecated form) on the rule.
    let filter = rule.filter();
    let and = filter.and_then(|f| f.and());
    #[allow(deprecated)]
    let prefix = filter
        .and_then(|f| f.prefix())
        .or_else(|| and.and_then(|a| a.prefix()))
        .or_else(|| rule.prefix());
    let requires_tags =
        filter.and_then(|f| f.tag()).is_some() || and.is_some_and(|a| !a.tags().is_empty());
    LifecycleRule {
        id: nonempty(rule.id()),
        enabled: *rule.status() == s3::ExpirationStatus::Enabled,
        prefix: nonempty(prefix),
        requires_tags,
        expiration_days: rule.expiration().and_then(|e| e.days()),
        expiration_date: rule.expiration().and_then(|e| e.date()).and_then(to_utc),
        noncurrent_expiration_days: rule
            .noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days()),
    }
}

fn object_lock_from_sdk(c: &s3::ObjectLockConfiguration) -> ObjectLock {
    let retention = c.rule().and_then(|r| r.default_retention());
    ObjectLock {
        enabled: c.object_lock_enabled() == Some(&s3::ObjectLockEnabled::Enabled),
        mode: retention
            .and_then(|r| r.mode())
            .map(|m| m.as_str().to_string()),
        // moto adds `Years: 0` beside `Days`; zero is "not set".
        days: retention.and_then(|r| r.days()).filter(|d| *d > 0),
        years: retention.and_then(|r| r.years()).filter(|y| *y > 0),
    }
}

const PUBLIC_GROUPS: &[&str] = &[
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
];

fn grant_is_public(grant: &s3::Grant) -> bool {
    grant
        .grantee()
        .and_then(|g| g.uri())
        .is_some_and(|uri| PUBLIC_GROUPS.contains(&uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_regions() {
        assert_eq!(bucket_region(None), "us-east-1");
        assert_eq!(
            bucket_region(Some(&s3::BucketLocationConstraint::from("EU"))),
            "eu-west-1"
        );
        assert_eq!(
            bucket_region(Some(&s3::BucketLocationConstraint::from("ap-south-1"))),
            "ap-south-1"
        );
    }

    #[test]
    fn lifecycle_prefix_from_any_form() {
        let rule = s3::LifecycleRule::builder()
            .status(s3::ExpirationStatus::Enabled)
            .filter(
                s3::LifecycleRuleFilter::builder()
                    .and(
                        s3::LifecycleRuleAndOperator::builder()
                            .prefix("AWSLogs/")
                            .tags(s3::Tag::builder().key("k").value("v").build().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .expiration(s3::LifecycleExpiration::builder().days(30).build())
            .build()
            .unwrap();
        let r = lifecycle_rule(&rule);
        assert_eq!(r.prefix.as_deref(), Some("AWSLogs/"));
        assert!(r.requires_tags);
        assert_eq!(r.expiration_days, Some(30));
        assert!(r.enabled);
    }
}
