//! Fidelity, proven by an independent client: the AWS CLI v1, unchanged, against trailsim.
//! `lookup-events` finds a StopLogging made by the test; `validate-logs` finds the delivered
//! chain valid, then reports a modified log file and a deleted digest as INVALID.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::{Value, json};
use support::{Principal, aws, post, principal};

fn control(path: &str) -> Value {
    let (code, body) = post(path, &json!({}));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_looks_up_events_and_validates_the_chain() {
    let p = principal(3).await;
    let bucket = format!("cli-{}", p.account);
    p.s3().create_bucket().bucket(&bucket).send().await.unwrap();
    let trail = p.create_trail("cli", &bucket, true, false).await;
    let start = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    p.cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    // Three intervals with activity: three linked digests at least.
    for _ in 0..3 {
        p.cloudtrail().describe_trails().send().await.unwrap();
        control("/_trailsim/deliver");
        control("/_trailsim/digest");
    }

    // lookup-events finds the StopLogging, with the test principal's ARN.
    p.cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    let (code, out) = aws(
        &p,
        &[
            "cloudtrail",
            "lookup-events",
            "--lookup-attributes",
            "AttributeKey=EventName,AttributeValue=StopLogging",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let found: Value = serde_json::from_str(&out).unwrap();
    let event = &found["Events"][0];
    assert_eq!(event["EventName"], "StopLogging");
    let record: Value = serde_json::from_str(event["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(record["userIdentity"]["arn"], p.arn.as_str());
    control("/_trailsim/deliver");
    control("/_trailsim/digest");

    let validate = |p: &Principal| {
        aws(
            p,
            &[
                "cloudtrail",
                "validate-logs",
                "--trail-arn",
                &trail,
                "--start-time",
                &start,
                "--verbose",
            ],
        )
    };
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("INVALID"), "{out}");
    assert!(out.contains("digest files valid"), "{out}");

    // Tamper: a log file listed in the newest digest, and a digest in the middle.
    let digests = p
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(format!("AWSLogs/{}/CloudTrail-Digest/", p.account))
        .send()
        .await
        .unwrap();
    let mut digest_keys: Vec<String> = digests
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    digest_keys.sort();
    assert!(digest_keys.len() >= 3, "{digest_keys:?}");
    let newest = p
        .s3()
        .get_object()
        .bucket(&bucket)
        .key(digest_keys.last().unwrap())
        .send()
        .await
        .unwrap();
    let gz = newest.body.collect().await.unwrap().into_bytes();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let newest: Value = serde_json::from_str(&raw).unwrap();
    let log = newest["logFiles"][0]["s3Object"]
        .as_str()
        .unwrap()
        .to_string();
    let mut forged = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut forged, br#"{"Records":[]}"#).unwrap();
    p.s3()
        .put_object()
        .bucket(&bucket)
        .key(&log)
        .body(forged.finish().unwrap().into())
        .send()
        .await
        .unwrap();
    let middle = &digest_keys[digest_keys.len() / 2];
    p.s3()
        .delete_object()
        .bucket(&bucket)
        .key(middle)
        .send()
        .await
        .unwrap();

    let (code, out) = validate(&p);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{log}\tINVALID: hash value doesn't match")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{middle}\tINVALID: not found")),
        "{out}"
    );
}
