//! Organization trails: a management account's trail delivers every member account's events,
//! log files and digests under `AWSLogs/<o-id>/<member>/`, and nothing of accounts outside
//! the organization. The AWS CLI validates a member's chain.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::{Value, json};
use support::{Principal, aws, post, principal, principal_in};

fn control(path: &str) {
    let (code, body) = post(path, &json!({}));
    assert_eq!(code, 200, "{body}");
}

fn cli_json(p: &Principal, args: &[&str]) -> Value {
    let (code, out) = aws(p, args);
    assert_eq!(code, 0, "aws {args:?}: {out}");
    serde_json::from_str(&out).unwrap()
}

/// Every record of the files under `prefix`.
async fn records_under(p: &Principal, bucket: &str, prefix: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for key in p.keys(bucket, prefix).await {
        let file = p.delivered_json(bucket, &key).await;
        all.extend(file["Records"].as_array().unwrap().iter().cloned());
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_trail_delivers_each_members_events_under_the_org_id() {
    let management = principal(3).await;
    let org = cli_json(
        &management,
        &[
            "organizations",
            "create-organization",
            "--feature-set",
            "ALL",
        ],
    );
    let org_id = org["Organization"]["Id"].as_str().unwrap().to_string();
    let created = cli_json(
        &management,
        &[
            "organizations",
            "create-account",
            "--email",
            "member@example.com",
            "--account-name",
            "member",
        ],
    );
    let member_id = created["CreateAccountStatus"]["AccountId"]
        .as_str()
        .unwrap()
        .to_string();
    let member = principal_in(member_id.clone(), 3).await;
    let outsider = principal(3).await;

    let bucket = format!("org-{}", management.account);
    management
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let trail = management
        .cloudtrail()
        .create_trail()
        .name("org")
        .s3_bucket_name(&bucket)
        .is_organization_trail(true)
        .enable_log_file_validation(true)
        .send()
        .await
        .expect("CreateTrail")
        .trail_arn()
        .unwrap()
        .to_string();
    let start = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    management
        .cloudtrail()
        .start_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    let member_bucket = format!("member-{member_id}");
    member
        .s3()
        .create_bucket()
        .bucket(&member_bucket)
        .send()
        .await
        .unwrap();
    let outsider_bucket = format!("outsider-{}", outsider.account);
    outsider
        .s3()
        .create_bucket()
        .bucket(&outsider_bucket)
        .send()
        .await
        .unwrap();
    control("/_trailsim/deliver");
    control("/_trailsim/digest");

    // The member's own events, in its own folder under the organization.
    let member_root = format!("AWSLogs/{org_id}/{member_id}/");
    let records = records_under(
        &member,
        &bucket,
        &format!("{member_root}CloudTrail/us-east-1/"),
    )
    .await;
    let created_bucket = records
        .iter()
        .find(|r| r["eventName"] == "CreateBucket")
        .unwrap_or_else(|| panic!("the member's CreateBucket is delivered: {records:?}"));
    assert_eq!(created_bucket["recipientAccountId"], member_id.as_str());
    assert_eq!(created_bucket["userIdentity"]["arn"], member.arn.as_str());
    assert!(
        records
            .iter()
            .all(|r| r["recipientAccountId"] == member_id.as_str()),
        "a member's folder holds only its events"
    );
    let management_records = records_under(
        &management,
        &bucket,
        &format!("AWSLogs/{org_id}/{}/CloudTrail/", management.account),
    )
    .await;
    assert!(
        management_records
            .iter()
            .any(|r| r["eventName"] == "StartLogging"),
        "{management_records:?}"
    );

    // Nothing outside the organization's folders, and nothing of the outsider.
    let all = management.keys(&bucket, "").await;
    assert!(
        all.iter()
            .all(|k| k.starts_with(&format!("AWSLogs/{org_id}/"))),
        "{all:?}"
    );
    assert!(
        !all.iter().any(|k| k.contains(&outsider.account)),
        "{all:?}"
    );

    // A digest per member account, naming the member and the management account's trail.
    let digest_key = all
        .iter()
        .find(|k| k.starts_with(&format!("{member_root}CloudTrail-Digest/us-east-1/")))
        .unwrap_or_else(|| panic!("a digest for the member: {all:?}"));
    assert!(digest_key.contains(&format!(
        "{member_id}_CloudTrail-Digest_us-east-1_org_us-east-1_"
    )));
    let digest = management.delivered_json(&bucket, digest_key).await;
    assert_eq!(digest["awsAccountId"], member_id.as_str());
    let listed: Vec<&str> = digest["logFiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["s3Object"].as_str().unwrap())
        .collect();
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|k| k.starts_with(&member_root)),
        "{listed:?}"
    );

    // The AWS CLI finds the organization and validates the member's chain.
    let (code, out) = aws(
        &management,
        &[
            "cloudtrail",
            "validate-logs",
            "--trail-arn",
            &trail,
            "--account-id",
            &member_id,
            "--start-time",
            &start,
            "--verbose",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1/1 digest files valid"), "{out}");
    assert!(!out.contains("INVALID"), "{out}");
}
