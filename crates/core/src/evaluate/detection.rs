//! Detections: which CloudTrail records are tampering with the audit trail (pure).
//!
//! A record matches a detection when its source and name are the detection's, its outcome is
//! the one asked for, it acts on a watched trail's bucket, key or log group when the detection
//! has a `target`, and the detection's condition holds over the record and its `derived`
//! facts (`record_facts`).

use super::condition::{Document, Lookup, Truth, eval};
use super::record_facts::{Retention, derive};
use crate::config::Severity;
use crate::config::detections::{Detection, DetectionSet, OutcomeFilter, Target};
use crate::record::Record;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The resources of the trails trailwarden watches, as the last trail poll saw them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Watched {
    /// Bucket name → the key prefixes its trails write under (`[prefix/]AWSLogs/`).
    pub buckets: BTreeMap<String, Vec<String>>,
    /// Key ids, key ARNs and aliases (`alias/name`) of the trails' KMS keys.
    pub keys: BTreeSet<String>,
    /// CloudWatch Logs group names the trails send to.
    pub log_groups: BTreeSet<String>,
    pub retention: Retention,
    /// No trail to scope the detections to (a hunt over local files): every bucket, key and
    /// log group counts as a trail's, and every lifecycle rule as reaching its logs.
    pub any_resource: bool,
    /// The request ids of the daemon's own remediation calls: their records are the daemon
    /// putting a failure right, not tampering (a request id cannot be chosen by a caller).
    pub own_requests: BTreeSet<String>,
}

impl Watched {
    /// Adds a trail's resources.
    pub fn add_trail(
        &mut self,
        bucket: Option<&str>,
        key_prefix: Option<&str>,
        kms_key: Option<&str>,
        log_group_arn: Option<&str>,
    ) {
        if let Some(bucket) = bucket {
            let root = match key_prefix.map(|p| p.trim_matches('/')) {
                Some(p) if !p.is_empty() => format!("{p}/AWSLogs/"),
                _ => "AWSLogs/".to_string(),
            };
            self.buckets
                .entry(bucket.to_string())
                .or_default()
                .push(root);
        }
        if let Some(key) = kms_key {
            self.add_key(key);
        }
        // arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*
        if let Some(name) = log_group_arn.and_then(|a| a.split(":log-group:").nth(1)) {
            let name = name.strip_suffix(":*").unwrap_or(name);
            self.log_groups.insert(name.to_string());
        }
    }

    /// A key reference: its ARN, id, or alias. An ARN also adds its id (or alias name).
    pub fn add_key(&mut self, key: &str) {
        self.keys.insert(key.to_string());
        if let Some(short) = short_key(key) {
            self.keys.insert(short);
        }
    }

    fn has_key(&self, reference: &str) -> bool {
        self.keys.contains(reference)
            || short_key(reference).is_some_and(|s| self.keys.contains(&s))
    }

    fn targets(&self, target: Target, record: &Record) -> bool {
        if self.any_resource {
            return true;
        }
        let request = &record.raw["requestParameters"];
        let named = |field: &str| request[field].as_str().unwrap_or_default().to_string();
        match target {
            Target::TrailBucket => self.buckets.contains_key(&named("bucketName")),
            // UpdateAlias and DeleteAlias name the alias, the other calls the key.
            Target::TrailKey => self.has_key(&named("keyId")) || self.has_key(&named("aliasName")),
            Target::TrailLogGroup => self.log_groups.contains(&named("logGroupName")),
        }
    }
}

/// `arn:aws:kms:r:a:key/ID` → `ID`; `arn:aws:kms:r:a:alias/x` → `alias/x`.
fn short_key(key: &str) -> Option<String> {
    if !key.starts_with("arn:") {
        return None;
    }
    let resource = key.splitn(6, ':').nth(5)?;
    Some(
        resource
            .strip_prefix("key/")
            .unwrap_or(resource)
            .to_string(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// A record that matched a detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub detection: String,
    pub severity: Severity,
    pub outcome: Outcome,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub event_source: String,
    pub event_name: String,
    pub account: String,
    pub region: String,
    pub actor: Option<String>,
    pub actor_type: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub resource: Option<String>,
    pub request: String,
    pub error_code: Option<String>,
    /// It touched a trail, its bucket or its key: their posture should be collected again now.
    pub recollect: bool,
    /// A Sigma rule's title and author (its licence asks that alerts keep the author).
    pub sigma: Option<(String, Option<String>)>,
}

/// A record with its derived facts under `derived`, without copying the record.
struct RecordDocument<'a> {
    raw: &'a Value,
    derived: Value,
}

impl Document for RecordDocument<'_> {
    fn lookup(&self, path: &str) -> Lookup<'_> {
        match path.split_once('.') {
            Some(("derived", rest)) => self.derived.lookup(rest),
            None if path == "derived" => self.derived.lookup(path),
            _ => self.raw.lookup(path),
        }
    }
}

/// Whether some detection looks at records of this source and name: the others need not
/// be parsed at all.
pub fn wants(detections: &DetectionSet, source: &str, name: &str) -> bool {
    detections.wants(source, name) || detections.sigma.may_match(name)
}

/// Every detection `record` matches.
pub fn detect(
    detections: &DetectionSet,
    record: &Record,
    watched: &Watched,
    now: DateTime<Utc>,
) -> Vec<Hit> {
    if (record.raw["requestID"].as_str()).is_some_and(|id| watched.own_requests.contains(id)) {
        return Vec::new();
    }
    let outcome = if record.failed() {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    let candidates: Vec<&Detection> = detections
        .detections()
        .iter()
        .filter(|d| d.source == record.event_source && d.events.0.contains(&record.event_name))
        .filter(|d| match d.outcome {
            OutcomeFilter::Any => true,
            OutcomeFilter::Success => outcome == Outcome::Success,
            OutcomeFilter::Failure => outcome == Outcome::Failure,
        })
        .filter(|d| d.target.is_none_or(|t| watched.targets(t, record)))
        .collect();
    let sigma = detections.sigma.matches(&record.raw);
    let hit = |id: &str, severity, recollect| Hit {
        detection: id.to_string(),
        severity,
        outcome,
        event_id: record.event_id.clone(),
        event_time: record.event_time,
        event_source: record.event_source.clone(),
        event_name: record.event_name.clone(),
        account: record.account.clone(),
        region: record.region.clone(),
        actor: record.actor.arn.clone(),
        actor_type: record.actor.kind.clone(),
        source_ip: record.source_ip.clone(),
        user_agent: record.user_agent.clone(),
        resource: record.resource(),
        request: record.request_summary(300),
        error_code: record.error_code.clone(),
        recollect,
        sigma: None,
    };
    let mut hits: Vec<Hit> = sigma
        .iter()
        .map(|rule| Hit {
            sigma: Some((rule.title.clone(), rule.author.clone())),
            ..hit(&rule.id, rule.severity, false)
        })
        .collect();
    if candidates.is_empty() {
        return hits;
    }
    let log_roots = match record.raw["requestParameters"]["bucketName"].as_str() {
        // The empty prefix: every rule reaches it.
        _ if watched.any_resource => vec![String::new()],
        Some(bucket) => watched.buckets.get(bucket).cloned().unwrap_or_default(),
        None => Vec::new(),
    };
    let doc = RecordDocument {
        raw: &record.raw,
        derived: derive(record, &log_roots, &watched.retention),
    };
    let yaml = candidates
        .into_iter()
        .filter(|d| {
            d.when
                .as_ref()
                .is_none_or(|c| matches!(eval(c, &doc, now), Truth::True(_)))
        })
        .map(|d| {
            let recollect = record.event_source == "cloudtrail.amazonaws.com"
                || matches!(d.target, Some(Target::TrailBucket | Target::TrailKey));
            hit(&d.id.0, d.severity, recollect)
        });
    let mut all: Vec<Hit> = yaml.collect();
    all.append(&mut hits);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use serde_json::json;
    use std::path::Path;

    /// The shipped default detections.
    fn defaults() -> DetectionSet {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/detections.yaml");
        crate::config::yaml::load_file(&path).unwrap()
    }

    fn record(source: &str, name: &str, request: Value, error: Option<&str>) -> Record {
        let mut v = json!({
            "eventID": "e1", "eventTime": "2026-11-24T10:00:00Z", "eventSource": source,
            "eventName": name, "awsRegion": "us-east-1", "recipientAccountId": "123456789012",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/ops/eve"},
            "requestParameters": request, "readOnly": false
        });
        if let Some(code) = error {
            v["errorCode"] = json!(code);
        }
        Record::from_value(v).unwrap()
    }

    fn watched() -> Watched {
        let mut w = Watched::default();
        w.add_trail(
            Some("trail-logs"),
            None,
            Some("arn:aws:kms:us-east-1:123456789012:key/1234abcd"),
            Some("arn:aws:logs:us-east-1:123456789012:log-group:trail-group:*"),
        );
        w.add_key("alias/trail");
        w
    }

    fn ids(record: &Record) -> Vec<String> {
        detect(&defaults(), record, &watched(), Utc::now())
            .into_iter()
            .map(|h| h.detection)
            .collect()
    }

    #[test]
    fn the_daemons_own_calls_are_no_detection_and_nobody_else_can_claim_to_be_them() {
        let start = |request_id: &str| {
            let mut v = record(
                "kms.amazonaws.com",
                "DisableKey",
                json!({"keyId": "alias/trail"}),
                None,
            )
            .raw
            .clone();
            v["requestID"] = json!(request_id);
            Record::from_value(v).unwrap()
        };
        let mut w = watched();
        assert!(!detect(&defaults(), &start("req-1"), &w, Utc::now()).is_empty());
        w.own_requests.insert("req-1".into());
        assert!(detect(&defaults(), &start("req-1"), &w, Utc::now()).is_empty());
        assert!(!detect(&defaults(), &start("req-2"), &w, Utc::now()).is_empty());
    }

    #[test]
    fn stop_logging_success_and_failure() {
        let r = record(
            "cloudtrail.amazonaws.com",
            "StopLogging",
            json!({"name": "lab"}),
            None,
        );
        let hits = detect(&defaults(), &r, &watched(), Utc::now());
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].outcome, Outcome::Success);
        assert_eq!(hits[0].resource.as_deref(), Some("lab"));
        assert!(hits[0].recollect);
        assert_eq!(
            hits[0].actor.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/ops/eve")
        );
        let failed = record(
            "cloudtrail.amazonaws.com",
            "StopLogging",
            json!({"name": "gone"}),
            Some("TrailNotFoundException"),
        );
        let hits = detect(&defaults(), &failed, &watched(), Utc::now());
        assert_eq!(hits[0].outcome, Outcome::Failure);
    }

    #[test]
    fn lifecycle_only_on_the_trail_bucket_and_only_when_short() {
        let put = |bucket: &str, days: u64| {
            record(
                "s3.amazonaws.com",
                "PutBucketLifecycle",
                json!({"bucketName": bucket, "LifecycleConfiguration": {"Rule": {"Status": "Enabled", "Expiration": {"Days": days}}}}),
                None,
            )
        };
        assert_eq!(
            ids(&put("trail-logs", 1)),
            ["s3_trail_bucket_lifecycle_shortened"]
        );
        assert!(ids(&put("trail-logs", 800)).is_empty());
        assert!(ids(&put("other-bucket", 1)).is_empty());
    }

    #[test]
    fn weakening_updates_and_selectors() {
        let update =
            |request: Value| record("cloudtrail.amazonaws.com", "UpdateTrail", request, None);
        assert_eq!(
            ids(&update(
                json!({"name": "lab", "enableLogFileValidation": false})
            )),
            ["cloudtrail_trail_weakened"]
        );
        assert_eq!(
            ids(&update(json!({"name": "lab", "kmsKeyId": ""}))),
            ["cloudtrail_trail_weakened"]
        );
        assert!(
            ids(&update(
                json!({"name": "lab", "enableLogFileValidation": true})
            ))
            .is_empty()
        );
        let selectors = |sel: Value| {
            record(
                "cloudtrail.amazonaws.com",
                "PutEventSelectors",
                json!({"trailName": "lab", "eventSelectors": sel}),
                None,
            )
        };
        assert_eq!(
            ids(&selectors(
                json!([{"readWriteType": "All", "includeManagementEvents": false}])
            )),
            ["cloudtrail_management_events_stopped"]
        );
        assert!(
            ids(&selectors(
                json!([{"readWriteType": "All", "includeManagementEvents": true}])
            ))
            .is_empty()
        );
    }

    #[test]
    fn keys_by_id_arn_or_alias_and_nothing_else() {
        let disable = |key: &str| {
            record(
                "kms.amazonaws.com",
                "DisableKey",
                json!({"keyId": key}),
                None,
            )
        };
        assert_eq!(ids(&disable("1234abcd")), ["kms_trail_key_disabled"]);
        assert_eq!(
            ids(&disable("arn:aws:kms:us-east-1:123456789012:key/1234abcd")),
            ["kms_trail_key_disabled"]
        );
        assert!(ids(&disable("another-key")).is_empty());
        let delete = |group: &str| {
            record(
                "logs.amazonaws.com",
                "DeleteLogGroup",
                json!({"logGroupName": group}),
                None,
            )
        };
        assert_eq!(
            ids(&delete("trail-group")),
            ["logs_trail_log_group_deleted"]
        );
        assert!(ids(&delete("app-logs")).is_empty());
    }

    #[test]
    fn reads_never_match_the_defaults() {
        for (source, name) in [
            ("cloudtrail.amazonaws.com", "DescribeTrails"),
            ("cloudtrail.amazonaws.com", "GetTrailStatus"),
            ("cloudtrail.amazonaws.com", "LookupEvents"),
            ("s3.amazonaws.com", "GetBucketLifecycle"),
            ("kms.amazonaws.com", "DescribeKey"),
        ] {
            assert!(
                ids(&record(
                    source,
                    name,
                    json!({"name": "lab", "bucketName": "trail-logs", "keyId": "1234abcd"}),
                    None
                ))
                .is_empty()
            );
        }
    }

    #[test]
    fn user_detections_in_the_condition_language() {
        let set: DetectionSet = parse_str(
            Path::new("mine.yaml"),
            "detections:\n  - id: big_bucket_policy\n    severity: low\n    source: s3.amazonaws.com\n    events: [PutBucketPolicy]\n    outcome: failure\n    when: { path: userIdentity.type, eq: Root }\n",
        )
        .unwrap();
        let mut r = record(
            "s3.amazonaws.com",
            "PutBucketPolicy",
            json!({"bucketName": "x"}),
            Some("AccessDenied"),
        );
        assert!(
            detect(&set, &r, &watched(), Utc::now()).is_empty(),
            "not root"
        );
        r.raw["userIdentity"]["type"] = json!("Root");
        assert_eq!(detect(&set, &r, &watched(), Utc::now()).len(), 1);
        r.error_code = None;
        assert!(
            detect(&set, &r, &watched(), Utc::now()).is_empty(),
            "only failures"
        );
    }
}
