//! The log bucket is not public and cannot easily become so: its policy is not public, its
//! ACL grants nothing to everyone, and all four public access block settings are on.

use super::finding::{CheckResult, Verdict};
use crate::posture::{BucketPosture, Fetched, Unavailable};

pub fn bucket_not_public(bucket: Fetched<&BucketPosture>) -> CheckResult {
    let bucket = bucket?;
    let mut problems = Vec::new();
    let mut unknown: Vec<&Unavailable> = Vec::new();
    match &bucket.policy_is_public {
        Ok(Some(true)) => problems.push("its bucket policy is public".to_string()),
        Ok(_) => {}
        Err(e) => unknown.push(e),
    }
    match &bucket.acl_is_public {
        Ok(true) => problems.push("its ACL grants access to all users".to_string()),
        Ok(false) => {}
        Err(e) => unknown.push(e),
    }
    match &bucket.public_access_block {
        Ok(Some(pab)) if pab.all_blocked() => {}
        Ok(Some(pab)) => {
            let off: Vec<&str> = [
                ("BlockPublicAcls", pab.block_public_acls),
                ("IgnorePublicAcls", pab.ignore_public_acls),
                ("BlockPublicPolicy", pab.block_public_policy),
                ("RestrictPublicBuckets", pab.restrict_public_buckets),
            ]
            .into_iter()
            .filter_map(|(name, on)| (!on).then_some(name))
            .collect();
            problems.push(format!("public access block has {} off", off.join(", ")));
        }
        Ok(None) => problems.push("it has no public access block".to_string()),
        Err(e) => unknown.push(e),
    }
    // A definite problem is a failure even when other parts could not be read.
    if !problems.is_empty() {
        return Ok(Verdict::fail(format!(
            "bucket {}: {}",
            bucket.name,
            problems.join("; ")
        )));
    }
    if let Some(first) = unknown.first() {
        return Err((*first).clone());
    }
    Ok(Verdict::pass(format!(
        "bucket {} is not public and blocks public access",
        bucket.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::{lab_bucket, unavailable};
    use crate::posture::PublicAccessBlock;

    #[test]
    fn blocked_private_bucket_passes() {
        assert!(bucket_not_public(Ok(&lab_bucket())).unwrap().passed);
    }

    #[test]
    fn public_policy_acl_or_missing_block_fail() {
        let mut b = lab_bucket();
        b.policy_is_public = Ok(Some(true));
        assert!(!bucket_not_public(Ok(&b)).unwrap().passed);

        let mut b = lab_bucket();
        b.acl_is_public = Ok(true);
        assert!(!bucket_not_public(Ok(&b)).unwrap().passed);

        let mut b = lab_bucket();
        b.public_access_block = Ok(None);
        assert!(
            bucket_not_public(Ok(&b))
                .unwrap()
                .message
                .contains("no public access block")
        );

        let mut b = lab_bucket();
        b.public_access_block = Ok(Some(PublicAccessBlock {
            block_public_policy: false,
            ..PublicAccessBlock {
                block_public_acls: true,
                ignore_public_acls: true,
                block_public_policy: true,
                restrict_public_buckets: true,
            }
        }));
        assert!(
            bucket_not_public(Ok(&b))
                .unwrap()
                .message
                .contains("BlockPublicPolicy off")
        );
    }

    #[test]
    fn unknown_parts_error_unless_something_already_fails() {
        let mut b = lab_bucket();
        b.policy_is_public = Err(unavailable("GetBucketPolicyStatus: AccessDenied"));
        assert!(bucket_not_public(Ok(&b)).is_err());
        b.acl_is_public = Ok(true);
        assert!(!bucket_not_public(Ok(&b)).unwrap().passed);
    }
}
