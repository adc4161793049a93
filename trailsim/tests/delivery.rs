//! trailsim's log delivery into trail buckets in moto, and the GetTrailStatus fields it makes
//! honest, through the real Rust SDK.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::{Value, json};
use support::{Principal, post, principal};

/// The records of one delivered log file.
async fn records(p: &Principal, bucket: &str, key: &str) -> Vec<Value> {
    let file = p.delivered_json(bucket, key).await;
    file["Records"].as_array().unwrap().clone()
}

fn names(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect()
}

/// `AWSLogs/{acct}/CloudTrail/{region}/YYYY/MM/DD/{acct}_CloudTrail_{region}_{YYYYMMDDTHHmmZ}_{16}.json.gz`
fn has_real_layout(key: &str, account: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let [aws_logs, acct, ct, region, y, m, d, file] = parts[..] else {
        return false;
    };
    let stamp_and_unique = file
        .strip_prefix(&format!("{account}_CloudTrail_{region}_"))
        .and_then(|f| f.strip_suffix(".json.gz"));
    let Some((stamp, unique)) = stamp_and_unique.and_then(|s| s.split_once('_')) else {
        return false;
    };
    aws_logs == "AWSLogs"
        && acct == account
        && ct == "CloudTrail"
        && stamp.starts_with(&format!("{y}{m}{d}T"))
        && stamp.len() == 14
        && stamp.ends_with('Z')
        && unique.len() == 16
        && unique.chars().all(|c| c.is_ascii_alphanumeric())
}

fn deliver() -> Value {
    let (code, body) = post("/_trailsim/deliver", &json!({}));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The names of every record in every log file of the bucket. Other tests' deliveries may
/// split this trail's events over more files: only the union is certain.
async fn delivered_names(p: &Principal, bucket: &str) -> (usize, Vec<String>) {
    let all = p.keys(bucket, "").await;
    let mut out = Vec::new();
    for key in &all {
        assert!(has_real_layout(key, &p.account), "{key}");
        let file = records(p, bucket, key).await;
        assert!(
            file.iter()
                .all(|r| r["recipientAccountId"] == p.account.as_str())
        );
        out.extend(names(&file).into_iter().map(str::to_string));
    }
    (all.len(), out)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logging_trail_gets_log_files_and_none_after_stop_logging() {
    let p = principal(3).await;
    let trail = p.trail().await;
    let bucket = format!("trailsim-{}", p.account);
    p.cloudtrail().describe_trails().send().await.unwrap();

    deliver();
    let (files, delivered) = delivered_names(&p, &bucket).await;
    assert!(files >= 1);
    assert!(
        delivered.iter().any(|n| n == "StartLogging"),
        "{delivered:?}"
    );
    assert!(
        delivered.iter().any(|n| n == "DescribeTrails"),
        "reads are delivered too"
    );
    assert!(
        !delivered.iter().any(|n| n == "CreateTrail"),
        "before logging started"
    );

    let status = p
        .cloudtrail()
        .get_trail_status()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert!(status.latest_delivery_time().is_some());
    assert!(status.start_logging_time().is_some());
    assert!(status.latest_delivery_error().is_none());

    p.cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    p.cloudtrail().list_trails().send().await.unwrap();
    deliver();
    let (files, delivered) = delivered_names(&p, &bucket).await;
    assert!(
        delivered.iter().any(|n| n == "StopLogging"),
        "final delivery: {delivered:?}"
    );
    assert!(
        !delivered.iter().any(|n| n == "ListTrails"),
        "nothing after the stop"
    );

    p.cloudtrail().describe_trails().send().await.unwrap();
    deliver();
    assert_eq!(
        p.keys(&bucket, "").await.len(),
        files,
        "nothing while stopped"
    );
    let status = p
        .cloudtrail()
        .get_trail_status()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert_eq!(status.is_logging(), Some(false));
    assert!(status.stop_logging_time().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_is_a_delivery_error() {
    let p = principal(3).await;
    let bucket = format!("gone-{}", p.account);
    p.s3().create_bucket().bucket(&bucket).send().await.unwrap();
    let trail = p.create_trail("orphan", &bucket, false, false).await;
    // Gone before logging starts, so no delivery (other tests trigger them too) can touch it.
    p.s3().delete_bucket().bucket(&bucket).send().await.unwrap();
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    p.cloudtrail().describe_trails().send().await.unwrap();
    deliver();
    let status = p
        .cloudtrail()
        .get_trail_status()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert_eq!(status.is_logging(), Some(true), "still says logging");
    assert_eq!(status.latest_delivery_error(), Some("NoSuchBucket"));
    assert!(status.latest_delivery_time().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_old_records_are_delivered_into_the_bucket() {
    let p = principal(3).await;
    p.trail().await;
    let bucket = format!("trailsim-{}", p.account);
    deliver();
    let before = p.keys(&bucket, "").await;
    let old = (chrono::Utc::now() - chrono::Duration::days(100))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (code, _) = post(
        "/_trailsim/records",
        &json!({"records": [{"eventVersion": "1.08", "eventTime": old, "eventID": "old-one",
            "eventSource": "kms.amazonaws.com", "eventName": "DisableKey", "awsRegion": "us-east-1",
            "readOnly": false, "managementEvent": true, "recipientAccountId": p.account,
            "userIdentity": {"type": "IAMUser", "accountId": p.account, "userName": "mallory"}}]}),
    );
    assert_eq!(code, 200);
    deliver();
    let after = p.keys(&bucket, "").await;
    let mut found = false;
    for key in after.iter().filter(|k| !before.contains(k)) {
        let delivered = records(&p, &bucket, key).await;
        found |= delivered
            .iter()
            .any(|r| r["eventID"] == "old-one" && r["eventTime"] == old.as_str());
    }
    assert!(found, "the injected record is in a newly delivered file");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_trails_report_the_default_selector_as_aws_does() {
    let p = principal(3).await;
    let trail = p.trail().await;
    let out = p
        .cloudtrail()
        .get_event_selectors()
        .trail_name(&trail)
        .send()
        .await
        .unwrap();
    let s = &out.event_selectors()[0];
    assert_eq!(s.include_management_events(), Some(true));
    assert_eq!(
        s.read_write_type(),
        Some(&aws_sdk_cloudtrail::types::ReadWriteType::All)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_versioning_reads_through_trailsim() {
    // Against moto alone the SDK cannot parse this answer.
    let p = principal(1).await;
    let bucket = format!("versioned-{}", p.account);
    p.s3().create_bucket().bucket(&bucket).send().await.unwrap();
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    p.s3()
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = p
        .s3()
        .get_bucket_versioning()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Enabled));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_policy_that_denies_delivery_is_a_delivery_error() {
    let p = principal(3).await;
    let bucket = format!("denied-{}", p.account);
    p.s3().create_bucket().bucket(&bucket).send().await.unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
        "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]});
    p.s3()
        .put_bucket_policy()
        .bucket(&bucket)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let trail = p.create_trail("denied", &bucket, false, false).await;
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    deliver();
    let status = p
        .cloudtrail()
        .get_trail_status()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert_eq!(status.latest_delivery_error(), Some("AccessDenied"));
    assert!(p.keys(&bucket, "").await.is_empty());
}
