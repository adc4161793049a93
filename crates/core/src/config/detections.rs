//! The detection file: which CloudTrail events count as tampering with the audit trail.
//!
//! ```yaml
//! detections:
//!   - id: cloudtrail_stop_logging
//!     severity: critical
//!     source: cloudtrail.amazonaws.com
//!     events: [StopLogging]
//!   - id: bucket_lifecycle_below_retention
//!     severity: high
//!     source: s3.amazonaws.com
//!     events: [PutBucketLifecycle]
//!     target: trail_bucket
//!     outcome: success
//!     when: { path: derived.lifecycle_below_retention, eq: true }
//! ```
//!
//! Matching lives in `evaluate::detection`; the `derived` facts in `evaluate::record_facts`.

use super::condition::{Condition, RecordPaths};
use super::policies::Severity;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// One detection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// Lowercase letters, digits and `_`: it becomes a metric label.
    pub id: DetectionId,
    pub severity: Severity,
    #[serde(default)]
    pub description: Option<String>,
    /// The record's `eventSource`, e.g. `cloudtrail.amazonaws.com`.
    pub source: String,
    /// `eventName`s as CloudTrail writes them (`PutBucketLifecycle`, not
    /// `PutBucketLifecycleConfiguration`).
    pub events: EventNames,
    /// Successful calls, failed attempts (the record has `errorCode`), or both.
    #[serde(default)]
    pub outcome: OutcomeFilter,
    /// Only events on a monitored trail's bucket, key or log group; unset for any resource.
    #[serde(default)]
    pub target: Option<Target>,
    /// A condition on the record (`requestParameters...`) or its `derived` facts.
    #[serde(default)]
    pub when: Option<Condition<RecordPaths>>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeFilter {
    #[default]
    Any,
    Success,
    Failure,
}

/// What the event must act on, among the resources of the trails trailwarden watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `requestParameters.bucketName` is a trail's S3 bucket.
    TrailBucket,
    /// `requestParameters.keyId` is a trail's KMS key (id, ARN or a known alias).
    TrailKey,
    /// `requestParameters.logGroupName` is a trail's CloudWatch Logs group.
    TrailLogGroup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionId(pub String);

impl super::yaml::ParseScalar for DetectionId {
    const EXPECTING: &'static str = "an id of lowercase letters, digits and _";
    fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(DetectionId(text.to_string()))
        } else {
            Err(format!(
                "detection id {text:?} may hold only lowercase letters, digits and _ (it is a metric label)"
            ))
        }
    }
}
super::yaml::scalar_deserialize!(DetectionId);

/// At least one event name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNames(pub Vec<String>);

impl<'de> Deserialize<'de> for EventNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        if names.is_empty() {
            return Err(de::Error::custom("events needs at least one event name"));
        }
        if let Some(bad) = names.iter().find(|n| n.is_empty() || n.contains(' ')) {
            return Err(de::Error::custom(format!("{bad:?} is not an event name")));
        }
        Ok(EventNames(names))
    }
}

/// A whole detection file. Disabled entries are dropped at load.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectionSet {
    /// Private: the index below is built from it, and must not go stale.
    detections: Vec<Detection>,
    /// Sigma rules from the files the main configuration lists (`sigma:`).
    pub sigma: super::sigma::SigmaRules,
    /// eventName → the sources some detection names it with. Every log file record asks.
    wanted: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionFile {
    detections: DetectionList,
}

impl<'de> Deserialize<'de> for DetectionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let file = DetectionFile::deserialize(d)?;
        let mut set = DetectionSet::default();
        for d in file.detections.0.into_iter().filter(|d| d.enabled) {
            set.push(d);
        }
        Ok(set)
    }
}

/// The `detections:` list; rejects duplicate ids (they would collide in metrics).
struct DetectionList(Vec<Detection>);

impl<'de> Deserialize<'de> for DetectionList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = DetectionList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of detections")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DetectionList, A::Error> {
                let mut list = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(detection) = seq.next_element::<Detection>()? {
                    if !seen.insert(detection.id.0.clone()) {
                        return Err(de::Error::custom(format!(
                            "detection id {:?} is used twice; ids must be unique",
                            detection.id.0
                        )));
                    }
                    list.push(detection);
                }
                Ok(DetectionList(list))
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

impl DetectionSet {
    /// Appends another file's detections; an id defined twice is an error naming it.
    /// No detection and no Sigma rule: event history need not be read.
    pub fn is_empty(&self) -> bool {
        self.detections.is_empty() && self.sigma.rules.is_empty()
    }

    pub fn extend(&mut self, other: DetectionSet) -> Result<(), String> {
        for d in other.detections {
            if self.detections.iter().any(|x| x.id == d.id) {
                return Err(format!(
                    "detection id {:?} is already defined in an earlier file",
                    d.id.0
                ));
            }
            self.push(d);
        }
        Ok(())
    }

    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    /// Whether some detection looks at records of this source and name.
    pub fn wants(&self, source: &str, name: &str) -> bool {
        self.wanted
            .get(name)
            .is_some_and(|sources| sources.iter().any(|s| s == source))
    }

    fn push(&mut self, d: Detection) {
        for name in &d.events.0 {
            let sources = self.wanted.entry(name.clone()).or_default();
            if !sources.contains(&d.source) {
                sources.push(d.source.clone());
            }
        }
        self.detections.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use std::path::Path;

    fn parse(text: &str) -> Result<DetectionSet, crate::config::ConfigError> {
        parse_str(Path::new("d.yaml"), text)
    }

    #[test]
    fn a_full_entry() {
        let set = parse(
            "detections:\n  - id: lifecycle\n    severity: high\n    source: s3.amazonaws.com\n    events: [PutBucketLifecycle]\n    target: trail_bucket\n    outcome: success\n    when: { path: derived.lifecycle_below_retention, eq: true }\n  - id: off\n    severity: low\n    source: s3.amazonaws.com\n    events: [X]\n    enabled: false\n",
        )
        .unwrap();
        assert_eq!(set.detections.len(), 1, "disabled entries are dropped");
        let d = &set.detections[0];
        assert_eq!(d.target, Some(Target::TrailBucket));
        assert_eq!(d.outcome, OutcomeFilter::Success);
        assert!(d.when.is_some());
    }

    #[test]
    fn errors_name_the_place() {
        for (text, line, col, what) in [
            (
                "detections:\n  - id: Stop-Logging\n    severity: high\n    source: s\n    events: [A]\n",
                2,
                9,
                "lowercase letters",
            ),
            (
                "detections:\n  - id: a\n    severity: high\n    source: s\n    events: []\n",
                2,
                5,
                "at least one event name",
            ),
            (
                "detections:\n  - id: a\n    severity: high\n    source: s\n    events: [A]\n    when: { path: trail.name, eq: x }\n",
                6,
                19,
                "must start with one of",
            ),
            (
                "detections:\n  - id: a\n    severity: high\n    source: s\n    events: [A]\n    target: the_bucket\n",
                6,
                13,
                "unknown variant",
            ),
            (
                "detections:\n  - id: a\n    severity: high\n    source: s\n    events: [A]\n  - id: a\n    severity: low\n    source: s\n    events: [B]\n",
                2,
                3,
                "used twice",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(what), "{text}: {e}");
            assert_eq!((e.line, e.column), (Some(line), Some(col)), "{text}: {e}");
        }
    }
}
