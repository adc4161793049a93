//! The policy file: which built-in checks run, with what severity and parameters, plus
//! custom policies written in the condition language.
//!
//! ```yaml
//! policies:
//!   - id: retention
//!     check: retention
//!     severity: high
//!     min_days: 365
//! ```

use super::condition::Condition;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// The least number of days `retention.min_days` may be: event history keeps 90 days, and
/// covering what it forgets is the point of the policy.
pub const MIN_RETENTION_DAYS: u64 = 90;

/// A built-in check and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `IsLogging` and no `LatestDeliveryError`.
    TrailLogging,
    /// The trail's log files are encrypted with a KMS key that exists and is enabled.
    SseKms {
        /// Key id, key ARN or `alias/...` the trail must use.
        required_key: Option<String>,
        require_rotation: bool,
    },
    LogFileValidation,
    /// Some trail is multi-region, with global service events and management events read
    /// and write (one finding for the account).
    ManagementEvents,
    /// No lifecycle rule deletes current log objects before `min_days`, nor (in a versioned
    /// bucket) the noncurrent versions a deletion leaves before `min_noncurrent_days`.
    Retention {
        min_days: u64,
        /// Defaults to `min_days`: a deleted log stays recoverable as long as it is kept.
        min_noncurrent_days: u64,
    },
    BucketNotPublic,
    ConfigRecording,
    SnsNotification,
    CloudWatchLogs,
    BucketAccessLogging,
    ObjectLock {
        /// Default retention the bucket must apply, in days, if set.
        min_retention_days: Option<u64>,
    },
    /// The newest log file in the bucket, per region, is younger than `max_age`: delivery
    /// works, whatever `IsLogging` says.
    DeliveryFreshness {
        max_age: std::time::Duration,
    },
    /// The bucket holds log files continuously from now back `min_days` (or to the trail's
    /// first digest chain when younger), per region, with no hole longer than `tolerance`.
    LogCoverage {
        min_days: u64,
        tolerance: std::time::Duration,
    },
    /// Digests found in the last `window` verify: signatures, links, log hashes, nothing
    /// missing, no unexplained restart.
    DigestIntegrity {
        window: std::time::Duration,
    },
    Custom {
        condition: Condition,
        /// While this holds (a trail too young for the evidence the condition asks for), a
        /// condition that does not hold makes the policy `pending`, not `fail`.
        pending_while: Option<Condition>,
    },
}

impl Check {
    pub fn name(&self) -> &'static str {
        match self {
            Check::TrailLogging => "trail_logging",
            Check::SseKms { .. } => "sse_kms",
            Check::LogFileValidation => "log_file_validation",
            Check::ManagementEvents => "management_events",
            Check::Retention { .. } => "retention",
            Check::BucketNotPublic => "bucket_not_public",
            Check::ConfigRecording => "config_recording",
            Check::SnsNotification => "sns_notification",
            Check::CloudWatchLogs => "cloudwatch_logs",
            Check::BucketAccessLogging => "bucket_access_logging",
            Check::ObjectLock { .. } => "object_lock",
            Check::DeliveryFreshness { .. } => "delivery_freshness",
            Check::LogCoverage { .. } => "log_coverage",
            Check::DigestIntegrity { .. } => "digest_integrity",
            Check::Custom { .. } => "custom",
        }
    }
}

/// One configured policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: String,
    pub severity: Severity,
    pub description: Option<String>,
    /// Trail names or ARNs this policy applies to; empty means every trail.
    pub trails: Vec<String>,
    pub check: Check,
    /// The daemon may put a failure right (the `remediation` section says whether it acts or
    /// only reports); only for the checks [`REMEDIABLE`] names.
    pub remediate: bool,
}

/// The checks whose failure the daemon can put right: logging started, log file validation
/// enabled, the trail's key enabled, management events recorded again.
pub const REMEDIABLE: [&str; 4] = [
    "trail_logging",
    "log_file_validation",
    "sse_kms",
    "management_events",
];

impl Policy {
    pub fn applies_to(&self, trail_name: &str, trail_arn: &str) -> bool {
        self.trails.is_empty()
            || self
                .trails
                .iter()
                .any(|t| t == trail_name || t == trail_arn)
    }
}

/// The whole policy file. Disabled entries are dropped at load.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicySet {
    pub policies: Vec<Policy>,
}

impl PolicySet {
    /// The coverage policy's window in days and hole tolerance; the defaults without one.
    pub fn coverage_params(&self) -> (u64, std::time::Duration) {
        self.policies
            .iter()
            .find_map(|p| match p.check {
                Check::LogCoverage {
                    min_days,
                    tolerance,
                } => Some((min_days, tolerance)),
                _ => None,
            })
            .unwrap_or((MIN_RETENTION_DAYS, std::time::Duration::from_secs(6 * 3600)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policies: PolicyList,
}

impl<'de> Deserialize<'de> for PolicySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let file = PolicyFile::deserialize(d)?;
        Ok(PolicySet {
            policies: file.policies.0.into_iter().flatten().collect(),
        })
    }
}

/// The `policies:` list; rejects duplicate ids (they would collide in metrics).
struct PolicyList(Vec<Option<Policy>>);

impl<'de> Deserialize<'de> for PolicyList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = PolicyList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of policies")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PolicyList, A::Error> {
                let mut list = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(PolicyEntry(policy, id)) = seq.next_element()? {
                    if !seen.insert(id.clone()) {
                        return Err(de::Error::custom(format!(
                            "policy id {id:?} is used twice; ids must be unique"
                        )));
                    }
                    list.push(policy);
                }
                // Nothing checked must not read as "all pass".
                if list.iter().all(Option::is_none) {
                    return Err(de::Error::custom(
                        "no enabled policy: at least one is needed, or nothing would be checked",
                    ));
                }
                Ok(PolicyList(list))
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

/// Every key an entry may have; which parameters are allowed depends on `check`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: String,
    check: CheckName,
    severity: Severity,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    trails: Vec<String>,
    #[serde(default)]
    required_key: Option<String>,
    #[serde(default)]
    require_rotation: Option<bool>,
    #[serde(default, deserialize_with = "min_days")]
    min_days: Option<u64>,
    #[serde(default, deserialize_with = "any_days")]
    min_noncurrent_days: Option<u64>,
    #[serde(default, deserialize_with = "any_days")]
    min_retention_days: Option<u64>,
    #[serde(default)]
    condition: Option<Condition>,
    #[serde(default)]
    pending_while: Option<Condition>,
    #[serde(default)]
    max_age: Option<super::yaml::HumanDuration>,
    #[serde(default)]
    tolerance: Option<super::yaml::HumanDuration>,
    #[serde(default)]
    window: Option<super::yaml::HumanDuration>,
    #[serde(default)]
    remediate: bool,
}

fn yes() -> bool {
    true
}

fn min_days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    super::yaml::deserialize_bounded(d, "min_days", MIN_RETENTION_DAYS, 36_500).map(Some)
}

fn any_days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    super::yaml::deserialize_bounded(d, "days", 1, 36_500).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CheckName {
    TrailLogging,
    SseKms,
    LogFileValidation,
    ManagementEvents,
    Retention,
    BucketNotPublic,
    ConfigRecording,
    SnsNotification,
    #[serde(rename = "cloudwatch_logs")]
    CloudWatchLogs,
    BucketAccessLogging,
    ObjectLock,
    DeliveryFreshness,
    LogCoverage,
    DigestIntegrity,
    Custom,
}

/// A parsed entry (`None` when disabled) and its id.
struct PolicyEntry(Option<Policy>, String);

impl<'de> Deserialize<'de> for PolicyEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = PolicyEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy with id, check and severity")
            }
            // Checking inside visit_map makes the parser attach this entry's line and column.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PolicyEntry, A::Error> {
                let raw = RawPolicy::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let id = raw.id.clone();
                build_policy(raw)
                    .map(|p| PolicyEntry(p, id.clone()))
                    .map_err(|e| de::Error::custom(format!("policy {id:?}: {e}")))
            }
        }
        d.deserialize_map(EntryVisitor)
    }
}

fn build_policy(raw: RawPolicy) -> Result<Option<Policy>, String> {
    let valid_id = !raw.id.is_empty()
        && raw
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !valid_id {
        return Err("id must be non-empty and use only letters, digits, '-', '_' and '.'".into());
    }
    let given: Vec<&str> = [
        ("required_key", raw.required_key.is_some()),
        ("require_rotation", raw.require_rotation.is_some()),
        ("min_days", raw.min_days.is_some()),
        ("min_noncurrent_days", raw.min_noncurrent_days.is_some()),
        ("min_retention_days", raw.min_retention_days.is_some()),
        ("condition", raw.condition.is_some()),
        ("pending_while", raw.pending_while.is_some()),
        ("max_age", raw.max_age.is_some()),
        ("tolerance", raw.tolerance.is_some()),
        ("window", raw.window.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    let (check, takes): (Check, &[&str]) = match raw.check {
        CheckName::TrailLogging => (Check::TrailLogging, &[]),
        CheckName::SseKms => (
            Check::SseKms {
                required_key: raw.required_key,
                require_rotation: raw.require_rotation.unwrap_or(false),
            },
            &["required_key", "require_rotation"],
        ),
        CheckName::LogFileValidation => (Check::LogFileValidation, &[]),
        CheckName::ManagementEvents => (Check::ManagementEvents, &[]),
        CheckName::Retention => (
            Check::Retention {
                min_days: raw.min_days.unwrap_or(365),
                min_noncurrent_days: raw
                    .min_noncurrent_days
                    .unwrap_or(raw.min_days.unwrap_or(365)),
            },
            &["min_days", "min_noncurrent_days"],
        ),
        CheckName::BucketNotPublic => (Check::BucketNotPublic, &[]),
        CheckName::ConfigRecording => (Check::ConfigRecording, &[]),
        CheckName::SnsNotification => (Check::SnsNotification, &[]),
        CheckName::CloudWatchLogs => (Check::CloudWatchLogs, &[]),
        CheckName::BucketAccessLogging => (Check::BucketAccessLogging, &[]),
        CheckName::ObjectLock => (
            Check::ObjectLock {
                min_retention_days: raw.min_retention_days,
            },
            &["min_retention_days"],
        ),
        CheckName::DeliveryFreshness => (
            Check::DeliveryFreshness {
                max_age: raw
                    .max_age
                    .map_or(std::time::Duration::from_secs(30 * 60), |d| d.0),
            },
            &["max_age"],
        ),
        CheckName::LogCoverage => (
            Check::LogCoverage {
                min_days: raw.min_days.unwrap_or(MIN_RETENTION_DAYS),
                tolerance: raw
                    .tolerance
                    .map_or(std::time::Duration::from_secs(6 * 3600), |d| d.0),
            },
            &["min_days", "tolerance"],
        ),
        CheckName::DigestIntegrity => (
            Check::DigestIntegrity {
                window: raw
                    .window
                    .map_or(std::time::Duration::from_secs(7 * 86_400), |d| d.0),
            },
            &["window"],
        ),
        CheckName::Custom => match raw.condition {
            Some(condition) => (
                Check::Custom {
                    condition,
                    pending_while: raw.pending_while,
                },
                &["condition", "pending_while"],
            ),
            None => return Err("check custom needs a condition".into()),
        },
    };
    if let Some(extra) = given.iter().find(|g| !takes.contains(g)) {
        let accepted = if takes.is_empty() {
            "no parameters".to_string()
        } else {
            takes.join(", ")
        };
        return Err(format!(
            "{extra} does not apply to check {} (it takes {accepted})",
            check.name()
        ));
    }
    if raw.remediate && !REMEDIABLE.contains(&check.name()) {
        return Err(format!(
            "remediate: check {} has no remediation (only {})",
            check.name(),
            REMEDIABLE.join(", ")
        ));
    }
    if !raw.enabled {
        return Ok(None);
    }
    Ok(Some(Policy {
        id: raw.id,
        severity: raw.severity,
        description: raw.description,
        trails: raw.trails,
        check,
        remediate: raw.remediate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use std::path::Path;

    fn parse(text: &str) -> Result<PolicySet, crate::config::ConfigError> {
        parse_str(Path::new("policies.yaml"), text)
    }

    #[test]
    fn parses_parameters_and_defaults() {
        let set = parse(
            "policies:\n\
             - id: kms\n  check: sse_kms\n  severity: high\n  required_key: alias/trail\n\
             - id: keep\n  check: retention\n  severity: high\n\
             - id: off\n  check: object_lock\n  severity: low\n  enabled: false\n",
        )
        .unwrap();
        assert_eq!(set.policies.len(), 2, "disabled policies are dropped");
        assert_eq!(
            set.policies[0].check,
            Check::SseKms {
                required_key: Some("alias/trail".into()),
                require_rotation: false
            }
        );
        assert_eq!(
            set.policies[1].check,
            Check::Retention {
                min_days: 365,
                min_noncurrent_days: 365
            }
        );
    }

    #[test]
    fn rejects_retention_under_event_history() {
        let err =
            parse("policies:\n- id: keep\n  check: retention\n  severity: high\n  min_days: 89\n")
                .unwrap_err();
        assert_eq!((err.line, err.column), (Some(5), Some(13)));
        assert!(err.message.contains("min_days must be from 90"), "{err}");
    }

    #[test]
    fn rejects_parameters_of_another_check() {
        let err = parse(
            "policies:\n- id: x\n  check: log_file_validation\n  severity: low\n  min_days: 400\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.message.contains(
                "min_days does not apply to check log_file_validation (it takes no parameters)"
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_checks_severities_and_duplicates() {
        let err = parse("policies:\n- id: x\n  check: be_nice\n  severity: low\n").unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(10)));
        assert!(err.message.contains("unknown variant `be_nice`"), "{err}");

        let err =
            parse("policies:\n- id: x\n  check: trail_logging\n  severity: urgent\n").unwrap_err();
        assert_eq!(err.line, Some(4));

        let err = parse(
            "policies:\n- id: x\n  check: trail_logging\n  severity: low\n- id: x\n  check: log_file_validation\n  severity: low\n",
        )
        .unwrap_err();
        assert!(err.message.contains("\"x\" is used twice"), "{err}");
    }

    #[test]
    fn an_empty_policy_set_is_rejected() {
        let err = parse("policies: []\n").unwrap_err();
        assert!(err.message.contains("no enabled policy"), "{err}");
        let err = parse(
            "policies:\n- id: x\n  check: trail_logging\n  severity: low\n  enabled: false\n",
        )
        .unwrap_err();
        assert!(err.message.contains("no enabled policy"), "{err}");
    }

    #[test]
    fn custom_needs_a_condition() {
        let err = parse("policies:\n- id: c\n  check: custom\n  severity: low\n").unwrap_err();
        assert!(err.message.contains("needs a condition"), "{err}");
    }
}
