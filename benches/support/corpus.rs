//! A generated CloudTrail corpus for the log processing bench: gzipped `{"Records":[...]}`
//! files of 2 to 5 MB, records written from the shapes AWS writes (see
//! ../shared/corpus/cloudtrail): mostly reads (S3 GetObject data events, DescribeInstances,
//! AssumeRole, KMS Decrypt, SSM GetParameter, ...), some writes, and about one in a thousand
//! that the shipped detections flag (StopLogging, PutBucketLifecycle shortening the watched
//! bucket's retention, PutBucketPolicy on it, DisableKey on the trail key, ...).

use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use std::io::Write;

use crate::rng::Rng;

pub const ACCOUNT: &str = "123456789012";
pub const BUCKET: &str = "trail-logs-123456789012";
pub const KEY_ID: &str = "6f1f3e5c-2a4b-4c1d-9e8f-0a1b2c3d4e5f";

// ---------------------------------------------------------------- corpus

pub const USER_AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0-18-amd64 exe/x86_64.debian.12 prompt/off command/s3.cp",
    "aws-sdk-java/1.12.661 Linux/5.10.210-201.852.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS java/17.0.10 vendor/Amazon.com_Inc. cfg/retry-mode/standard",
    "Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#5.10.210 md/arch#x86_64 lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.51",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.40.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.0 md/GOOS#linux md/GOARCH#amd64",
    "console.amazonaws.com",
    "aws-sdk-go/1.50.30 (go1.21.6; linux; amd64)",
];
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-1",
    "us-east-1",
    "eu-west-1",
    "us-west-2",
];
pub const ROLES: &[&str] = &[
    "app-server",
    "ci-deploy",
    "data-pipeline",
    "OrganizationAccountAccessRole",
    "eks-node-group",
];
pub const BUCKETS: &[&str] = &[
    "acme-data-lake-raw",
    "acme-web-assets",
    "acme-backups-eu",
    "acme-ml-artifacts",
];

/// Who called: an assumed role half of the time, else an IAM user or a service.
fn identity(rng: &mut Rng) -> (Value, String) {
    match rng.below(10) {
        0..=4 => {
            let role = rng.pick(ROLES);
            let session = format!("{}-{}", role, rng.hex(10));
            let role_id = format!("AROA{}", rng.upper(17));
            (
                json!({
                    "type": "AssumedRole",
                    "principalId": format!("{role_id}:{session}"),
                    "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"),
                    "accountId": ACCOUNT,
                    "accessKeyId": format!("ASIA{}", rng.upper(16)),
                    "sessionContext": {
                        "sessionIssuer": {
                            "type": "Role",
                            "principalId": role_id,
                            "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                            "accountId": ACCOUNT,
                            "userName": role
                        },
                        "webIdFederationData": {},
                        "attributes": {
                            "creationDate": "2026-11-20T07:41:12Z",
                            "mfaAuthenticated": "false"
                        }
                    }
                }),
                rng.pick(USER_AGENTS).to_string(),
            )
        }
        5..=7 => {
            let user = rng.pick(&["alice", "bert-jan", "deploy-bot", "ops"]);
            (
                json!({
                    "type": "IAMUser",
                    "principalId": format!("AIDA{}", rng.upper(17)),
                    "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
                    "accountId": ACCOUNT,
                    "accessKeyId": format!("AKIA{}", rng.upper(16)),
                    "userName": user
                }),
                rng.pick(USER_AGENTS).to_string(),
            )
        }
        _ => {
            let service = rng.pick(&[
                "cloudtrail.amazonaws.com",
                "config.amazonaws.com",
                "lambda.amazonaws.com",
            ]);
            (
                json!({"type": "AWSService", "invokedBy": service}),
                service.to_string(),
            )
        }
    }
}

fn tls(host: &str) -> Value {
    json!({
        "tlsVersion": "TLSv1.3",
        "cipherSuite": "TLS_AES_128_GCM_SHA256",
        "clientProvidedHostHeader": host
    })
}

fn s3_extra(rng: &mut Rng, bytes_out: u64) -> Value {
    json!({
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": 0,
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": rng.b64(76),
        "bytesTransferredOut": bytes_out
    })
}

/// One record; `tamper` picks one that the shipped detections flag.
fn record(rng: &mut Rng, time: &str, tamper: bool) -> Value {
    let (who, agent) = identity(rng);
    let region = rng.pick(REGIONS);
    let ip = rng.ip();
    let mut r = json!({
        "eventVersion": "1.09",
        "userIdentity": who,
        "eventTime": time,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestID": rng.uuid(),
        "eventID": rng.uuid(),
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    });
    let o = r.as_object_mut().unwrap();
    let mut set = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    let (source, name, read_only) = if tamper {
        match rng.below(6) {
            0 => {
                set(
                    "requestParameters",
                    json!({"name": format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail")}),
                );
                set("responseElements", Value::Null);
                set("tlsDetails", tls("cloudtrail.us-east-1.amazonaws.com"));
                ("cloudtrail.amazonaws.com", "StopLogging", false)
            }
            1 => {
                set(
                    "requestParameters",
                    json!({
                        "lifecycle": "",
                        "bucketName": BUCKET,
                        "LifecycleConfiguration": {
                            "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
                            "Rule": {"Status": "Enabled", "Filter": {"Prefix": ""},
                                     "Expiration": {"Days": 1}, "ID": "nuke-logs"}
                        },
                        "Host": format!("{BUCKET}.s3.us-east-1.amazonaws.com")
                    }),
                );
                set("responseElements", Value::Null);
                set("additionalEventData", s3_extra(rng, 0));
                set(
                    "resources",
                    json!([{"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{BUCKET}")}]),
                );
                ("s3.amazonaws.com", "PutBucketLifecycle", false)
            }
            2 => {
                set(
                    "requestParameters",
                    json!({
                        "bucketPolicy": {"Version": "2012-10-17", "Statement": [
                            {"Sid": "Deny", "Effect": "Deny", "Principal": {"Service": "cloudtrail.amazonaws.com"},
                             "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{BUCKET}/*")}]},
                        "bucketName": BUCKET,
                        "Host": format!("{BUCKET}.s3.amazonaws.com"),
                        "policy": ""
                    }),
                );
                set("responseElements", Value::Null);
                set("additionalEventData", s3_extra(rng, 0));
                ("s3.amazonaws.com", "PutBucketPolicy", false)
            }
            3 => {
                set(
                    "requestParameters",
                    json!({"keyId": format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}")}),
                );
                set("responseElements", Value::Null);
                ("kms.amazonaws.com", "DisableKey", false)
            }
            4 => {
                set(
                    "requestParameters",
                    json!({"trailName": "org-trail", "eventSelectors": [
                    {"readWriteType": "All", "includeManagementEvents": false, "dataResources": [], "excludeManagementEventSources": []}]}),
                );
                set(
                    "responseElements",
                    json!({"trailARN": format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail")}),
                );
                ("cloudtrail.amazonaws.com", "PutEventSelectors", false)
            }
            _ => {
                set("errorCode", json!("TrailNotFoundException"));
                set(
                    "errorMessage",
                    json!(format!(
                        "Unknown trail: arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/x for the user: {ACCOUNT}"
                    )),
                );
                set("requestParameters", json!({"name": "x"}));
                set("responseElements", Value::Null);
                ("cloudtrail.amazonaws.com", "DeleteTrail", false)
            }
        }
    } else {
        match rng.below(100) {
            // S3 data events dominate real trails that record them.
            0..=29 => {
                let bucket = rng.pick(BUCKETS);
                let key = format!(
                    "prefix/{}/part-{:05}-{}.snappy.parquet",
                    rng.hex(8),
                    rng.below(100_000),
                    rng.uuid()
                );
                set(
                    "requestParameters",
                    json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "key": key}),
                );
                set("responseElements", Value::Null);
                let bytes = rng.below(50_000_000);
                set("additionalEventData", s3_extra(rng, bytes));
                set(
                    "resources",
                    json!([
                    {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}")},
                    {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]),
                );
                set("managementEvent", json!(false));
                set("eventCategory", json!("Data"));
                set(
                    "tlsDetails",
                    tls(&format!("{bucket}.s3.{region}.amazonaws.com")),
                );
                ("s3.amazonaws.com", "GetObject", true)
            }
            30..=37 => {
                let bucket = rng.pick(BUCKETS);
                let key = format!("uploads/{}/{}.json", rng.hex(12), rng.uuid());
                set(
                    "requestParameters",
                    json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "key": key, "x-amz-server-side-encryption": "aws:kms"}),
                );
                set(
                    "responseElements",
                    json!({"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": format!("arn:aws:kms:{region}:{ACCOUNT}:key/{}", rng.uuid())}),
                );
                set("additionalEventData", s3_extra(rng, 0));
                set(
                    "resources",
                    json!([
                    {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}")},
                    {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]),
                );
                set("managementEvent", json!(false));
                set("eventCategory", json!("Data"));
                ("s3.amazonaws.com", "PutObject", false)
            }
            38..=52 => {
                let ids: Vec<Value> = (0..rng.below(4) + 1)
                    .map(|_| json!({"instanceId": format!("i-0{}", rng.hex(16))}))
                    .collect();
                set(
                    "requestParameters",
                    json!({
                        "instancesSet": {"items": ids},
                        "filterSet": {"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]}
                    }),
                );
                set("responseElements", Value::Null);
                set("readOnly", json!(true));
                set("tlsDetails", tls(&format!("ec2.{region}.amazonaws.com")));
                ("ec2.amazonaws.com", "DescribeInstances", true)
            }
            53..=62 => {
                let role = rng.pick(ROLES);
                let session = format!("session-{}", rng.hex(12));
                let key = format!("ASIA{}", rng.upper(16));
                set(
                    "requestParameters",
                    json!({
                        "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                        "roleSessionName": session,
                        "durationSeconds": 3600
                    }),
                );
                set(
                    "responseElements",
                    json!({
                        "credentials": {"accessKeyId": key, "sessionToken": rng.b64(96), "expiration": "Nov 24, 2026, 9:41:12 AM"},
                        "assumedRoleUser": {"assumedRoleId": format!("AROA{}:{session}", rng.upper(17)),
                                            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}")}
                    }),
                );
                set(
                    "resources",
                    json!([{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": format!("arn:aws:iam::{ACCOUNT}:role/{role}")}]),
                );
                set("sharedEventID", json!(rng.uuid()));
                set("tlsDetails", tls("sts.amazonaws.com"));
                ("sts.amazonaws.com", "AssumeRole", true)
            }
            63..=74 => {
                let key = format!("arn:aws:kms:{region}:{ACCOUNT}:key/{}", rng.uuid());
                set(
                    "requestParameters",
                    json!({
                        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                        "encryptionContext": {"aws:s3:arn": format!("arn:aws:s3:::{}/{}", rng.pick(BUCKETS), rng.hex(24))}
                    }),
                );
                set("responseElements", Value::Null);
                set(
                    "resources",
                    json!([{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}]),
                );
                set("readOnly", json!(true));
                set("vpcEndpointId", json!(format!("vpce-0{}", rng.hex(16))));
                (
                    "kms.amazonaws.com",
                    rng.pick(&["Decrypt", "GenerateDataKey"]),
                    true,
                )
            }
            75..=82 => {
                let name = format!("/app/{}/{}", rng.pick(ROLES), rng.hex(8));
                set(
                    "requestParameters",
                    json!({"name": name, "withDecryption": true}),
                );
                set("responseElements", Value::Null);
                set(
                    "resources",
                    json!([{"accountId": ACCOUNT, "ARN": format!("arn:aws:ssm:{region}:{ACCOUNT}:parameter{name}")}]),
                );
                set("tlsDetails", tls(&format!("ssm.{region}.amazonaws.com")));
                ("ssm.amazonaws.com", "GetParameter", true)
            }
            83..=86 => {
                let name = format!("/app/{}/{}", rng.pick(ROLES), rng.hex(8));
                set(
                    "requestParameters",
                    json!({"name": name, "value": "HIDDEN_DUE_TO_SECURITY_REASONS", "type": "SecureString", "overwrite": true, "tier": "Standard"}),
                );
                set(
                    "responseElements",
                    json!({"version": rng.below(40) + 1, "tier": "Standard"}),
                );
                ("ssm.amazonaws.com", "PutParameter", false)
            }
            87..=89 => {
                set(
                    "requestParameters",
                    json!({
                        "instancesSet": {"items": [{"imageId": format!("ami-0{}", rng.hex(16)), "minCount": 1, "maxCount": 1}]},
                        "instanceType": "m6i.large",
                        "blockDeviceMapping": {},
                        "monitoring": {"enabled": false},
                        "disableApiTermination": false,
                        "subnetId": format!("subnet-0{}", rng.hex(16)),
                        "iamInstanceProfile": {"arn": format!("arn:aws:iam::{ACCOUNT}:instance-profile/app-server")},
                        "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": [{"key": "Name", "value": "app"}]}]}
                    }),
                );
                set(
                    "responseElements",
                    json!({
                        "requestId": rng.uuid(),
                        "reservationId": format!("r-0{}", rng.hex(16)),
                        "ownerId": ACCOUNT,
                        "instancesSet": {"items": [{
                            "instanceId": format!("i-0{}", rng.hex(16)),
                            "imageId": format!("ami-0{}", rng.hex(16)),
                            "instanceState": {"code": 0, "name": "pending"},
                            "privateDnsName": format!("ip-10-0-{}-{}.ec2.internal", rng.below(255), rng.below(255)),
                            "instanceType": "m6i.large",
                            "launchTime": 1_795_000_000_000u64,
                            "placement": {"availabilityZone": format!("{region}a"), "tenancy": "default"},
                            "subnetId": format!("subnet-0{}", rng.hex(16)),
                            "vpcId": format!("vpc-0{}", rng.hex(16)),
                            "privateIpAddress": format!("10.0.{}.{}", rng.below(255), rng.below(255))
                        }]}
                    }),
                );
                ("ec2.amazonaws.com", "RunInstances", false)
            }
            90..=93 => {
                set(
                    "requestParameters",
                    json!({"trailNameList": [], "includeShadowTrails": true}),
                );
                set("responseElements", Value::Null);
                ("cloudtrail.amazonaws.com", "DescribeTrails", true)
            }
            94..=96 => {
                // Touches the watched bucket without matching any detection.
                set(
                    "requestParameters",
                    json!({"bucketName": BUCKET, "Host": format!("{BUCKET}.s3.us-east-1.amazonaws.com"), "acl": ""}),
                );
                set("responseElements", Value::Null);
                set("additionalEventData", s3_extra(rng, 552));
                set(
                    "resources",
                    json!([{"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{BUCKET}")}]),
                );
                ("s3.amazonaws.com", "GetBucketAcl", true)
            }
            _ => {
                set("errorCode", json!("AccessDenied"));
                set(
                    "errorMessage",
                    json!(format!(
                        "User: arn:aws:sts::{ACCOUNT}:assumed-role/app-server/x is not authorized to perform: iam:ListRoles"
                    )),
                );
                set("requestParameters", Value::Null);
                set("responseElements", Value::Null);
                ("iam.amazonaws.com", "ListRoles", true)
            }
        }
    };
    set("eventSource", json!(source));
    set("eventName", json!(name));
    set("readOnly", json!(read_only));
    r
}

pub struct Corpus {
    /// Gzipped log files.
    pub files: Vec<Vec<u8>>,
    pub uncompressed: u64,
    pub records: u64,
    pub tamper: u64,
}

pub fn corpus(megabytes: u64) -> Corpus {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let target = megabytes << 20;
    let mut c = Corpus {
        files: Vec::new(),
        uncompressed: 0,
        records: 0,
        tamper: 0,
    };
    let mut second = 0u64;
    while c.uncompressed < target {
        // 2 to 5 MB per file, like a busy account's five-minute delivery.
        let size = (2 << 20) + rng.below(3 << 20);
        let mut text = Vec::with_capacity(size as usize + 8192);
        text.extend_from_slice(b"{\"Records\":[");
        let mut first = true;
        while (text.len() as u64) < size {
            second += 1;
            let time = format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}Z",
                1 + (second / 86_400) % 28,
                (second / 3600) % 24,
                (second / 60) % 60,
                second % 60
            );
            let tamper = rng.below(1000) == 0;
            if !first {
                text.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut text, &record(&mut rng, &time, tamper)).unwrap();
            c.records += 1;
            c.tamper += tamper as u64;
        }
        text.extend_from_slice(b"]}");
        c.uncompressed += text.len() as u64;
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&text).unwrap();
        c.files.push(gz.finish().unwrap());
    }
    c
}
