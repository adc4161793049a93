//! The daemon's configuration: the main file and the policy file it points at.
//!
//! Loading resolves relative paths against the main file, checks every value that can be
//! checked without AWS, and reports problems as `file:line:column: message`.

pub mod accounts;
pub mod aws_config;
pub mod bucket;
pub mod condition;
pub mod detections;
pub mod policies;
pub mod remediation;
pub mod security_hub;
pub mod shard;
pub mod sigma;
mod sigma_event;
mod sigma_names;
pub mod yaml;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use accounts::AccountSettings;
pub use aws_config::AwsConfigSettings;
pub use bucket::{BucketSettings, QueueSettings, QueueUrl};
pub use detections::DetectionSet;
pub use policies::{Check, Policy, PolicySet, Severity};
pub use remediation::RemediationSettings;
pub use security_hub::SecurityHubSettings;
pub use shard::ShardSettings;
pub use yaml::{ByteSize, ConfigError, CronSchedule, HumanDuration};

/// The main configuration file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// `error`, `warn`, `info`, `debug`, `trace` or a full filter; `RUST_LOG` overrides it.
    #[serde(default)]
    pub log_level: Option<LogLevel>,
    #[serde(default)]
    pub aws: AwsSettings,
    /// The accounts to watch (an organization, or a list); absent: the daemon's own account.
    #[serde(default)]
    pub accounts: Option<AccountSettings>,
    /// This replica's part of the accounts when several split them; absent: all of them.
    /// `--shard` and `--total-shards` override it.
    #[serde(default)]
    pub shard: Option<ShardSettings>,
    #[serde(default)]
    pub schedule: Schedule,
    /// The policy file, relative to this file.
    pub policies: PathBuf,
    /// Detection files (one or a list), relative to this file; later files add to earlier
    /// ones. Without any, event history is not polled.
    #[serde(default)]
    pub detections: Option<OneOrMany>,
    /// Sigma rule files or folders (one or a list), relative to this file. A rule that
    /// cannot be loaded is reported with its file and reason; the others load.
    #[serde(default)]
    pub sigma: Option<OneOrMany>,
    #[serde(default)]
    pub event_history: EventHistorySettings,
    #[serde(default)]
    pub bucket: BucketSettings,
    #[serde(default)]
    pub health: HealthSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Verdicts published to AWS Config and Config's CloudTrail rules cross-checked (opt-in).
    #[serde(default)]
    pub aws_config: Option<AwsConfigSettings>,
    /// Findings imported into Security Hub (ASFF), opt-in.
    #[serde(default)]
    pub security_hub: Option<SecurityHubSettings>,
    /// Failures put right (or, by default, only reported) for policies with `remediate: true`.
    #[serde(default)]
    pub remediation: Option<RemediationSettings>,
    /// Whether this replica may write to AWS (AWS Config evaluations, remediation). Of two
    /// replicas of one shard, exactly one: set `false` on the other.
    #[serde(default = "default_writer")]
    pub writer: bool,
}

fn default_writer() -> bool {
    true
}

/// Which metric families `/metrics` serves, as kube-state-metrics' allow and deny lists: at
/// organization size a family may cost more series than its signal is worth.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Regular expressions matched against whole family names; empty: every family.
    #[serde(default)]
    pub allow: Vec<yaml::Pattern>,
    /// Families matching one of these are never served, allowed or not.
    #[serde(default)]
    pub deny: Vec<yaml::Pattern>,
}

/// When `/healthz` says the daemon is stuck.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// A poller inside one run for this long without progress (no page listed, no object
    /// read, no region done) makes `/healthz` answer 503, so a supervisor restarts the
    /// daemon. A slow run that keeps making progress is fine.
    #[serde(default = "default_stall_after")]
    pub stall_after: HumanDuration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            stall_after: default_stall_after(),
        }
    }
}

fn default_stall_after() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

/// A path, or a list of paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    fn paths(&self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(p) => vec![p.clone()],
            OneOrMany::Many(list) => list.clone(),
        }
    }
}

/// How the event history poller reads LookupEvents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHistorySettings {
    /// How far back the first poll (no checkpoint yet) reads; at most 90 days, all event
    /// history keeps.
    #[serde(
        default = "default_initial_window",
        deserialize_with = "initial_window"
    )]
    pub initial_window: HumanDuration,
    /// Each poll re-reads this much before its checkpoint: event history shows events late.
    /// Events seen before are recognised by id and dropped.
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
}

impl Default for EventHistorySettings {
    fn default() -> Self {
        EventHistorySettings {
            initial_window: default_initial_window(),
            overlap: default_overlap(),
        }
    }
}

fn initial_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let w = HumanDuration::deserialize(d)?;
    if w.0 > std::time::Duration::from_secs(90 * 86_400) {
        return Err(serde::de::Error::custom(
            "initial_window is at most 90d: event history keeps no more",
        ));
    }
    Ok(w)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Regions to list trails and check AWS Config in. Trails are evaluated in their home region.
    #[serde(default = "default_regions", deserialize_with = "regions")]
    pub regions: Vec<String>,
    /// An emulator such as moto or trailsim; unset for real AWS.
    #[serde(default)]
    pub endpoint_url: Option<EndpointUrl>,
    /// A named profile; unset uses the default credential chain (env, profile, IRSA, IMDS...).
    #[serde(default)]
    pub profile: Option<String>,
    /// Upper bound for one API operation, retries included.
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout: HumanDuration,
    /// Attempts per API call (first try included) before it counts as failed.
    #[serde(default = "default_max_attempts", deserialize_with = "max_attempts")]
    pub max_attempts: u32,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            regions: default_regions(),
            endpoint_url: None,
            profile: None,
            operation_timeout: default_operation_timeout(),
            max_attempts: default_max_attempts(),
        }
    }
}

/// Cron expressions with seconds: `sec min hour day-of-month month day-of-week`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Trails, their status and event selectors: the Stop Logging signal.
    #[serde(default = "default_trails_schedule")]
    pub trails: CronSchedule,
    /// Bucket configuration, KMS keys and AWS Config recorders.
    #[serde(default = "default_posture_schedule")]
    pub posture: CronSchedule,
    /// Event history (LookupEvents) against the detections.
    #[serde(default = "default_events_schedule")]
    pub events: CronSchedule,
    /// The trails' buckets: new log files (read and run through the detections), delivery,
    /// coverage, digest validation.
    #[serde(default = "default_bucket_schedule")]
    pub bucket: CronSchedule,
    /// The queues of `bucket.queues`: each run reads until they are empty.
    #[serde(default = "default_notifications_schedule")]
    pub notifications: CronSchedule,
    /// With an `aws_config` section: verdicts sent to Config and its rules read.
    #[serde(default = "default_aws_config_schedule")]
    pub aws_config: CronSchedule,
    /// With a `security_hub` section: findings imported.
    #[serde(default = "default_security_hub_schedule")]
    pub security_hub: CronSchedule,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            trails: default_trails_schedule(),
            posture: default_posture_schedule(),
            events: default_events_schedule(),
            bucket: default_bucket_schedule(),
            notifications: default_notifications_schedule(),
            aws_config: default_aws_config_schedule(),
            security_hub: default_security_hub_schedule(),
        }
    }
}

/// A region name such as `eu-west-1`.
struct Region(String);

impl yaml::ParseScalar for Region {
    const EXPECTING: &'static str = "a region name such as us-east-1";
    fn parse(text: &str) -> Result<Self, String> {
        let plausible = text.split('-').count() >= 3
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if plausible {
            Ok(Region(text.to_string()))
        } else {
            Err(format!("{text:?} is not a region name like us-east-1"))
        }
    }
}
yaml::scalar_deserialize!(Region);

fn regions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<Region>::deserialize(d)?;
    if list.is_empty() {
        return Err(serde::de::Error::custom("at least one region is needed"));
    }
    Ok(list.into_iter().map(|r| r.0).collect())
}

fn max_attempts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    yaml::deserialize_bounded(d, "max_attempts", 1, 10).map(|n| n as u32)
}

/// An `http://` or `https://` URL of an AWS-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(pub String);

impl yaml::ParseScalar for EndpointUrl {
    const EXPECTING: &'static str = "an http:// or https:// URL";
    fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() => Ok(EndpointUrl(text.to_string())),
            _ => Err(format!("{text:?} must be an http:// or https:// URL")),
        }
    }
}
yaml::scalar_deserialize!(EndpointUrl);

/// A log filter: a level (`info`) or a full directive (`trailwarden=debug,info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(pub String);

impl yaml::ParseScalar for LogLevel {
    const EXPECTING: &'static str = "a log level: error, warn, info, debug or trace";
    fn parse(text: &str) -> Result<Self, String> {
        const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
        let invalid = || {
            format!(
                "invalid log level {text:?}: use error, warn, info, debug, trace, or a filter such as trailwarden=debug,info"
            )
        };
        // Levels and `target=level` directives only: span and field filters compile
        // patterns (fuzzing found one that ate gigabytes), and a bare word would be taken as a
        // target name and silently log nothing useful.
        let level = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
        let target = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
        };
        let simple = text.len() <= 256
            && text.split(',').all(|d| match d.trim().split_once('=') {
                None => level(d.trim()),
                Some((t, l)) => target(t) && level(l),
            });
        if !simple {
            return Err(invalid());
        }
        tracing_subscriber::EnvFilter::try_new(text)
            .map(|_| LogLevel(text.to_string()))
            .map_err(|e| format!("invalid log level {text:?}: {e}"))
    }
}
yaml::scalar_deserialize!(LogLevel);

/// Shards split the `accounts` section's accounts: with one account there is nothing to split.
pub fn check_shard(shard: Option<&ShardSettings>, accounts: bool) -> Result<(), String> {
    match shard {
        Some(s) if s.total > 1 && !accounts => Err(format!(
            "shard: {} shards split the accounts of the accounts section, and there is none: add it, or run one replica",
            s.total
        )),
        Some(s) if s.total == 0 => Err("shard: total must be at least 1".into()),
        _ => Ok(()),
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9847))
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/trailwarden")
}
fn default_regions() -> Vec<String> {
    vec!["us-east-1".to_string()]
}
fn default_operation_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}
fn default_max_attempts() -> u32 {
    3
}
fn default_trails_schedule() -> CronSchedule {
    CronSchedule("*/30 * * * * *".to_string())
}
fn default_posture_schedule() -> CronSchedule {
    CronSchedule("15 */5 * * * *".to_string())
}
fn default_events_schedule() -> CronSchedule {
    CronSchedule("0 * * * * *".to_string())
}
fn default_bucket_schedule() -> CronSchedule {
    CronSchedule("30 */5 * * * *".to_string())
}
fn default_notifications_schedule() -> CronSchedule {
    CronSchedule("*/10 * * * * *".to_string())
}
fn default_aws_config_schedule() -> CronSchedule {
    CronSchedule("45 * * * * *".to_string())
}
fn default_security_hub_schedule() -> CronSchedule {
    CronSchedule("50 * * * * *".to_string())
}
fn default_initial_window() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(86_400))
}
fn default_overlap() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15 * 60))
}

/// A loaded, checked configuration with paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub daemon: DaemonFile,
    pub policies_path: PathBuf,
    pub policies: PolicySet,
    pub detections_paths: Vec<PathBuf>,
    pub detections: DetectionSet,
    /// This replica's shard: one alone until the command line or `shard` section resolves it
    /// (`Config::set_shard`).
    pub shard: crate::plan::shards::Shard,
}

impl Config {
    /// Resolves this replica's shard: `given` (the command line) over the `shard` section,
    /// the hostname asked for only when the ordinal is `hostname`.
    pub fn set_shard(
        &mut self,
        given: Option<ShardSettings>,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<(), ConfigError> {
        if given.is_some() {
            self.daemon.shard = given;
        }
        let path = self.path.clone();
        let whole = |message: String| ConfigError::whole_file(&path, message);
        check_shard(self.daemon.shard.as_ref(), self.daemon.accounts.is_some()).map_err(whole)?;
        self.shard = match &self.daemon.shard {
            Some(s) => s.resolve(hostname).map_err(whole)?,
            None => crate::plan::shards::Shard::ALONE,
        };
        Ok(())
    }

    /// Loads the main file, then the policy file it names. Each problem is located as
    /// `file:line:column`; the first problem of a file stops its parsing.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let daemon: DaemonFile = yaml::load_file(path).map_err(|e| vec![e])?;
        daemon
            .bucket
            .check()
            .and_then(|()| {
                daemon
                    .accounts
                    .as_ref()
                    .map_or(Ok(()), AccountSettings::check)
            })
            .and_then(|()| check_shard(daemon.shard.as_ref(), daemon.accounts.is_some()))
            .and_then(|()| {
                daemon
                    .aws_config
                    .as_ref()
                    .map_or(Ok(()), AwsConfigSettings::check)
            })
            .and_then(|()| {
                daemon
                    .security_hub
                    .as_ref()
                    .map_or(Ok(()), SecurityHubSettings::check)
            })
            .map_err(|message| {
                vec![ConfigError {
                    file: path.to_path_buf(),
                    line: None,
                    column: None,
                    message,
                }]
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let policies_path = base.join(&daemon.policies);
        let state_dir = base.join(&daemon.state_dir);
        let policies = yaml::load_file::<PolicySet>(&policies_path).map_err(|e| vec![e])?;
        // Paths relative to this file.
        let resolve = |list: &Option<OneOrMany>| -> Vec<PathBuf> {
            list.as_ref()
                .map(OneOrMany::paths)
                .unwrap_or_default()
                .iter()
                .map(|p| base.join(p))
                .collect()
        };
        let detections_paths = resolve(&daemon.detections);
        let mut detections = DetectionSet::default();
        for p in &detections_paths {
            let more = yaml::load_file::<DetectionSet>(p).map_err(|e| vec![e])?;
            detections.extend(more).map_err(|message| {
                vec![ConfigError {
                    file: p.clone(),
                    line: None,
                    column: None,
                    message,
                }]
            })?;
        }
        let sigma_paths = resolve(&daemon.sigma);
        if !sigma_paths.is_empty() {
            detections.sigma = sigma::SigmaRules::load(&sigma_paths);
        }
        Ok(Config {
            path: path.to_path_buf(),
            daemon: DaemonFile {
                state_dir,
                ..daemon
            },
            policies_path,
            policies,
            detections_paths,
            detections,
            shard: crate::plan::shards::Shard::ALONE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/fuzz_targets/config.rs): a field filter with a pattern in
    /// `log_level` took gigabytes to compile. Only levels and `target=level` are accepted.
    #[test]
    fn log_levels_are_levels_or_target_directives() {
        use yaml::ParseScalar;
        for good in [
            "info",
            "DEBUG",
            "trailwarden=debug,info",
            "aws_config=warn,trailwarden::watch=trace",
        ] {
            assert!(LogLevel::parse(good).is_ok(), "{good}");
        }
        let fuzzed =
            "TTTTTT2TTTT[T000000Hfaric } - { pathHHHHHHHHHH=config-recordin1024819115206>....";
        for bad in [
            "verbose",
            "trailwarden",
            "x[span{field=a.*}]=debug",
            fuzzed,
            &"a=info,".repeat(60),
        ] {
            let e = LogLevel::parse(bad).unwrap_err();
            assert!(e.contains("invalid log level"), "{bad}: {e}");
        }
    }

    #[test]
    fn queue_urls_name_their_region_where_aws_does() {
        use yaml::ParseScalar;
        let cases = [
            (
                "https://sqs.eu-west-1.amazonaws.com/111122223333/trail-logs",
                Some("eu-west-1"),
            ),
            (
                "https://eu-west-1.queue.amazonaws.com/111122223333/trail-logs",
                Some("eu-west-1"),
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/111122223333/q",
                Some("cn-north-1"),
            ),
            ("http://localhost:5000/123456789012/trail-logs", None),
        ];
        for (url, region) in cases {
            assert_eq!(QueueUrl::parse(url).unwrap().region(), region, "{url}");
        }
        for bad in [
            "trail-logs",
            "arn:aws:sqs:us-east-1:111122223333:trail-logs",
            "https://sqs.us-east-1.amazonaws.com/trail-logs",
            "https://sqs.us-east-1.amazonaws.com/111122223333/",
        ] {
            let e = QueueUrl::parse(bad).unwrap_err();
            assert!(e.contains("is not a queue URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn bucket_settings_that_contradict_each_other_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "p.yaml",
            "policies:\n  - id: logging\n    check: trail_logging\n    severity: critical\n",
        );
        for (bucket, says) in [
            ("read_window: 2h\n  initial_window: 1d", "read_window"),
            (
                "max_object_size: 1GiB\n  read_memory: 64MiB",
                "max_object_size",
            ),
            ("max_record_size: 12XB", "invalid size"),
            ("concurrency: 0", "at least 1"),
        ] {
            let main = write(
                dir.path(),
                "t.yaml",
                &format!("policies: p.yaml\nbucket:\n  {bucket}\n"),
            );
            let errors = Config::load(&main).unwrap_err();
            assert!(
                errors[0].to_string().contains(says),
                "{bucket}: {}",
                errors[0]
            );
            assert!(errors[0].to_string().contains("t.yaml"), "{}", errors[0]);
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn resolves_paths_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "p.yaml",
            "policies:\n  - id: logging\n    check: trail_logging\n    severity: critical\n",
        );
        let main = write(
            dir.path(),
            "main.yaml",
            "state_dir: state\npolicies: p.yaml\n",
        );
        let config = Config::load(&main).unwrap();
        assert_eq!(config.policies_path, dir.path().join("p.yaml"));
        assert_eq!(config.daemon.state_dir, dir.path().join("state"));
        assert_eq!(config.daemon.listen.to_string(), "127.0.0.1:9847");
        assert_eq!(config.policies.policies.len(), 1);
    }

    #[test]
    fn every_value_problem_is_located() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line, col, what) in [
            (
                "aws:\n  regions: [us-east-1, Mars]\npolicies: p.yaml\n",
                2,
                24,
                "\"Mars\" is not a region",
            ),
            (
                "aws:\n  regions: []\npolicies: p.yaml\n",
                2,
                3,
                "at least one region",
            ),
            (
                "aws:\n  endpoint_url: localhost:4566\npolicies: p.yaml\n",
                2,
                17,
                "http:// or https://",
            ),
            (
                "aws:\n  max_attempts: 0\npolicies: p.yaml\n",
                2,
                17,
                "from 1 to 10",
            ),
            (
                "log_level: loud\npolicies: p.yaml\n",
                1,
                12,
                "invalid log level",
            ),
            ("listen: 9847\npolicies: p.yaml\n", 1, 9, "listen"),
        ] {
            let main = write(dir.path(), "main.yaml", text);
            let errors = Config::load(&main).unwrap_err();
            let e = &errors[0];
            assert!(e.message.contains(what), "{text}: {e}");
            assert_eq!((e.line, e.column), (Some(line), Some(col)), "{text}: {e}");
        }
    }

    #[test]
    fn the_policy_file_problem_names_that_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "p.yaml",
            "policies:\n  - id: r\n    check: retention\n    severity: high\n    min_days: 30\n",
        );
        let main = write(dir.path(), "main.yaml", "policies: p.yaml\n");
        let errors = Config::load(&main).unwrap_err();
        assert_eq!(errors[0].file, dir.path().join("p.yaml"));
        assert_eq!((errors[0].line, errors[0].column), (Some(5), Some(15)));
    }

    #[test]
    fn a_missing_policy_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(dir.path(), "main.yaml", "policies: nowhere.yaml\n");
        let errors = Config::load(&main).unwrap_err();
        assert!(errors[0].to_string().contains("nowhere.yaml: cannot read"));
    }
}
