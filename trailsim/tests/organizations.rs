//! Organization trails: a management account's trail delivers every member account's events,
//! log files and digests under `AWSLogs/<o-id>/<member>/`, and nothing of accounts outside
//! the organization. The AWS CLI validates a member's chain. Active members see the trail as
//! AWS shows it (DescribeTrails, ListTrails, its status and selectors by ARN); outsiders and
//! closed members do not. AssumeRole into a member needs the role, and its external id.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use aws_sdk_cloudtrail::error::ProvideErrorMetadata;
use aws_sdk_cloudtrail::types::{EventSelector, ReadWriteType};
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

/// An organization managed by `management`'s account, with one member account created in it
/// (moto gives it an `OrganizationAccountAccessRole`): the organization's id and the member's.
fn organization(management: &Principal) -> (String, String) {
    let org = cli_json(
        management,
        &[
            "organizations",
            "create-organization",
            "--feature-set",
            "ALL",
        ],
    );
    let org_id = org["Organization"]["Id"].as_str().unwrap().to_string();
    let created = cli_json(
        management,
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
    (org_id, member_id)
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
    let (org_id, member_id) = organization(&management);
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

/// A logging, multi-region organization trail "org" of `management`'s account, with a prefix,
/// a KMS key, validation and write-only selectors; returns its ARN.
async fn organization_trail(management: &Principal) -> String {
    let bucket = format!("org-{}", management.account);
    management
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let kms = format!(
        "arn:aws:kms:us-east-1:{}:key/11111111-2222-3333-4444-555555555555",
        management.account
    );
    let arn = management
        .cloudtrail()
        .create_trail()
        .name("org")
        .s3_bucket_name(&bucket)
        .s3_key_prefix("audit")
        .kms_key_id(&kms)
        .is_organization_trail(true)
        .is_multi_region_trail(true)
        .enable_log_file_validation(true)
        .send()
        .await
        .expect("CreateTrail")
        .trail_arn()
        .unwrap()
        .to_string();
    let write_only = EventSelector::builder()
        .read_write_type(ReadWriteType::WriteOnly)
        .include_management_events(true)
        .build();
    management
        .cloudtrail()
        .put_event_selectors()
        .trail_name(&arn)
        .event_selectors(write_only)
        .send()
        .await
        .expect("PutEventSelectors");
    management
        .cloudtrail()
        .start_logging()
        .name(&arn)
        .send()
        .await
        .unwrap();
    arn
}

/// `p`'s CloudTrail client in `region`.
fn cloudtrail_in(p: &Principal, region: &str) -> aws_sdk_cloudtrail::Client {
    aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::config::Builder::from(&p.sdk)
            .region(aws_sdk_cloudtrail::config::Region::new(region.to_string()))
            .build(),
    )
}

/// The ARNs DescribeTrails answers `p` in `region` (shadow trails included).
async fn described(p: &Principal, region: &str) -> Vec<String> {
    let out = cloudtrail_in(p, region)
        .describe_trails()
        .include_shadow_trails(true)
        .send()
        .await
        .expect("DescribeTrails");
    out.trail_list()
        .iter()
        .filter_map(|t| t.trail_arn().map(str::to_string))
        .collect()
}

/// GetTrailStatus of `name` as `p`: IsLogging, or the error code.
async fn is_logging(p: &Principal, name: &str) -> Result<bool, String> {
    match p.cloudtrail().get_trail_status().name(name).send().await {
        Ok(s) => Ok(s.is_logging().unwrap()),
        Err(e) => Err(e.code().unwrap_or("no code").to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_see_the_organization_trail_and_its_owners_status() {
    let management = principal(3).await;
    let (_, member_id) = organization(&management);
    let trail = organization_trail(&management).await;
    let member = principal_in(member_id, 3).await;
    let outsider = principal(3).await;

    // DescribeTrails in any region: the owner's trail as moto describes it to the owner.
    for region in ["us-east-1", "eu-west-1"] {
        let out = cloudtrail_in(&member, region)
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .unwrap();
        let seen = out
            .trail_list()
            .iter()
            .find(|t| t.trail_arn() == Some(trail.as_str()))
            .unwrap_or_else(|| panic!("{region}: the member sees the trail: {out:?}"));
        assert_eq!(seen.name(), Some("org"));
        assert_eq!(seen.home_region(), Some("us-east-1"));
        assert_eq!(
            seen.s3_bucket_name(),
            Some(format!("org-{}", management.account).as_str())
        );
        assert_eq!(seen.s3_key_prefix(), Some("audit"));
        assert!(seen.kms_key_id().unwrap().starts_with("arn:aws:kms:"));
        assert_eq!(seen.is_organization_trail(), Some(true));
        assert_eq!(seen.is_multi_region_trail(), Some(true));
        assert_eq!(seen.log_file_validation_enabled(), Some(true));
        assert_eq!(seen.include_global_service_events(), Some(true));
    }
    // Organization trails are shadow trails in a member; a list names them by ARN only.
    let own_only = member
        .cloudtrail()
        .describe_trails()
        .include_shadow_trails(false)
        .send()
        .await
        .unwrap();
    assert!(own_only.trail_list().is_empty(), "{own_only:?}");
    let by_arn = member
        .cloudtrail()
        .describe_trails()
        .trail_name_list(&trail)
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.trail_list().len(), 1, "{by_arn:?}");
    let by_name = member
        .cloudtrail()
        .describe_trails()
        .trail_name_list("org")
        .send()
        .await
        .unwrap();
    assert!(by_name.trail_list().is_empty(), "{by_name:?}");

    let listed = member.cloudtrail().list_trails().send().await.unwrap();
    let entry = listed
        .trails()
        .iter()
        .find(|t| t.trail_arn() == Some(trail.as_str()))
        .unwrap_or_else(|| panic!("ListTrails: {listed:?}"));
    assert_eq!(entry.name(), Some("org"));
    assert_eq!(entry.home_region(), Some("us-east-1"));

    // Status and selectors by ARN are the owner's; the bare name is the member's own (none).
    assert_eq!(is_logging(&member, &trail).await, Ok(true));
    let selectors = member
        .cloudtrail()
        .get_event_selectors()
        .trail_name(&trail)
        .send()
        .await
        .expect("GetEventSelectors by ARN from the member");
    assert_eq!(selectors.trail_arn(), Some(trail.as_str()));
    assert_eq!(
        selectors.event_selectors()[0].read_write_type(),
        Some(&ReadWriteType::WriteOnly)
    );
    assert_eq!(
        is_logging(&member, "org").await,
        Err("TrailNotFoundException".to_string())
    );

    // The owner stops it: the member sees it at once.
    management
        .cloudtrail()
        .stop_logging()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert_eq!(is_logging(&member, &trail).await, Ok(false));
    let status = member
        .cloudtrail()
        .get_trail_status()
        .name(&trail)
        .send()
        .await
        .unwrap();
    assert!(status.stop_logging_time().is_some(), "{status:?}");

    // An account outside the organization sees nothing of it.
    for region in ["us-east-1", "eu-west-1"] {
        assert!(!described(&outsider, region).await.contains(&trail));
    }
    let listed = outsider.cloudtrail().list_trails().send().await.unwrap();
    assert!(listed.trails().is_empty(), "{listed:?}");
    assert_eq!(
        is_logging(&outsider, &trail).await,
        Err("TrailNotFoundException".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_member_no_longer_sees_the_organization_trail() {
    let management = principal(3).await;
    let (_, member_id) = organization(&management);
    let trail = organization_trail(&management).await;
    let member = principal_in(member_id.clone(), 3).await;
    assert!(described(&member, "us-east-1").await.contains(&trail));

    // moto's CloseAccount suspends the account at once (AWS: PENDING_CLOSURE first).
    let (code, out) = aws(
        &management,
        &["organizations", "close-account", "--account-id", &member_id],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!described(&member, "us-east-1").await.contains(&trail));
    assert_eq!(
        is_logging(&member, &trail).await,
        Err("TrailNotFoundException".to_string())
    );
}

/// AssumeRole of `role_arn` as `p`: the assumed role's ARN, or HTTP status, code and message.
async fn assume(
    p: &Principal,
    role_arn: &str,
    external_id: Option<&str>,
) -> Result<String, (u16, String, String)> {
    let out = aws_sdk_sts::Client::new(&p.sdk)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("audit")
        .set_external_id(external_id.map(str::to_string))
        .send()
        .await;
    match out {
        Ok(out) => Ok(out.assumed_role_user().unwrap().arn().to_string()),
        Err(e) => Err((
            e.raw_response().map_or(0, |r| r.status().as_u16()),
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        )),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_needs_the_role_and_its_external_id() {
    let management = principal(3).await;
    let (_, member_id) = organization(&management);

    // No such role in the member: refused as STS refuses it, and recorded so.
    let missing = format!("arn:aws:iam::{member_id}:role/trailwarden-audit");
    let message = format!(
        "User: {} is not authorized to perform: sts:AssumeRole on resource: {missing}",
        management.arn
    );
    assert_eq!(
        assume(&management, &missing, None).await,
        Err((403, "AccessDenied".to_string(), message))
    );
    let (_, record) = &management.lookup("AssumeRole").await[0];
    assert_eq!(record["errorCode"], "AccessDenied");
    assert_eq!(record["requestParameters"]["roleArn"], missing.as_str());
    // The role Organizations made in the new account.
    let made = format!("arn:aws:iam::{member_id}:role/OrganizationAccountAccessRole");
    let assumed = assume(&management, &made, None).await.unwrap();
    assert!(assumed.contains(&format!("{member_id}:assumed-role/")));

    // A role whose trust policy asks for an external id.
    let member = principal_in(member_id.clone(), 3).await;
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", management.account)},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "s3cret"}}}]});
    cli_json(
        &member,
        &[
            "iam",
            "create-role",
            "--role-name",
            "audit-external",
            "--assume-role-policy-document",
            &trust.to_string(),
        ],
    );
    let role = format!("arn:aws:iam::{member_id}:role/audit-external");
    for wrong in [None, Some("guess")] {
        let refused = assume(&management, &role, wrong).await.unwrap_err();
        assert_eq!(
            (refused.0, refused.1.as_str()),
            (403, "AccessDenied"),
            "{wrong:?}"
        );
    }
    assert!(assume(&management, &role, Some("s3cret")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delegated_administrator_creates_and_stops_the_organization_trail_owned_by_management() {
    let management = principal(3).await;
    let (_, admin_id) = organization(&management);
    let admin = principal_in(admin_id.clone(), 3).await;
    management
        .cloudtrail()
        .register_organization_delegated_admin()
        .member_account_id(&admin_id)
        .send()
        .await
        .expect("RegisterOrganizationDelegatedAdmin");
    let bucket = format!("org-by-admin-{}", admin.account);
    admin
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let arn = admin
        .cloudtrail()
        .create_trail()
        .name("org")
        .s3_bucket_name(&bucket)
        .is_organization_trail(true)
        .is_multi_region_trail(true)
        .send()
        .await
        .expect("CreateTrail by the delegated administrator")
        .trail_arn()
        .unwrap()
        .to_string();
    assert!(
        arn.contains(&format!(":{}:trail/org", management.account)),
        "owned by the management account: {arn}"
    );
    assert!(described(&management, "us-east-1").await.contains(&arn));
    assert!(
        described(&admin, "us-east-1").await.contains(&arn),
        "the administrator sees it as a member"
    );
    admin
        .cloudtrail()
        .start_logging()
        .name(&arn)
        .send()
        .await
        .expect("StartLogging by the delegated administrator");
    assert_eq!(is_logging(&management, &arn).await, Ok(true));
    admin
        .cloudtrail()
        .stop_logging()
        .name(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(is_logging(&management, &arn).await, Ok(false));

    // A member that is not the administrator changes nothing of it.
    let other_id = {
        let created = cli_json(
            &management,
            &[
                "organizations",
                "create-account",
                "--email",
                "other@example.com",
                "--account-name",
                "other",
            ],
        );
        created["CreateAccountStatus"]["AccountId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let other = principal_in(other_id, 3).await;
    assert!(
        other
            .cloudtrail()
            .start_logging()
            .name(&arn)
            .send()
            .await
            .is_err()
    );
    assert_eq!(is_logging(&management, &arn).await, Ok(false));
}
