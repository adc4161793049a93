//! The default detections (`config/detections.yaml`) against one record per call they watch,
//! written from the AWS documentation of each call's request, and benign variants that must
//! not fire: every detection fires on its record, on the success and on the failed attempt
//! (unless it asks for success only), and nothing fires on the benign ones.

use super::detection::{Outcome, Watched, detect, wants};
use crate::config::DetectionSet;
use crate::record::Record;
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd";

/// (event source, event name, requestParameters, the detections that fire).
#[rustfmt::skip] // a table: one case per line
fn cases() -> Vec<(&'static str, &'static str, Value, Vec<&'static str>)> {
    let ct = "cloudtrail.amazonaws.com";
    let s3 = "s3.amazonaws.com";
    let kms = "kms.amazonaws.com";
    let logs = "logs.amazonaws.com";
    let org = "organizations.amazonaws.com";
    let bucket = |extra: Value| {
        let mut v = json!({"bucketName": "trail-logs", "Host": "trail-logs.s3.amazonaws.com"});
        if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    };
    let selectors = |rw: &str, management: bool| {
        json!({"trailName": "lab", "eventSelectors": [
            {"readWriteType": rw, "includeManagementEvents": management, "dataResources": []}]})
    };
    let lifecycle = |days: u64| {
        bucket(
            json!({"LifecycleConfiguration": {"Rule": {"ID": "expire", "Status": "Enabled",
            "Filter": {"Prefix": "AWSLogs/"}, "Expiration": {"Days": days}}}}),
        )
    };
    let versioning = |status: &str, mfa: &str| {
        bucket(
            json!({"VersioningConfiguration": {"Status": status, "MfaDelete": mfa,
            "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}}),
        )
    };
    let access_block = |policy: bool| {
        bucket(
            json!({"PublicAccessBlockConfiguration": {"BlockPublicAcls": true,
            "IgnorePublicAcls": true, "BlockPublicPolicy": policy, "RestrictPublicBuckets": true}}),
        )
    };
    let alb = |value: &str| {
        json!({"loadBalancerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1",
            "attributes": [{"key": "idle_timeout.timeout_seconds", "value": "60"},
                           {"key": "access_logs.s3.enabled", "value": value}]})
    };
    vec![
        // --- the trail
        (ct, "StopLogging", json!({"name": "lab"}), vec!["cloudtrail_stop_logging"]),
        (ct, "DeleteTrail", json!({"name": "lab"}), vec!["cloudtrail_trail_deleted"]),
        (ct, "UpdateTrail", json!({"name": "lab", "enableLogFileValidation": false}), vec!["cloudtrail_trail_weakened"]),
        (ct, "UpdateTrail", json!({"name": "lab", "enableLogFileValidation": true}), vec![]),
        (ct, "PutEventSelectors", selectors("All", false), vec!["cloudtrail_management_events_stopped"]),
        (ct, "PutEventSelectors", selectors("WriteOnly", true), vec!["cloudtrail_read_events_stopped"]),
        (ct, "PutEventSelectors", selectors("All", true), vec![]),
        (ct, "CreateTrail", json!({"name": "lab", "s3BucketName": "trail-logs"}), vec!["cloudtrail_trail_created"]),
        (ct, "StartLogging", json!({"name": "lab"}), vec!["cloudtrail_start_logging"]),
        (ct, "PutInsightSelectors", json!({"trailName": "lab", "insightSelectors": []}), vec!["cloudtrail_insights_stopped"]),
        (ct, "PutInsightSelectors", json!({"trailName": "lab", "insightSelectors": [{"insightType": "ApiCallRateInsight"}]}), vec![]),
        (ct, "DeregisterOrganizationDelegatedAdmin", json!({"delegatedAdminAccountId": "111122223333"}), vec!["cloudtrail_delegated_admin_removed"]),
        (ct, "StopEventDataStoreIngestion", json!({"eventDataStore": "arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/eds"}), vec!["cloudtrail_event_data_store_stopped"]),
        (ct, "DeleteEventDataStore", json!({"eventDataStore": "eds"}), vec!["cloudtrail_event_data_store_stopped"]),
        (org, "DisableAWSServiceAccess", json!({"servicePrincipal": "cloudtrail.amazonaws.com"}), vec!["organizations_cloudtrail_access_disabled"]),
        (org, "DisableAWSServiceAccess", json!({"servicePrincipal": "config.amazonaws.com"}), vec![]),
        (org, "DeregisterDelegatedAdministrator", json!({"accountId": "111122223333", "servicePrincipal": "cloudtrail.amazonaws.com"}), vec!["organizations_cloudtrail_delegated_admin_removed"]),
        (org, "LeaveOrganization", json!(null), vec!["organizations_leave"]),
        // --- the trail's bucket; the same calls on another bucket are nobody's business here
        (s3, "DeleteBucket", bucket(json!({})), vec!["s3_trail_bucket_deleted"]),
        (s3, "PutBucketPolicy", bucket(json!({"bucketPolicy": {"Version": "2012-10-17"}})), vec!["s3_trail_bucket_policy_changed"]),
        (s3, "PutBucketPolicy", json!({"bucketName": "other-bucket", "bucketPolicy": {}}), vec![]),
        (s3, "DeleteBucketPolicy", bucket(json!({"policy": ""})), vec!["s3_trail_bucket_policy_deleted"]),
        (s3, "PutBucketLifecycle", lifecycle(1), vec!["s3_trail_bucket_lifecycle_shortened"]),
        (s3, "PutBucketLifecycle", lifecycle(800), vec![]),
        (s3, "DeleteBucketEncryption", bucket(json!({"encryption": ""})), vec!["s3_trail_bucket_encryption_deleted"]),
        (s3, "PutBucketEncryption", bucket(json!({"ServerSideEncryptionConfiguration": {"Rule": {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}}}),), vec!["s3_trail_bucket_encryption_weakened"]),
        (s3, "PutBucketEncryption", bucket(json!({"ServerSideEncryptionConfiguration": {"Rule": {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY}}}})), vec![]),
        (s3, "PutBucketVersioning", versioning("Suspended", "Disabled"), vec!["s3_trail_bucket_versioning_suspended", "s3_trail_bucket_mfa_delete_disabled",]),
        (s3, "PutBucketVersioning", versioning("Enabled", "Disabled"), vec!["s3_trail_bucket_mfa_delete_disabled"]),
        (s3, "PutBucketVersioning", versioning("Enabled", "Enabled"), vec![]),
        (s3, "PutBucketAcl", bucket(json!({"acl": ""})), vec!["s3_trail_bucket_acl_changed"]),
        (s3, "PutBucketOwnershipControls", bucket(json!({"OwnershipControls": {"Rule": {"ObjectOwnership": "ObjectWriter"}}})), vec!["s3_trail_bucket_ownership_changed"]),
        (s3, "DeleteBucketOwnershipControls", bucket(json!({"ownershipControls": ""})), vec!["s3_trail_bucket_ownership_changed"]),
        (s3, "DeleteBucketPublicAccessBlock", bucket(json!({"publicAccessBlock": ""})), vec!["s3_trail_bucket_public_access_block_deleted"]),
        (s3, "PutBucketPublicAccessBlock", access_block(false), vec!["s3_trail_bucket_public_access_block_weakened"]),
        (s3, "PutBucketPublicAccessBlock", access_block(true), vec![]),
        (s3, "PutObjectLockConfiguration", bucket(json!({"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled"}})), vec!["s3_trail_bucket_object_lock_weakened"]),
        (s3, "PutObjectLockConfiguration", bucket(json!({"ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 400}}}}),), vec![]),
        (s3, "DeleteBucketReplication", bucket(json!({"replication": ""})), vec!["s3_trail_bucket_replication_removed"]),
        (s3, "PutBucketLogging", bucket(json!({"BucketLoggingStatus": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}}),), vec!["s3_trail_bucket_access_logging_disabled"]),
        (s3, "PutBucketLogging", bucket(json!({"BucketLoggingStatus": {"LoggingEnabled": {"TargetBucket": "access-logs", "TargetPrefix": "trail/"}}}),), vec![]),
        (s3, "PutBucketNotification", bucket(json!({"NotificationConfiguration": {}})), vec!["s3_trail_bucket_notifications_changed"]),
        (s3, "DeleteObject", bucket(json!({"key": "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/24/f.json.gz"}),), vec!["s3_trail_log_objects_deleted"]),
        (s3, "DeleteObjects", bucket(json!({"delete": ""})), vec!["s3_trail_log_objects_deleted"]),
        (s3, "DeleteObject", json!({"bucketName": "other-bucket", "key": "k"}), vec![]),
        // --- the trail's key, by ARN, id or alias
        (kms, "DisableKey", json!({"keyId": KEY}), vec!["kms_trail_key_disabled"]),
        (kms, "DisableKey", json!({"keyId": "arn:aws:kms:us-east-1:123456789012:key/other"}), vec![]),
        (kms, "ScheduleKeyDeletion", json!({"keyId": "1234abcd", "pendingWindowInDays": 7}), vec!["kms_trail_key_deletion_scheduled"]),
        (kms, "PutKeyPolicy", json!({"keyId": "1234abcd", "policyName": "default"}), vec!["kms_trail_key_policy_changed"]),
        (kms, "CreateGrant", json!({"keyId": KEY, "granteePrincipal": "arn:aws:iam::123456789012:role/x", "operations": ["Decrypt"]}), vec!["kms_trail_key_grant_changed"]),
        (kms, "RevokeGrant", json!({"keyId": KEY, "grantId": "g"}), vec!["kms_trail_key_grant_changed"]),
        (kms, "RetireGrant", json!({"keyId": KEY, "grantId": "g"}), vec!["kms_trail_key_grant_changed"]),
        (kms, "UpdateAlias", json!({"aliasName": "alias/trail", "targetKeyId": "other"}), vec!["kms_trail_key_alias_moved"]),
        (kms, "DeleteAlias", json!({"aliasName": "alias/trail"}), vec!["kms_trail_key_alias_moved"]),
        (kms, "UpdateAlias", json!({"aliasName": "alias/other", "targetKeyId": "other"}), vec![]),
        // --- the trail's log group
        (logs, "DeleteLogGroup", json!({"logGroupName": "trail-group"}), vec!["logs_trail_log_group_deleted"]),
        (logs, "PutRetentionPolicy", json!({"logGroupName": "trail-group", "retentionInDays": 30}), vec!["logs_trail_log_group_retention_shortened"]),
        (logs, "PutRetentionPolicy", json!({"logGroupName": "trail-group", "retentionInDays": 400}), vec![]),
        (logs, "DeleteSubscriptionFilter", json!({"logGroupName": "trail-group", "filterName": "siem"}), vec!["logs_trail_subscription_removed"]),
        // --- the other audit sources
        ("config.amazonaws.com", "StopConfigurationRecorder", json!({"configurationRecorderName": "default"}), vec!["config_recorder_stopped"]),
        ("config.amazonaws.com", "DeleteConfigurationRecorder", json!({"configurationRecorderName": "default"}), vec!["config_recorder_deleted"]),
        ("config.amazonaws.com", "DeleteDeliveryChannel", json!({"deliveryChannelName": "default"}), vec!["config_delivery_channel_deleted"]),
        ("guardduty.amazonaws.com", "DeleteDetector", json!({"detectorId": "d"}), vec!["guardduty_detector_deleted"]),
        ("guardduty.amazonaws.com", "UpdateDetector", json!({"detectorId": "d", "enable": false}), vec!["guardduty_detector_disabled"]),
        ("guardduty.amazonaws.com", "UpdateDetector", json!({"detectorId": "d", "enable": true, "findingPublishingFrequency": "FIFTEEN_MINUTES"}), vec![]),
        ("ec2.amazonaws.com", "DeleteFlowLogs", json!({"DeleteFlowLogsRequest": {"FlowLogId": {"content": "fl-1", "tag": 1}}}), vec!["ec2_flow_logs_deleted"]),
        ("route53resolver.amazonaws.com", "DeleteResolverQueryLogConfig", json!({"resolverQueryLogConfigId": "rqlc-1"}), vec!["route53resolver_query_logging_deleted"]),
        ("route53resolver.amazonaws.com", "DisassociateResolverQueryLogConfig", json!({"resolverQueryLogConfigId": "rqlc-1", "resourceId": "vpc-1"}), vec!["route53resolver_query_logging_deleted"]),
        ("securityhub.amazonaws.com", "DisableSecurityHub", json!(null), vec!["securityhub_disabled"]),
        ("macie2.amazonaws.com", "DisableMacie", json!(null), vec!["macie_disabled"]),
        ("detective.amazonaws.com", "DeleteGraph", json!({"graphArn": "arn:aws:detective:us-east-1:123456789012:graph:g"}), vec!["detective_graph_deleted"]),
        ("inspector2.amazonaws.com", "Disable", json!({"resourceTypes": ["EC2", "ECR"]}), vec!["inspector_disabled"]),
        ("bedrock.amazonaws.com", "DeleteModelInvocationLoggingConfiguration", json!(null), vec!["bedrock_invocation_logging_deleted"]),
        ("rds.amazonaws.com", "StopActivityStream", json!({"resourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:db", "applyImmediately": true}), vec!["rds_activity_stream_stopped"]),
        ("elasticloadbalancing.amazonaws.com", "ModifyLoadBalancerAttributes", alb("false"), vec!["elb_access_logging_disabled"]),
        ("elasticloadbalancing.amazonaws.com", "ModifyLoadBalancerAttributes", alb("true"), vec![]),
        ("elasticloadbalancing.amazonaws.com", "ModifyLoadBalancerAttributes", json!({"loadBalancerName": "web", "loadBalancerAttributes": {"accessLog": {"enabled": false}}}), vec!["elb_access_logging_disabled"]),
        ("wafv2.amazonaws.com", "DeleteLoggingConfiguration", json!({"resourceArn": "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/w/1"}), vec!["waf_logging_deleted"]),
        ("cloudfront.amazonaws.com", "UpdateDistribution", json!({"id": "E1", "distributionConfig": {"logging": {"enabled": false, "bucket": "", "prefix": ""}}}), vec!["cloudfront_logging_disabled"]),
        ("cloudfront.amazonaws.com", "UpdateDistribution", json!({"id": "E1", "distributionConfig": {"logging": {"enabled": true, "bucket": "logs.s3.amazonaws.com", "prefix": "cf/"}}}), vec![]),
        ("eks.amazonaws.com", "UpdateClusterConfig", json!({"name": "c", "logging": {"clusterLogging": [{"types": ["api", "audit", "authenticator"], "enabled": false}]}}), vec!["eks_control_plane_logging_disabled"]),
        ("eks.amazonaws.com", "UpdateClusterConfig", json!({"name": "c", "logging": {"clusterLogging": [{"types": ["api", "audit"], "enabled": true}]}}), vec![]),
    ]
}

fn defaults() -> DetectionSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/detections.yaml");
    crate::config::yaml::load_file(&path).unwrap()
}

fn watched() -> Watched {
    let mut w = Watched::default();
    w.add_trail(
        Some("trail-logs"),
        None,
        Some(KEY),
        Some("arn:aws:logs:us-east-1:123456789012:log-group:trail-group:*"),
    );
    w.add_key("arn:aws:kms:us-east-1:123456789012:alias/trail");
    w
}

fn record(source: &str, name: &str, request: &Value, error: Option<&str>) -> Record {
    let mut v = json!({
        "eventVersion": "1.11", "eventID": "e1", "eventTime": "2026-11-24T10:00:00Z",
        "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "recipientAccountId": "123456789012", "readOnly": false,
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/ops/eve"},
        "requestParameters": request,
    });
    if let Some(code) = error {
        v["errorCode"] = json!(code);
        v["errorMessage"] = json!("User is not authorized to perform this operation");
    }
    Record::from_value(v).unwrap()
}

#[test]
fn every_default_detection_fires_on_its_records_and_on_nothing_benign() {
    let set = defaults();
    let success_only: BTreeSet<String> = set
        .detections()
        .iter()
        .filter(|d| d.outcome == crate::config::detections::OutcomeFilter::Success)
        .map(|d| d.id.0.clone())
        .collect();
    let mut covered = BTreeSet::new();
    for (source, name, request, expect) in cases() {
        let fired = |error: Option<&str>| -> BTreeSet<(String, &'static str)> {
            detect(
                &set,
                &record(source, name, &request, error),
                &watched(),
                Utc::now(),
            )
            .into_iter()
            .map(|h| (h.detection, h.outcome.as_str()))
            .collect()
        };
        let want: BTreeSet<(String, &'static str)> = expect
            .iter()
            .map(|id| (id.to_string(), Outcome::Success.as_str()))
            .collect();
        assert_eq!(fired(None), want, "{name} {request}");
        // Log files parse a record whole only when `wants` says so: it must for each hit.
        if !expect.is_empty() {
            assert!(wants(&set, source, name), "{source} {name} not wanted");
        }
        // The failed attempt too, unless the detection asks for success only.
        let want_failed: BTreeSet<(String, &'static str)> = expect
            .iter()
            .filter(|id| !success_only.contains(**id))
            .map(|id| (id.to_string(), Outcome::Failure.as_str()))
            .collect();
        assert_eq!(
            fired(Some("AccessDenied")),
            want_failed,
            "failed {name} {request}"
        );
        covered.extend(expect);
    }
    let shipped: BTreeSet<&str> = set.detections().iter().map(|d| d.id.0.as_str()).collect();
    let untested: Vec<_> = shipped.difference(&covered).collect();
    assert!(
        untested.is_empty(),
        "detections without a test record: {untested:?}"
    );
}
