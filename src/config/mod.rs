//! The daemon's configuration: the main file and the policy file it points at.
//!
//! Loading resolves relative paths against the main file, checks every value that can be
//! checked without AWS, and reports problems as `file:line:column: message`.

pub mod condition;
pub mod policies;
pub mod yaml;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use policies::{Check, Policy, PolicySet, Severity};
pub use yaml::{ConfigError, CronSchedule, HumanDuration};

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
    pub log_level: Option<String>,
    #[serde(default)]
    pub aws: AwsSettings,
    #[serde(default)]
    pub schedule: Schedule,
    /// The policy file, relative to this file.
    pub policies: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Regions to list trails and check AWS Config in. Trails are evaluated in their home region.
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
    /// An emulator such as moto or trailsim; unset for real AWS.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// A named profile; unset uses the default credential chain (env, profile, IRSA, IMDS...).
    #[serde(default)]
    pub profile: Option<String>,
    /// Upper bound for one API operation, retries included.
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout: HumanDuration,
    /// Attempts per API call (first try included) before it counts as failed.
    #[serde(default = "default_max_attempts")]
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
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            trails: default_trails_schedule(),
            posture: default_posture_schedule(),
        }
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

/// A loaded, checked configuration with paths resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub daemon: DaemonFile,
    pub policies_path: PathBuf,
    pub policies: PolicySet,
}

impl Config {
    /// Loads the main file and the policy file. Returns every problem found: both files are
    /// read even when the first has errors, so one run of `validate-config` shows them all.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let daemon: DaemonFile = yaml::load_file(path).map_err(|e| vec![e])?;
        let mut errors = check_daemon(path, &daemon);
        let base = path.parent().unwrap_or(Path::new("."));
        let policies_path = base.join(&daemon.policies);
        let state_dir = base.join(&daemon.state_dir);
        match yaml::load_file::<PolicySet>(&policies_path) {
            Ok(policies) if errors.is_empty() => Ok(Config {
                path: path.to_path_buf(),
                daemon: DaemonFile {
                    state_dir,
                    ..daemon
                },
                policies_path,
                policies,
            }),
            Ok(_) => Err(errors),
            Err(e) => {
                errors.push(e);
                Err(errors)
            }
        }
    }
}

/// Checks that need more than one value, or that serde cannot express.
fn check_daemon(path: &Path, daemon: &DaemonFile) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if daemon.aws.regions.is_empty() {
        errors.push(ConfigError::whole_file(
            path,
            "aws.regions: at least one region is needed",
        ));
    }
    for region in &daemon.aws.regions {
        let plausible = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !plausible {
            errors.push(ConfigError::whole_file(
                path,
                format!("aws.regions: {region:?} is not a region name like us-east-1"),
            ));
        }
    }
    if let Some(url) = &daemon.aws.endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errors.push(ConfigError::whole_file(
            path,
            format!("aws.endpoint_url: {url:?} must start with http:// or https://"),
        ));
    }
    if daemon.aws.max_attempts == 0 {
        errors.push(ConfigError::whole_file(
            path,
            "aws.max_attempts: must be at least 1",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reports_problems_of_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "p.yaml",
            "policies:\n  - id: r\n    check: retention\n    severity: high\n    min_days: 30\n",
        );
        let main = write(
            dir.path(),
            "main.yaml",
            "aws:\n  regions: [Mars]\npolicies: p.yaml\n",
        );
        let errors = Config::load(&main).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("\"Mars\""), "{}", errors[0]);
        assert_eq!(errors[1].file, dir.path().join("p.yaml"));
        assert_eq!((errors[1].line, errors[1].column), (Some(5), Some(15)));
    }

    #[test]
    fn a_missing_policy_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(dir.path(), "main.yaml", "policies: nowhere.yaml\n");
        let errors = Config::load(&main).unwrap_err();
        assert!(errors[0].to_string().contains("nowhere.yaml: cannot read"));
    }
}
