//! What trailsim's integration tests share: one trailsim in front of the test bed's moto per
//! test binary, a test principal in a fresh account, the SDK pointed at trailsim, and the
//! control API.

#![allow(dead_code)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_s3::config::Credentials;
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;
use testbed::Guarded;

pub fn trailsim() -> &'static Guarded {
    static SIM: OnceLock<Guarded> = OnceLock::new();
    SIM.get_or_init(|| {
        testbed::start_guarded(
            Path::new(env!("CARGO_BIN_EXE_trailsim")),
            &[
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &testbed::moto().endpoint,
            ],
            &[],
        )
    })
}

pub async fn config(credentials: Credentials, attempts: u32) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&trailsim().endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(attempts))
        .load()
        .await
}

/// A test principal in a fresh account: AssumeRole through trailsim, so it learns the keys.
pub struct Principal {
    pub account: String,
    pub arn: String,
    pub sdk: SdkConfig,
    /// Access key, secret, session token: for other clients (the AWS CLI).
    pub credentials: (String, String, String),
}

pub async fn principal(attempts: u32) -> Principal {
    principal_in(testbed::fresh_account(), attempts).await
}

/// A test principal in `account` (e.g. an organization's member account).
pub async fn principal_in(account: String, attempts: u32) -> Principal {
    let base = config(
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "not-a-secret", None, None, "tests"),
        3,
    )
    .await;
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/auditor"))
        .role_session_name("trailsim-tests")
        .send()
        .await
        .expect("AssumeRole through trailsim");
    let c = out.credentials().unwrap();
    let arn = out.assumed_role_user().unwrap().arn().to_string();
    let sdk = config(
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "tests",
        ),
        attempts,
    )
    .await;
    let credentials = (
        c.access_key_id().to_string(),
        c.secret_access_key().to_string(),
        c.session_token().to_string(),
    );
    Principal {
        account,
        arn,
        sdk,
        credentials,
    }
}

impl Principal {
    pub fn cloudtrail(&self) -> aws_sdk_cloudtrail::Client {
        aws_sdk_cloudtrail::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .build(),
        )
    }

    /// Every object key under `prefix` in `bucket`, sorted (digest keys end in their end
    /// time, so this is also chronological).
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let out = self
            .s3()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// A delivered (gzipped) log or digest file, uncompressed, as JSON.
    pub async fn delivered_json(&self, bucket: &str, key: &str) -> Value {
        let object = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let gz = object.body.collect().await.unwrap().into_bytes();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The records LookupEvents returns for `event_name`, parsed.
    /// Paced at two calls per second: trailsim enforces LookupEvents' real limit.
    pub async fn lookup(&self, event_name: &str) -> Vec<(aws_sdk_cloudtrail::types::Event, Value)> {
        tokio::time::sleep(std::time::Duration::from_millis(550)).await;
        let out = self
            .cloudtrail()
            .lookup_events()
            .lookup_attributes(
                LookupAttribute::builder()
                    .attribute_key(LookupAttributeKey::EventName)
                    .attribute_value(event_name)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("LookupEvents");
        out.events()
            .iter()
            .map(|e| {
                let record = serde_json::from_str(e.cloud_trail_event().unwrap()).unwrap();
                (e.clone(), record)
            })
            .collect()
    }

    /// Creates a trail on an existing bucket (not logging yet) and returns its ARN.
    pub async fn create_trail(
        &self,
        name: &str,
        bucket: &str,
        validation: bool,
        multi_region: bool,
    ) -> String {
        self.cloudtrail()
            .create_trail()
            .name(name)
            .s3_bucket_name(bucket)
            .enable_log_file_validation(validation)
            .is_multi_region_trail(multi_region)
            .send()
            .await
            .expect("CreateTrail")
            .trail_arn()
            .expect("trail ARN")
            .to_string()
    }

    /// A bucket and a logging trail "lab" on it; returns the trail's ARN.
    pub async fn trail(&self) -> String {
        let bucket = format!("trailsim-{}", self.account);
        self.s3()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let arn = self.create_trail("lab", &bucket, false, false).await;
        self.cloudtrail()
            .start_logging()
            .name(&arn)
            .send()
            .await
            .unwrap();
        arn
    }
}

/// POST a JSON body to trailsim's control API.
pub fn post(path: &str, body: &Value) -> (u16, String) {
    post_to(&trailsim().endpoint, path, body)
}

/// POST a JSON body to the control API of the trailsim at `endpoint`: status and body.
pub fn post_to(endpoint: &str, path: &str, body: &Value) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let text = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

/// Runs the AWS CLI v1 as `p` against trailsim: exit code and stdout + stderr.
pub fn aws(p: &Principal, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config"),
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
    )
    .unwrap();
    let creds = &p.credentials;
    let out = std::process::Command::new(testbed::awscli())
        .args(args)
        .env("AWS_CONFIG_FILE", dir.path().join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_ACCESS_KEY_ID", &creds.0)
        .env("AWS_SECRET_ACCESS_KEY", &creds.1)
        .env("AWS_SESSION_TOKEN", &creds.2)
        // validate-logs makes its S3 clients without --endpoint-url; this reaches them all.
        .env("AWS_ENDPOINT_URL", &trailsim().endpoint)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run the AWS CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}
