//! trailsim against a real moto, through the real Rust SDK: what it records, what
//! LookupEvents answers, its rate limit, faults and control API.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use aws_smithy_types::DateTime;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{post, principal};

#[tokio::test(flavor = "multi_thread")]
async fn stop_logging_by_a_test_principal_is_in_lookup_events_with_its_arn() {
    let p = principal(3).await;
    let trail = p.trail().await;
    p.cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();

    let found = p.lookup("StopLogging").await;
    assert_eq!(found.len(), 1, "exactly one StopLogging: {found:?}");
    let (event, record) = &found[0];
    assert_eq!(event.event_source(), Some("cloudtrail.amazonaws.com"));
    assert_eq!(event.username(), Some("trailsim-tests"));
    assert_eq!(event.read_only(), Some("false"));
    assert_eq!(record["userIdentity"]["type"], "AssumedRole");
    assert_eq!(record["userIdentity"]["arn"], p.arn.as_str());
    assert_eq!(record["recipientAccountId"], p.account.as_str());
    assert_eq!(record["awsRegion"], "us-east-1");
    assert_eq!(record["resources"][0]["ARN"], trail.as_str());
    assert!(
        record["userAgent"]
            .as_str()
            .unwrap()
            .contains("aws-sdk-rust")
    );
    // Reads are recorded too, as read-only.
    let (_, start) = &p.lookup("StartLogging").await[0];
    assert_eq!(start["readOnly"], false);
    let created = p.lookup("CreateBucket").await;
    assert_eq!(created[0].1["eventSource"], "s3.amazonaws.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_calls_are_recorded_with_their_error() {
    let p = principal(1).await;
    let err = p
        .cloudtrail()
        .stop_logging()
        .name("no-such-trail")
        .send()
        .await;
    assert!(err.is_err());
    let found = p.lookup("StopLogging").await;
    assert_eq!(found.len(), 1);
    let code = found[0].1["errorCode"].as_str().unwrap();
    assert!(code.contains("NotFound"), "errorCode {code}");
    assert!(found[0].1["errorMessage"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_lifecycle_is_recorded_as_cloudtrail_names_it() {
    let p = principal(3).await;
    let bucket = format!("lifecycle-{}", p.account);
    p.s3().create_bucket().bucket(&bucket).send().await.unwrap();
    use aws_sdk_s3::types as s3;
    p.s3()
        .put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            s3::BucketLifecycleConfiguration::builder()
                .rules(
                    s3::LifecycleRule::builder()
                        .id("one-day")
                        .status(s3::ExpirationStatus::Enabled)
                        .filter(s3::LifecycleRuleFilter::builder().prefix("").build())
                        .expiration(s3::LifecycleExpiration::builder().days(1).build())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let found = p.lookup("PutBucketLifecycle").await;
    assert_eq!(
        found.len(),
        1,
        "PutBucketLifecycleConfiguration is logged as PutBucketLifecycle"
    );
    let params = &found[0].1["requestParameters"];
    assert_eq!(params["bucketName"], bucket.as_str());
    assert_eq!(
        params["LifecycleConfiguration"]["Rule"]["Expiration"]["Days"],
        "1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_lookups_within_a_second_get_one_throttling_exception() {
    let p = principal(1).await;
    // A slow machine may spread three calls over more than a second; then the window says
    // nothing and the round is repeated.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let started = Instant::now();
        let mut throttled = 0;
        for _ in 0..3 {
            if let Err(e) = p.cloudtrail().lookup_events().send().await {
                let code = e.into_service_error().meta().code().map(str::to_string);
                assert_eq!(code.as_deref(), Some("ThrottlingException"));
                throttled += 1;
            }
        }
        if started.elapsed() < Duration::from_millis(900) {
            assert_eq!(throttled, 1);
            return;
        }
    }
    panic!("three LookupEvents calls never fit in one second on this machine");
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_records_follow_event_history_retention() {
    let p = principal(3).await;
    let now = chrono::Utc::now();
    let record = |days: i64, id: &str| {
        json!({"eventVersion": "1.08", "eventTime": (now - chrono::Duration::days(days)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
               "eventSource": "cloudtrail.amazonaws.com", "eventName": "DeleteTrail", "awsRegion": "us-east-1",
               "eventID": id, "readOnly": false, "recipientAccountId": p.account,
               "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/mallory", "userName": "mallory"}})
    };
    let (code, body) = post(
        "/_trailsim/records",
        &json!({"records": [record(30, "thirty-days"), record(100, "hundred-days")]}),
    );
    assert_eq!(code, 200, "{body}");
    let found = p.lookup("DeleteTrail").await;
    let ids: Vec<&str> = found.iter().map(|(e, _)| e.event_id().unwrap()).collect();
    assert_eq!(ids, ["thirty-days"], "event history keeps 90 days");
    // Time range filters work on the injected time.
    let out = p
        .cloudtrail()
        .lookup_events()
        .start_time(DateTime::from_secs(
            (now - chrono::Duration::days(31)).timestamp(),
        ))
        .end_time(DateTime::from_secs(
            (now - chrono::Duration::days(29)).timestamp(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.events().len(), 1);
    // Bad records are refused with the reason.
    let (code, body) = post(
        "/_trailsim/records",
        &json!({"records": [{"eventName": "x"}]}),
    );
    assert_eq!(code, 400);
    assert!(body.contains("records[0]"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_answer_as_aws_then_stop() {
    let p = principal(1).await;
    // Faults are global to trailsim: use an operation no other test calls.
    let (code, _) = post(
        "/_trailsim/faults",
        &json!({"operation": "ListTrails", "kind": "server_error", "count": 2}),
    );
    assert_eq!(code, 200);
    for _ in 0..2 {
        let e = p.cloudtrail().list_trails().send().await.unwrap_err();
        let status = e.raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(500));
    }
    p.cloudtrail()
        .list_trails()
        .send()
        .await
        .expect("faults used up");

    post(
        "/_trailsim/faults",
        &json!({"operation": "GetTrail", "kind": "access_denied", "count": 1}),
    );
    let e = p
        .cloudtrail()
        .get_trail()
        .name("lab")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.into_service_error().meta().code(),
        Some("AccessDeniedException")
    );
    // AWS records denied calls, with their error.
    let found = p.lookup("GetTrail").await;
    assert_eq!(found[0].1["errorCode"], "AccessDeniedException");

    post(
        "/_trailsim/faults",
        &json!({"operation": "GetTrailStatus", "kind": "drop", "count": 1}),
    );
    let e = p
        .cloudtrail()
        .get_trail_status()
        .name("lab")
        .send()
        .await
        .unwrap_err();
    use aws_sdk_cloudtrail::error::SdkError;
    assert!(
        matches!(e, SdkError::DispatchFailure(_) | SdkError::ResponseError(_)),
        "a dropped connection is a transport failure, not an AWS error: {e:?}"
    );

    let (code, body) = post(
        "/_trailsim/faults",
        &json!({"kind": "gremlins", "count": 1}),
    );
    assert_eq!(code, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_reach_s3_object_reads_by_key_prefix_and_account_and_are_not_recorded() {
    let p = principal(1).await;
    let other = principal(1).await;
    let bucket = format!("faults-{}", p.account);
    for who in [&p, &other] {
        let b = format!("faults-{}", who.account);
        who.s3().create_bucket().bucket(&b).send().await.unwrap();
        for key in ["AWSLogs/d/digest.json.gz", "AWSLogs/l/log.json.gz"] {
            who.s3()
                .put_object()
                .bucket(&b)
                .key(key)
                .body(b"x".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    }
    post(
        "/_trailsim/faults",
        &json!({"operation": "GetObject", "kind": "access_denied", "seconds": 30.0,
                "key_prefix": "AWSLogs/d/", "account": p.account}),
    );
    let get = |who: &support::Principal, b: &str, key: &str| {
        let (s3, b, key) = (who.s3(), b.to_string(), key.to_string());
        async move { s3.get_object().bucket(b).key(key).send().await }
    };
    let e = get(&p, &bucket, "AWSLogs/d/digest.json.gz")
        .await
        .unwrap_err();
    assert_eq!(e.into_service_error().meta().code(), Some("AccessDenied"));
    // Other keys, and the same key in another account's calls, are read.
    get(&p, &bucket, "AWSLogs/l/log.json.gz").await.unwrap();
    let theirs = format!("faults-{}", other.account);
    get(&other, &theirs, "AWSLogs/d/digest.json.gz")
        .await
        .unwrap();
    // A listing under the prefix is a data call of its own operation.
    post(
        "/_trailsim/faults",
        &json!({"operation": "ListObjectsV2", "kind": "server_error", "count": 1,
                "key_prefix": "AWSLogs/", "account": p.account}),
    );
    let listing = p
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("AWSLogs/l/")
        .send()
        .await;
    assert!(listing.is_err(), "the injected 500 (SDK retries are off)");
    post(
        "/_trailsim/faults",
        &json!({"operation": "GetObject", "kind": "drop", "count": 1,
        "key_prefix": "AWSLogs/l/", "account": p.account}),
    );
    let dropped = match get(&p, &bucket, "AWSLogs/l/log.json.gz").await {
        Ok(o) => o.body.collect().await.is_err(),
        Err(_) => true,
    };
    assert!(dropped, "the body of a dropped read fails");
    // Data events are not management events: none of these calls is in event history.
    assert!(p.lookup("GetObject").await.is_empty());
    assert!(p.lookup("ListObjectsV2").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn kms_config_sts_and_organizations_calls_are_recorded() {
    let p = principal(3).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config"), "[default]\nregion = us-east-1\n").unwrap();
    let aws = |args: &[&str]| {
        let (k, s, t) = &p.credentials;
        let out = std::process::Command::new(testbed::awscli())
            .args(args)
            .env("AWS_CONFIG_FILE", dir.path().join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .env("AWS_ACCESS_KEY_ID", k)
            .env("AWS_SECRET_ACCESS_KEY", s)
            .env("AWS_SESSION_TOKEN", t)
            .env("AWS_ENDPOINT_URL", &support::trailsim().endpoint)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let key = aws(&["kms", "create-key"]);
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    aws(&["kms", "disable-key", "--key-id", &key_id]);
    aws(&[
        "configservice",
        "put-configuration-recorder",
        "--configuration-recorder",
        &format!(
            "name=default,roleARN=arn:aws:iam::{}:role/config",
            p.account
        ),
    ]);
    aws(&[
        "configservice",
        "delete-configuration-recorder",
        "--configuration-recorder-name",
        "default",
    ]);
    aws(&[
        "organizations",
        "create-organization",
        "--feature-set",
        "ALL",
    ]);
    // Answered by trailsim for the keys it issued, as STS answers.
    let me = aws(&["sts", "get-caller-identity"]);
    assert_eq!(me["Account"], p.account.as_str());
    assert_eq!(me["Arn"], p.arn.as_str());
    assert!(me["UserId"].as_str().unwrap().ends_with(":trailsim-tests"));

    for (name, source) in [
        ("DisableKey", "kms.amazonaws.com"),
        ("DeleteConfigurationRecorder", "config.amazonaws.com"),
        ("CreateOrganization", "organizations.amazonaws.com"),
        ("GetCallerIdentity", "sts.amazonaws.com"),
    ] {
        let found = p.lookup(name).await;
        assert_eq!(found.len(), 1, "{name}");
        let record = &found[0].1;
        assert_eq!(record["eventSource"], source, "{name}");
        assert_eq!(record["userIdentity"]["arn"], p.arn.as_str(), "{name}");
        assert!(
            record["userAgent"].as_str().unwrap().contains("aws-cli"),
            "{name}"
        );
    }
    let disabled = &p.lookup("DisableKey").await[0].1;
    assert_eq!(disabled["requestParameters"]["keyId"], key_id.as_str());
    assert_eq!(disabled["resources"][0]["type"], "AWS::KMS::Key");
    assert_eq!(p.lookup("GetCallerIdentity").await[0].1["readOnly"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_and_throttling_faults() {
    let p = principal(1).await;
    post(
        "/_trailsim/faults",
        &json!({"operation": "GetEventSelectors", "kind": "latency", "latency_ms": 400, "count": 1}),
    );
    let started = Instant::now();
    let e = p
        .cloudtrail()
        .get_event_selectors()
        .trail_name("missing")
        .send()
        .await;
    // A lower bound only: latency is added, never removed.
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(e.is_err(), "the call itself still reaches moto");
    post(
        "/_trailsim/faults",
        &json!({"operation": "DescribeTrails", "kind": "throttling", "count": 1}),
    );
    let e = p.cloudtrail().describe_trails().send().await.unwrap_err();
    assert_eq!(
        e.into_service_error().meta().code(),
        Some("ThrottlingException")
    );
    p.cloudtrail().describe_trails().send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn list_trails_names_every_region_and_describe_trails_takes_another_regions_arn() {
    let p = principal(3).await;
    let east = p.trail().await;
    let west_client = aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::config::Builder::from(&p.sdk)
            .region(aws_sdk_cloudtrail::config::Region::new("eu-west-1"))
            .build(),
    );
    let west = west_client
        .create_trail()
        .name("west")
        .s3_bucket_name(format!("trailsim-{}", p.account))
        .send()
        .await
        .expect("CreateTrail in eu-west-1")
        .trail_arn()
        .unwrap()
        .to_string();
    let ct = p.cloudtrail();
    let listed = ct.list_trails().send().await.unwrap();
    let homes: Vec<(String, String)> = listed
        .trails()
        .iter()
        .map(|t| {
            (
                t.trail_arn().unwrap().to_string(),
                t.home_region().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        homes.contains(&(east.clone(), "us-east-1".into())),
        "{homes:?}"
    );
    assert!(
        homes.contains(&(west.clone(), "eu-west-1".into())),
        "{homes:?}"
    );

    let described = |names: Vec<String>| {
        let ct = ct.clone();
        async move {
            ct.describe_trails()
                .set_trail_name_list(Some(names))
                .send()
                .await
                .unwrap()
                .trail_list()
                .iter()
                .map(|t| t.trail_arn().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    // By ARN, any region's trail; by name, only this region's (as AWS documents).
    assert_eq!(described(vec![west.clone()]).await, vec![west.clone()]);
    assert_eq!(
        described(vec![east.clone(), west.clone()]).await.len(),
        2,
        "both by ARN"
    );
    assert!(described(vec!["west".into()]).await.is_empty());
    let here = ct.describe_trails().send().await.unwrap();
    assert!(
        here.trail_list()
            .iter()
            .all(|t| t.trail_arn() != Some(west.as_str())),
        "a single-region trail of another region is not this region's"
    );
}
