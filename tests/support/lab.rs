//! The lab world, built through the real SDK against moto: a KMS key with an alias, a private
//! SSE-KMS bucket with a lifecycle rule, a logging multi-region trail with validation and all
//! management events, and a recording AWS Config. Options turn each part off or weaken it.

use super::{Account, fresh_account, moto};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudtrail::types as ct;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::types as s3;
use std::path::PathBuf;

/// What to build. `Options::default()` is the fully compliant lab.
#[derive(Clone, Debug)]
pub struct Options {
    pub kms: bool,
    pub validation: bool,
    pub lifecycle_days: Option<i32>,
    /// Advanced selectors that record S3 data events and no management events.
    pub data_events_only: bool,
    pub config_recorder: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kms: true,
            validation: true,
            lifecycle_days: Some(400),
            data_events_only: false,
            config_recorder: true,
        }
    }
}

pub struct Lab {
    pub account: Account,
    pub sdk: SdkConfig,
    pub trail_name: String,
    pub trail_arn: String,
    pub bucket: String,
    pub key_id: String,
    pub key_arn: String,
    pub dir: tempfile::TempDir,
}

/// AssumeRole into a fresh account: moto keeps each account's resources apart.
pub async fn isolated_account() -> Account {
    isolated_account_at(&moto().endpoint).await
}

/// AssumeRole through `endpoint` (moto, or trailsim, which learns the keys from the answer).
pub async fn isolated_account_at(endpoint: &str) -> Account {
    account_at(endpoint, fresh_account(), "trailwarden-test").await
}

/// Into account `id` through `endpoint`, as moto's default user (whom trailsim lets into
/// any account: the way in to an account nothing has set up yet).
pub async fn account_at(endpoint: &str, id: String, role: &str) -> Account {
    let endpoint = endpoint.to_string();
    let base = sdk_config(
        &endpoint,
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "not-a-secret", None, None, "tests"),
    )
    .await;
    let assumed = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{id}:role/{role}"))
        .role_session_name("trailwarden-tests")
        .send()
        .await
        .expect("AssumeRole into a test account");
    let c = assumed.credentials().expect("credentials");
    Account {
        id,
        endpoint,
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().to_string(),
    }
}

pub async fn sdk_config(endpoint: &str, credentials: Credentials) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

impl Lab {
    /// An isolated account with the lab built as `options` say.
    pub async fn build(options: Options) -> Lab {
        Lab::build_at(&moto().endpoint, options).await
    }

    /// The lab built through `endpoint` (e.g. trailsim, so every call is recorded).
    pub async fn build_at(endpoint: &str, options: Options) -> Lab {
        Lab::build_in(isolated_account_at(endpoint).await, options).await
    }

    /// The lab built in a given account (an organization's member).
    pub async fn build_in(account: Account, options: Options) -> Lab {
        let sdk = sdk_config(
            &account.endpoint,
            Credentials::new(
                account.access_key_id.clone(),
                account.secret_access_key.clone(),
                Some(account.session_token.clone()),
                None,
                "tests",
            ),
        )
        .await;
        let bucket = format!("trail-logs-{}", account.id);
        let mut lab = Lab {
            trail_name: "lab".to_string(),
            trail_arn: String::new(),
            bucket,
            key_id: String::new(),
            key_arn: String::new(),
            dir: tempfile::tempdir().unwrap(),
            account,
            sdk,
        };
        lab.create(&options).await;
        lab
    }

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

    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.sdk)
    }

    async fn create(&mut self, o: &Options) {
        let key = self
            .kms()
            .create_key()
            .description("trailwarden lab trail key")
            .send()
            .await
            .expect("CreateKey");
        let meta = key.key_metadata().unwrap();
        self.key_id = meta.key_id().to_string();
        self.key_arn = meta.arn().unwrap().to_string();
        self.kms()
            .create_alias()
            .alias_name("alias/cloudtrail")
            .target_key_id(&self.key_id)
            .send()
            .await
            .expect("CreateAlias");

        let s3c = self.s3();
        s3c.create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("CreateBucket");
        s3c.put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(
                s3::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .expect("PutPublicAccessBlock");
        s3c.put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(
                s3::ServerSideEncryptionConfiguration::builder()
                    .rules(
                        s3::ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                s3::ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(s3::ServerSideEncryption::AwsKms)
                                    .kms_master_key_id(&self.key_arn)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("PutBucketEncryption");
        if let Some(days) = o.lifecycle_days {
            self.set_lifecycle_days(days).await;
        }

        let mut trail = self
            .cloudtrail()
            .create_trail()
            .name(&self.trail_name)
            .s3_bucket_name(&self.bucket)
            .is_multi_region_trail(true)
            .include_global_service_events(true)
            .enable_log_file_validation(o.validation);
        if o.kms {
            trail = trail.kms_key_id(&self.key_arn);
        }
        self.trail_arn = trail
            .send()
            .await
            .expect("CreateTrail")
            .trail_arn()
            .unwrap()
            .to_string();
        let selectors = self
            .cloudtrail()
            .put_event_selectors()
            .trail_name(&self.trail_arn);
        let selectors = if o.data_events_only {
            selectors.advanced_event_selectors(
                ct::AdvancedEventSelector::builder()
                    // The name claims management events; the fields say otherwise.
                    .name("Log all management events")
                    .field_selectors(
                        ct::AdvancedFieldSelector::builder()
                            .field("eventCategory")
                            .equals("Data")
                            .build()
                            .unwrap(),
                    )
                    .field_selectors(
                        ct::AdvancedFieldSelector::builder()
                            .field("resources.type")
                            .equals("AWS::S3::Object")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
        } else {
            selectors.event_selectors(
                ct::EventSelector::builder()
                    .read_write_type(ct::ReadWriteType::All)
                    .include_management_events(true)
                    .build(),
            )
        };
        selectors.send().await.expect("PutEventSelectors");
        self.cloudtrail()
            .start_logging()
            .name(&self.trail_arn)
            .send()
            .await
            .expect("StartLogging");

        if o.config_recorder {
            let config = aws_sdk_config::Client::new(&self.sdk);
            config
                .put_configuration_recorder()
                .configuration_recorder(
                    aws_sdk_config::types::ConfigurationRecorder::builder()
                        .name("default")
                        .role_arn(format!("arn:aws:iam::{}:role/config", self.account.id))
                        .build(),
                )
                .send()
                .await
                .expect("PutConfigurationRecorder");
            config
                .put_delivery_channel()
                .delivery_channel(
                    aws_sdk_config::types::DeliveryChannel::builder()
                        .name("default")
                        .s3_bucket_name(&self.bucket)
                        .build(),
                )
                .send()
                .await
                .expect("PutDeliveryChannel");
            config
                .start_configuration_recorder()
                .configuration_recorder_name("default")
                .send()
                .await
                .expect("StartConfigurationRecorder");
        }
    }

    pub async fn set_lifecycle_days(&self, days: i32) {
        self.s3()
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(
                s3::BucketLifecycleConfiguration::builder()
                    .rules(
                        s3::LifecycleRule::builder()
                            .id(format!("expire-after-{days}-days"))
                            .status(s3::ExpirationStatus::Enabled)
                            .filter(
                                s3::LifecycleRuleFilter::builder()
                                    .prefix("AWSLogs/")
                                    .build(),
                            )
                            .expiration(s3::LifecycleExpiration::builder().days(days).build())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("PutBucketLifecycleConfiguration");
    }

    pub async fn stop_logging(&self) {
        self.cloudtrail()
            .stop_logging()
            .name(&self.trail_arn)
            .send()
            .await
            .expect("StopLogging");
    }

    /// Writes a daemon config for this lab (endpoint, state dir, port, fast schedules) next to
    /// a copy of the shipped policy file, and returns its path.
    pub fn write_config(&self, port: u16, endpoint: &str) -> PathBuf {
        let dir = self.dir.path();
        std::fs::copy(
            super::manifest_dir().join("config/policies.yaml"),
            dir.join("policies.yaml"),
        )
        .unwrap();
        let path = dir.join("trailwarden.yaml");
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{port}\n\
                 state_dir: state\n\
                 log_level: info\n\
                 aws:\n  regions: [us-east-1]\n  endpoint_url: {endpoint}\n  operation_timeout: 10s\n  max_attempts: 2\n\
                 schedule:\n  trails: \"* * * * * *\"\n  posture: \"*/2 * * * * *\"\n\
                 policies: policies.yaml\n"
            ),
        )
        .unwrap();
        path
    }

    /// A daemon config for event history tests: the shipped policies and detections, the
    /// given trail schedule, events every two seconds, and `extra` lines at the end.
    pub fn write_events_config(
        &self,
        port: u16,
        endpoint: &str,
        trails: &str,
        extra: &str,
    ) -> PathBuf {
        let schedule = format!(
            "  trails: \"{trails}\"\n  posture: \"0 0 * * * *\"\n  events: \"*/2 * * * * *\"\n"
        );
        self.write_detecting_config(port, endpoint, &schedule, "10s", extra)
    }

    /// A daemon config for the reliability tests: the shipped policies and detections,
    /// every poller on `every` (cron with seconds), the given AWS timeout, and `extra` lines
    /// at the end (e.g. a `bucket:` section).
    pub fn write_daemon_config(
        &self,
        port: u16,
        endpoint: &str,
        every: &str,
        operation_timeout: &str,
        extra: &str,
    ) -> PathBuf {
        let schedule = ["trails", "posture", "events", "bucket"]
            .map(|p| format!("  {p}: \"{every}\"\n"))
            .concat();
        self.write_detecting_config(port, endpoint, &schedule, operation_timeout, extra)
    }

    /// The shipped policies and detections beside a config with `schedule` lines.
    pub fn write_detecting_config(
        &self,
        port: u16,
        endpoint: &str,
        schedule: &str,
        operation_timeout: &str,
        extra: &str,
    ) -> PathBuf {
        let dir = self.dir.path();
        for file in ["policies.yaml", "detections.yaml"] {
            std::fs::copy(
                super::manifest_dir().join("config").join(file),
                dir.join(file),
            )
            .unwrap();
        }
        let path = dir.join("trailwarden.yaml");
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{port}\n\
                 state_dir: state\n\
                 log_level: info\n\
                 aws:\n  regions: [us-east-1]\n  endpoint_url: {endpoint}\n  operation_timeout: {operation_timeout}\n  max_attempts: 2\n\
                 schedule:\n{schedule}\
                 policies: policies.yaml\n\
                 detections: detections.yaml\n{extra}"
            ),
        )
        .unwrap();
        path
    }

    /// `trailwarden check --format json` against this lab: exit code and parsed output.
    pub fn check(&self) -> (i32, serde_json::Value) {
        let config = self.write_config(super::free_port(), &self.account.endpoint);
        check_with(&self.account, &config)
    }
}

pub fn check_with(account: &Account, config: &std::path::Path) -> (i32, serde_json::Value) {
    check_with_args(account, config, &[])
}

/// `check --format json` with more arguments (`--shard 1 --total-shards 3`).
pub fn check_with_args(
    account: &Account,
    config: &std::path::Path,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let out = super::trailwarden(Some(account))
        .args(["check", "--format", "json", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("run trailwarden check");
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check printed no JSON ({e}): stdout={} stderr={}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

/// The finding of `policy` in `check --format json` output.
pub fn finding<'a>(out: &'a serde_json::Value, policy: &str) -> &'a serde_json::Value {
    out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == policy)
        .unwrap_or_else(|| panic!("no finding for {policy} in {out:#}"))
}
