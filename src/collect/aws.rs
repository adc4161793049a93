//! The AWS edge: shared SDK configuration, per-region clients, the API call counter, and the
//! translation of SDK errors into [`Unavailable`] reasons a person can act on.

use crate::config::AwsSettings;
use crate::config::accounts::RoleSettings;
use crate::posture::Unavailable;
use aws_config::identity::IdentityCache;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_sts::config::SharedCredentialsProvider;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use prometheus::IntCounterVec;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Counts every attempt (retries included: each one is a request AWS meters) by service,
/// operation and outcome.
#[derive(Debug, Clone)]
pub struct ApiCallCounter {
    calls: IntCounterVec,
}

impl ApiCallCounter {
    pub fn new(calls: IntCounterVec) -> Self {
        ApiCallCounter { calls }
    }
}

impl Intercept for ApiCallCounter {
    fn name(&self) -> &'static str {
        "trailwarden.ApiCallCounter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (service_label(m.service()), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".to_string(), "unknown".to_string()));
        let outcome = match context.response().map(|r| r.status().as_u16()) {
            Some(200..=399) => "success",
            Some(429) => "throttled",
            Some(400..=499) => "client_error",
            Some(_) => "server_error",
            None => "transport_error",
        };
        self.calls
            .with_label_values(&[&service, &operation, outcome])
            .inc();
        Ok(())
    }
}

/// A role's credentials, assumed through one STS client that every watched account shares
/// (the daemon's own credentials, counted like every client's calls). The SDK's
/// `AssumeRoleProvider` would hold an STS client per account, tens of kilobytes each. The
/// account's identity cache keeps what this returns, so it is asked only when credentials
/// are due.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    duration: std::time::Duration,
}

impl AssumedRole {
    async fn credentials(&self) -> Result<aws_credential_types::Credentials, CredentialsError> {
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let answer = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .duration_seconds(seconds)
            .set_external_id(self.external_id.clone())
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let credentials = answer
            .credentials
            .ok_or_else(|| CredentialsError::unhandled("AssumeRole answered no credentials"))?;
        let expiry = std::time::SystemTime::try_from(credentials.expiration)
            .map_err(CredentialsError::unhandled)?;
        Ok(aws_credential_types::Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key,
            Some(credentials.session_token),
            Some(expiry),
            "trailwarden-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// `Config Service` → `config`, `CloudTrail` → `cloudtrail`.
fn service_label(service: &str) -> String {
    service
        .trim_end_matches(" Service")
        .to_ascii_lowercase()
        .replace(' ', "_")
}

/// Everything the collectors need to call AWS for one account. A client holds its own
/// configuration, tens of kilobytes, so what every watched account uses a few times a poll
/// (STS, CloudTrail, Config) is built for each use and dropped: kept, a thousand accounts'
/// clients over four regions took 390 MiB. What bucket and key owners use per object (S3,
/// KMS, SQS) is built when first asked for and kept.
#[derive(Debug)]
pub struct Aws {
    base: aws_config::SdkConfig,
    counter: ApiCallCounter,
    organizations: OnceLock<aws_sdk_organizations::Client>,
    /// The STS client every role is assumed with, from these credentials.
    assumer: OnceLock<aws_sdk_sts::Client>,
    regional: Mutex<RegionalClients>,
}

/// The kept region-bound clients built so far, by region.
#[derive(Debug, Default)]
struct RegionalClients {
    s3: HashMap<String, aws_sdk_s3::Client>,
    kms: HashMap<String, aws_sdk_kms::Client>,
    sqs: HashMap<String, aws_sdk_sqs::Client>,
}

impl Aws {
    /// Builds the shared SDK config from the default credential chain (env, profile, web
    /// identity/IRSA, ECS and EC2 roles) plus the configured endpoint, timeouts and retries.
    pub async fn connect(settings: &AwsSettings, calls: IntCounterVec) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.regions[0].clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_timeout(settings.operation_timeout.0)
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(&url.0);
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        let base = loader.http_client(shared_https_client()).load().await;
        Aws::from_sdk_config(base, calls)
    }

    pub fn from_sdk_config(base: aws_config::SdkConfig, calls: IntCounterVec) -> Aws {
        Aws {
            base,
            counter: ApiCallCounter::new(calls),
            organizations: OnceLock::new(),
            assumer: OnceLock::new(),
            regional: Mutex::default(),
        }
    }

    /// The same endpoint, timeouts and retries with the credentials of `role_arn`, assumed
    /// with these credentials. The SDK's provider caches them and assumes again before they
    /// expire; nothing is called until a client needs them.
    pub async fn assume_role(&self, role_arn: &str, role: &RoleSettings) -> Aws {
        let provider = AssumedRole {
            sts: self.assumer.get_or_init(|| self.sts()).clone(),
            role_arn: role_arn.to_string(),
            session_name: role.session_name.0.clone(),
            external_id: role.external_id.as_ref().map(|id| id.0.clone()),
            duration: role.duration.0,
        };
        // An identity cache of its own: the SDK's shared one keeps 64 credential sets at most,
        // so over 64 accounts it forgot them and each client assumed the role again.
        let config = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .identity_cache(IdentityCache::lazy().build())
            .build();
        Aws::from_sdk_config(config, self.counter.calls.clone())
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&self.base)
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    /// Organizations answers in us-east-1 whatever the region.
    pub fn organizations(&self) -> &aws_sdk_organizations::Client {
        self.organizations.get_or_init(|| {
            aws_sdk_organizations::Client::from_conf(
                aws_sdk_organizations::config::Builder::from(&self.base)
                    .region(Region::from_static("us-east-1"))
                    .interceptor(self.counter.clone())
                    .build(),
            )
        })
    }

    pub fn cloudtrail(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        aws_sdk_cloudtrail::Client::from_conf(
            aws_sdk_cloudtrail::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        // An emulator answers on one host name: virtual-host style would need DNS per bucket.
        let path_style = self.base.endpoint_url().is_some();
        self.regional(
            region,
            |c| &mut c.s3,
            |region| {
                aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(&self.base)
                        .region(region)
                        .force_path_style(path_style)
                        .interceptor(self.counter.clone())
                        .build(),
                )
            },
        )
    }

    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        self.regional(
            region,
            |c| &mut c.kms,
            |region| {
                aws_sdk_kms::Client::from_conf(
                    aws_sdk_kms::config::Builder::from(&self.base)
                        .region(region)
                        .interceptor(self.counter.clone())
                        .build(),
                )
            },
        )
    }

    pub fn config(&self, region: &str) -> aws_sdk_config::Client {
        aws_sdk_config::Client::from_conf(
            aws_sdk_config::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    /// Security Hub, where findings are imported (`security_hub`).
    pub fn security_hub(&self, region: &str) -> aws_sdk_securityhub::Client {
        aws_sdk_securityhub::Client::from_conf(
            aws_sdk_securityhub::config::Builder::from(&self.base)
                .region(Region::new(region.to_string()))
                .interceptor(self.counter.clone())
                .build(),
        )
    }

    /// The queues fed by the buckets' event notifications (`bucket.queues`).
    pub fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        self.regional(
            region,
            |c| &mut c.sqs,
            |region| {
                aws_sdk_sqs::Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(&self.base)
                        .region(region)
                        .interceptor(self.counter.clone())
                        .build(),
                )
            },
        )
    }

    /// The client of `region` from the map `pick` chooses, built by `build` the first time.
    fn regional<C: Clone>(
        &self,
        region: &str,
        pick: impl FnOnce(&mut RegionalClients) -> &mut HashMap<String, C>,
        build: impl FnOnce(Region) -> C,
    ) -> C {
        let mut built = self.regional.lock().expect("client cache poisoned");
        pick(&mut built)
            .entry(region.to_string())
            .or_insert_with(|| build(Region::new(region.to_string())))
            .clone()
    }
}

/// One HTTPS client (connection pools, TLS configuration with its parsed root certificates)
/// for every SDK client of every account. Without it each SDK client builds its own: about
/// 1.7 MiB per watched account over four regions, and no connection shared between clients.
/// Built as the SDK builds its default (rustls with AWS-LC, proxies from the environment);
/// `build_with_connector_fn` is the SDK's own way to that, hidden from its docs.
fn shared_https_client() -> SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig, tls};
    let client = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    SharedHttpClient::new(ConnectorOnFirstUse(client))
}

/// The shared HTTPS client without the SDK's check at each client build: to load the root
/// certificates early, the SDK's client builds a whole TLS connector (certificates parsed)
/// and drops it every time an SDK client is built from it. With clients built per use that
/// was 15 % of a 1,000-account trails poll's CPU. The connector is built once, at the first
/// request, and kept.
#[derive(Debug)]
struct ConnectorOnFirstUse(SharedHttpClient);

impl HttpClient for ConnectorOnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The error code of a service error (`AccessDeniedException`, `NoSuchBucket`, ...), if any.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Turns an SDK error into the reason shown in findings and `/status`.
pub fn unavailable<E, R>(operation: &str, err: &SdkError<E, R>) -> Unavailable
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let detail = match err {
        SdkError::ServiceError(e) => {
            let inner = e.err();
            match (inner.code(), inner.message()) {
                (Some(code), Some(msg)) if !msg.is_empty() => format!("{code}: {msg}"),
                (Some(code), _) => code.to_string(),
                _ => format!("service error: {}", chain(inner)),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(_) => format!("cannot reach the endpoint: {}", chain(err)),
        SdkError::ResponseError(_) => format!("unreadable response: {}", chain(err)),
        other => chain(other),
    };
    Unavailable::api_failure(format!("{operation}: {detail}"))
}

/// An error and its sources on one line: SDK errors hide the useful part in the chain.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Every class [`reason_class`] gives.
pub const REASON_CLASSES: [&str; 7] = [
    "access_denied",
    "throttled",
    "timeout",
    "unreachable",
    "bad_response",
    "not_found",
    "other",
];

/// A class for `trailwarden_poll_errors_total{reason}`, from an [`Unavailable`] reason.
pub fn reason_class(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("accessdenied") || r.contains("access denied") || r.contains("unauthorized") {
        "access_denied"
    } else if r.contains("throttl") || r.contains("rate exceeded") || r.contains("slowdown") {
        "throttled"
    } else if r.contains("timed out") || r.contains("timeout") {
        "timeout"
    } else if r.contains("cannot reach") {
        "unreachable"
    } else if r.contains("unreadable response") {
        "bad_response"
    } else if r.contains("notfound") || r.contains("nosuch") || r.contains("does not exist") {
        "not_found"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_types::body::SdkBody;

    /// STS answering AssumeRole (credentials valid for hours) and GetCallerIdentity, with no
    /// network.
    #[derive(Debug, Clone)]
    struct CannedSts;

    impl HttpConnector for CannedSts {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let asked = request.body().bytes().unwrap_or_default();
            let body = if asked.windows(17).any(|w| w == b"Action=AssumeRole") {
                let expires =
                    (chrono::Utc::now() + chrono::Duration::hours(6)).format("%Y-%m-%dT%H:%M:%SZ");
                format!(
                    "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>\
                     <SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>\
                     <Expiration>{expires}</Expiration></Credentials><AssumedRoleUser>\
                     <AssumedRoleId>AROA:x</AssumedRoleId><Arn>arn:aws:sts::111111111111:assumed-role/audit/x</Arn>\
                     </AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"
                )
            } else {
                "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::111111111111:assumed-role/audit/x</Arn>\
                 <UserId>AROA:x</UserId><Account>111111111111</Account></GetCallerIdentityResult>\
                 </GetCallerIdentityResponse>"
                    .to_string()
            };
            let response = aws_smithy_runtime_api::http::Response::new(
                200.try_into().expect("valid status"),
                SdkBody::from(body),
            );
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    impl HttpClient for CannedSts {
        fn http_connector(
            &self,
            _settings: &HttpConnectorSettings,
            _components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    /// The SDK's identity cache keeps 64 credential sets; a daemon watching more accounts
    /// than that must still assume each account's role once, not at every call.
    #[tokio::test]
    async fn each_account_assumes_its_role_once_past_sixty_four_accounts() {
        // As `connect` loads it (one identity cache for every client of the config), with STS
        // canned.
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::for_tests())
            .http_client(CannedSts)
            .load()
            .await;
        let calls = IntCounterVec::new(
            prometheus::Opts::new("calls", "calls"),
            &["service", "operation", "outcome"],
        )
        .expect("valid metric");
        let own = Aws::from_sdk_config(base, calls.clone());
        let role: RoleSettings =
            serde_yaml::from_str("arn: 'arn:aws:iam::{account}:role/audit'").expect("valid role");
        let mut accounts = Vec::new();
        for n in 0..70 {
            let arn = role.arn_for(&format!("{n:012}"));
            accounts.push(own.assume_role(&arn, &role).await);
        }
        for _round in 0..2 {
            for aws in &accounts {
                aws.sts()
                    .get_caller_identity()
                    .send()
                    .await
                    .expect("canned answer");
            }
        }
        let assumed = calls
            .with_label_values(&["sts", "AssumeRole", "success"])
            .get();
        assert_eq!(assumed, 70);
    }

    #[test]
    fn service_labels() {
        assert_eq!(service_label("Config Service"), "config");
        assert_eq!(service_label("CloudTrail"), "cloudtrail");
        assert_eq!(service_label("S3"), "s3");
    }

    #[test]
    fn reason_classes() {
        assert_eq!(
            reason_class("GetTrailStatus: AccessDeniedException: no"),
            "access_denied"
        );
        assert_eq!(
            reason_class("DescribeTrails: ThrottlingException: Rate exceeded"),
            "throttled"
        );
        assert_eq!(
            reason_class("DescribeTrails: cannot reach the endpoint: io error"),
            "unreachable"
        );
        assert_eq!(reason_class("DescribeKey: timed out"), "timeout");
        assert_eq!(
            reason_class("GetBucketAcl: NoSuchBucket: gone"),
            "not_found"
        );
        for r in [
            "x",
            "timed out",
            "AccessDenied",
            "cannot reach",
            "unreadable response",
        ] {
            assert!(REASON_CLASSES.contains(&reason_class(r)), "{r}");
        }
    }
}
