//! Real CloudTrail records (../shared/corpus/cloudtrail, when present): every one parses, and
//! the default detections find the tampering the corpus documents, failed attempts included,
//! and nothing in the benign records around it.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use trailwarden::config::DetectionSet;
use trailwarden::evaluate::detection::{Watched, detect};
use trailwarden::record::Record;

fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for entry in walk(dir) {
        if entry.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
        let list = match doc {
            serde_json::Value::Array(list) => list,
            serde_json::Value::Object(ref m) if m.contains_key("Records") => {
                doc["Records"].as_array().unwrap().clone()
            }
            // A single record (the docs' examples), or something else (a digest file).
            other if other.get("eventName").is_some() => vec![other],
            _ => Vec::new(),
        };
        all.extend(list);
    }
    all
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn real_records_parse_and_the_tampering_is_detected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/cloudtrail");
    if !dir.is_dir() {
        eprintln!("no corpus at {}: skipped", dir.display());
        return;
    }
    let detections: DetectionSet = trailwarden::config::yaml::load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/detections.yaml"),
    )
    .unwrap();
    let raw = records(&dir);
    assert!(raw.len() > 300, "{} records", raw.len());
    let parsed: Vec<Record> = raw
        .into_iter()
        .map(|r| Record::from_value(r.clone()).unwrap_or_else(|e| panic!("{e}: {r}")))
        .collect();
    // The corpus has no trail descriptions: every bucket and log group its records touch is
    // taken as a watched trail's.
    let mut watched = Watched::default();
    for r in &parsed {
        let request = &r.raw["requestParameters"];
        let bucket = request["bucketName"].as_str();
        let group = request["logGroupName"]
            .as_str()
            .map(|g| format!("arn:aws:logs:us-east-1:1:log-group:{g}:*"));
        watched.add_trail(bucket, None, None, group.as_deref());
    }
    let mut ids = HashSet::new();
    let mut found = BTreeSet::new();
    for r in parsed.iter().filter(|r| ids.insert(r.event_id.clone())) {
        for hit in detect(&detections, r, &watched, chrono::Utc::now()) {
            found.insert((hit.detection, hit.event_name, hit.outcome.as_str()));
        }
    }
    let expected: BTreeSet<(String, String, &str)> = [
        ("cloudtrail_stop_logging", "StopLogging", "success"),
        ("cloudtrail_stop_logging", "StopLogging", "failure"),
        ("cloudtrail_trail_deleted", "DeleteTrail", "success"),
        ("cloudtrail_trail_deleted", "DeleteTrail", "failure"),
        (
            "cloudtrail_management_events_stopped",
            "PutEventSelectors",
            "success",
        ),
        ("cloudtrail_trail_created", "CreateTrail", "success"),
        ("cloudtrail_start_logging", "StartLogging", "success"),
        (
            "s3_trail_bucket_lifecycle_shortened",
            "PutBucketLifecycle",
            "success",
        ),
        (
            "s3_trail_bucket_policy_changed",
            "PutBucketPolicy",
            "success",
        ),
        (
            "s3_trail_bucket_policy_deleted",
            "DeleteBucketPolicy",
            "success",
        ),
        ("s3_trail_bucket_deleted", "DeleteBucket", "success"),
        ("s3_trail_bucket_deleted", "DeleteBucket", "failure"),
        ("organizations_leave", "LeaveOrganization", "failure"),
        ("logs_trail_log_group_deleted", "DeleteLogGroup", "success"),
        ("ec2_flow_logs_deleted", "DeleteFlowLogs", "success"),
        (
            "route53resolver_query_logging_deleted",
            "DeleteResolverQueryLogConfig",
            "success",
        ),
    ]
    .into_iter()
    .map(|(d, e, o)| (d.to_string(), e.to_string(), o))
    .collect();
    assert_eq!(found, expected);
}
