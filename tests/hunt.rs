//! `trailwarden hunt`: the shipped detections and Sigma rules over history, from a folder of
//! files in the shapes exports and deliveries write (real records from the corpus), and from
//! a trail's bucket that trailsim delivered into. Exit codes, output formats, and files that
//! cannot be read reported by name.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use support::lab::{Lab, Options};
use support::{manifest_dir, trailsim, trailsim_control, trailwarden};

fn corpus(file: &str) -> PathBuf {
    manifest_dir()
        .join("../shared/corpus/cloudtrail")
        .join(file)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `trailwarden hunt ARGS --format json` with the shipped detections and Sigma rules:
/// exit code, the document, stderr.
fn hunt(account: Option<&support::Account>, args: &[&str]) -> (i32, Value, String) {
    let shipped = manifest_dir().join("config");
    let mut command = trailwarden(account);
    if account.is_some() {
        command.env("AWS_ENDPOINT_URL", trailsim());
    }
    let out = command
        .arg("hunt")
        .args(args)
        .arg("--detections")
        .arg(shipped.join("detections.yaml"))
        .arg("--sigma")
        .arg(shipped.join("sigma"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (out.status.code().unwrap(), doc, stderr)
}

/// (detection, event id) of every hit, sorted.
fn hits(doc: &Value) -> Vec<(String, String)> {
    let mut hits: Vec<(String, String)> = doc["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["detection"].as_str().unwrap().to_string(),
                h["event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    hits.sort();
    hits
}

fn problems(doc: &Value) -> Vec<String> {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_string())
        .collect()
}

/// The folder: a real log file gzipped (invictus-ir), a real tamper record as a pretty array
/// (Stratus Red Team), the same record again in a JSON lines export beside a benign record
/// and a broken line, a corrupt `.json.gz`, a digest folder and a note that are passed over.
fn folder(dir: &Path) {
    let logs = dir.join("AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10");
    std::fs::create_dir_all(&logs).unwrap();
    let real = "218007301253_CloudTrail_us-east-1_20230710T1205Z_SjF3IkuNXJkoHyar.json";
    let body = std::fs::read(corpus(&format!("invictus-ir/{real}"))).unwrap();
    std::fs::write(logs.join(format!("{real}.gz")), gzip(&body)).unwrap();
    let exports = dir.join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    std::fs::copy(
        corpus("stratus-red-team/aws.defense-evasion.cloudtrail-stop.json"),
        exports.join("stop.json"),
    )
    .unwrap();
    let stop: Value = serde_json::from_slice(
        &std::fs::read(corpus(
            "stratus-red-team/aws.defense-evasion.cloudtrail-stop.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let benign = json!({"eventVersion": "1.08", "eventID": "benign-1",
        "eventTime": "2024-07-31T13:07:00Z", "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketVersioning", "awsRegion": "us-east-1",
        "recipientAccountId": "143434273843",
        "requestParameters": {"bucketName": "b", "VersioningConfiguration": {"Status": "Enabled"}}});
    std::fs::write(
        exports.join("lake-export.jsonl"),
        format!("{}\n{{\"eventName\": broken\n{benign}\n", stop[0]),
    )
    .unwrap();
    std::fs::write(
        exports.join("cut.json.gz"),
        &gzip(b"{\"Records\":[]}")[..12],
    )
    .unwrap();
    std::fs::create_dir_all(logs.join("../../../CloudTrail-Digest")).unwrap();
    std::fs::write(logs.join("../../../CloudTrail-Digest/d.json.gz"), b"digest").unwrap();
    std::fs::write(exports.join("README.txt"), b"exported for the incident").unwrap();
}

#[test]
fn a_folder_of_exports_and_log_files() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let folder_arg = dir.path().to_str().unwrap();
    let (code, doc, stderr) = hunt(None, &[folder_arg]);
    assert_eq!(code, 1, "hits: exit 1\n{stderr}");
    let found = hits(&doc);
    let stop_id = "10163ed2-2253-469d-a5ee-cbc6651f8934";
    // The Stratus StopLogging, in two files, is one hit per detection: the YAML detection and
    // the shipped Sigma rule on stopped trails.
    let on_stop: Vec<&str> = found
        .iter()
        .filter(|(_, id)| id == stop_id)
        .map(|(d, _)| d.as_str())
        .collect();
    assert!(on_stop.contains(&"cloudtrail_stop_logging"), "{found:?}");
    assert_eq!(
        on_stop.len(),
        2,
        "YAML detection and Sigma rule, once each: {found:?}"
    );
    // The real log file holds a DeleteFlowLogs: found through the gzip reader.
    assert!(
        found.iter().any(|(d, _)| d == "ec2_flow_logs_deleted"),
        "{found:?}"
    );
    // Enabling versioning is no hit.
    assert!(!found.iter().any(|(_, id)| id == "benign-1"), "{found:?}");
    // Every file the hunt could not wholly read is named, here and on stderr.
    let named = problems(&doc);
    assert!(
        named.iter().any(|f| f.ends_with("cut.json.gz")),
        "{named:?}"
    );
    assert!(
        named.iter().any(|f| f.ends_with("lake-export.jsonl")),
        "{named:?}"
    );
    assert!(stderr.contains("cut.json.gz"), "{stderr}");
    assert_eq!(doc["totals"]["files"], 4, "{doc}");
    assert_eq!(
        doc["totals"]["passed_over"], 2,
        "the digest and the note: {doc}"
    );
    let sigma = doc["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["sigma_title"].is_string())
        .expect("a Sigma hit");
    assert!(
        sigma["sigma_author"].is_string(),
        "the licence asks for the author"
    );

    // A range before every record: nothing found, but the broken files still make it 2.
    let (code, doc, _) = hunt(None, &[folder_arg, "--end-time", "2020-01-01"]);
    assert_eq!((code, hits(&doc).len()), (2, 0));
    // The real log file alone: its hit, nothing wrong.
    let (code, doc, _) = hunt(None, &[dir.path().join("AWSLogs").to_str().unwrap()]);
    assert_eq!(code, 1, "{doc}");
    assert!(problems(&doc).is_empty(), "{doc}");
    // Only readable files and no hit: 0. JSON lines: one hit per line.
    let clean = dir.path().join("clean.jsonl");
    std::fs::write(&clean, "{\"eventID\":\"x\",\"eventTime\":\"2024-01-01T00:00:00Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\"}\n").unwrap();
    let (code, doc, _) = hunt(None, &[clean.to_str().unwrap()]);
    assert_eq!((code, hits(&doc).len()), (0, 0), "{doc}");
    let out = trailwarden(None)
        .args(["hunt", "--format", "jsonl", "--detections"])
        .arg(manifest_dir().join("config/detections.yaml"))
        .arg(dir.path().join("exports/stop.json"))
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["detection"], "cloudtrail_stop_logging");
    // A missing path is an error, and nothing to hunt with is one too.
    let (code, _, stderr) = hunt(None, &["/nonexistent/hunt"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/hunt"), "{stderr}");
    let out = trailwarden(None)
        .args(["hunt", folder_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to hunt with"));
}

/// A trail's bucket: the weakening of the trail's own bucket is found in the range (in the
/// bucket's region folder) and a change to another bucket is not; an object that is no log
/// file is named; a range before the calls finds nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_trail_bucket_over_a_time_range() {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let s3 = lab.s3();
    let other = format!("other-{}", lab.account.id);
    s3.create_bucket().bucket(&other).send().await.unwrap();
    for bucket in [&lab.bucket, &other] {
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let delivered = trailsim_control("/_trailsim/deliver", &json!({}));
    let ours: Vec<&str> = delivered["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["key"].as_str())
        .filter(|k| k.contains(&format!("/{}/", lab.account.id)))
        .collect();
    assert!(!ours.is_empty(), "{delivered}");
    // An object planted among the log files: read, not a log file, named.
    let (named_like, _) = ours[0].rsplit_once('_').unwrap();
    let planted = format!("{named_like}_PlantedPlanted00.json.gz");
    s3.put_object()
        .bucket(&lab.bucket)
        .key(&planted)
        .body(ByteStream::from(b"not gzip, not json".to_vec()))
        .send()
        .await
        .unwrap();

    let start = before.to_rfc3339();
    let (code, doc, stderr) = hunt(
        Some(&lab.account),
        &["--trail", &lab.trail_name, "--start-time", &start],
    );
    assert_eq!(code, 1, "{stderr}\n{doc}");
    let hits_of = |detection: &str| -> Vec<&Value> {
        doc["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["event_name"] == "PutBucketVersioning" && h["detection"] == detection)
            .collect()
    };
    // SigmaHQ's rule is written for any bucket (its `requestParameters|contains` searches the
    // request's JSON text): both suspensions.
    let sigma = hits_of("a136ac98-b2bc-4189-a14d-f0d0388e57a7");
    assert_eq!(sigma.len(), 2, "the Sigma rule, on both buckets: {doc}");
    let versioning = hits_of("s3_trail_bucket_versioning_suspended");
    assert_eq!(versioning.len(), 1, "only the trail's bucket: {doc}");
    assert_eq!(versioning[0]["resource"], lab.bucket.as_str());
    assert_eq!(
        versioning[0]["detection"],
        "s3_trail_bucket_versioning_suspended"
    );
    assert!(
        versioning[0]["file"]
            .as_str()
            .unwrap()
            .starts_with(&format!("s3://{}/AWSLogs/{}/", lab.bucket, lab.account.id)),
        "{doc}"
    );
    let named = problems(&doc);
    assert!(
        named
            .iter()
            .any(|f| f.ends_with("PlantedPlanted00.json.gz")),
        "{named:?}"
    );

    // Hours before the calls: no file delivered then, no hit.
    let (code, doc, _) = hunt(
        Some(&lab.account),
        &[
            "--trail",
            &lab.trail_name,
            "--start-time",
            &(before - chrono::Duration::hours(3)).to_rfc3339(),
            "--end-time",
            &(before - chrono::Duration::hours(2)).to_rfc3339(),
        ],
    );
    assert_eq!((code, hits(&doc).len()), (0, 0), "{doc}");
    // A trail that does not exist: 2, naming it.
    let (code, doc, stderr) = hunt(
        Some(&lab.account),
        &["--trail", "no-such-trail", "--start-time", &start],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such-trail"), "{stderr}\n{doc}");
}
