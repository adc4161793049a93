//! OCSF output, validated against the OCSF 1.8.0 schema (tests/ocsf/validate.py with PyPI
//! `jsonschema`): `check --format ocsf` (Compliance Findings), `hunt --format ocsf` (Detection
//! Findings, one per hit) and the daemon's `GET /findings?format=ocsf` (both).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use support::event_watch::{start, tamper};
use support::lab::{Lab, Options};
use support::{manifest_dir, trailsim, trailwarden};

/// Runs tests/ocsf/validate.py over `text` (an array or JSON lines).
fn run_validator(text: &str) -> std::process::Output {
    let (python, script) = testbed::ocsf_validator();
    let mut child = Command::new(python)
        .arg(script)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Validates `text` and returns the validator's summary line.
fn validate(text: &str) -> String {
    let out = run_validator(text);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "not valid OCSF 1.8.0:\n{stdout}\n{stderr}\n--- input ---\n{text}"
    );
    stdout
}

#[test]
fn the_validator_refuses_what_ocsf_does_not_allow() {
    // Without this, a validator that accepts anything would make every test below pass.
    let sample =
        std::fs::read_to_string(manifest_dir().join("tests/ocsf/samples/detection_finding.json"))
            .unwrap();
    validate(&sample);
    let mut event: Value = serde_json::from_str(&sample).unwrap();
    event["finding_info"]["not_in_ocsf"] = Value::Bool(true);
    let out = run_validator(&event.to_string());
    assert_eq!(out.status.code(), Some(1), "an unknown attribute fails");
}

#[test]
fn hunt_writes_one_valid_detection_finding_per_hit() {
    let corpus = manifest_dir().join("../shared/corpus/cloudtrail");
    assert!(
        corpus.is_dir(),
        "the CloudTrail corpus is expected at {}",
        corpus.display()
    );
    let shipped = manifest_dir().join("config");
    let run = |format: &str| {
        let out = trailwarden(None)
            .arg("hunt")
            .arg(&corpus)
            .arg("--detections")
            .arg(shipped.join("detections.yaml"))
            .arg("--sigma")
            .arg(shipped.join("sigma"))
            .args(["--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "the corpus has hits");
        String::from_utf8(out.stdout).unwrap()
    };
    let ocsf = run("ocsf");
    let summary = validate(&ocsf);
    let events: Vec<Value> = ocsf
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let json: Value = serde_json::from_str(&run("json")).unwrap();
    let mut hits: Vec<String> = json["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{}/{}",
                h["event_id"].as_str().unwrap(),
                h["detection"].as_str().unwrap()
            )
        })
        .collect();
    let mut uids: Vec<String> = events
        .iter()
        .map(|e| e["finding_info"]["uid"].as_str().unwrap().to_string())
        .collect();
    hits.sort();
    uids.sort();
    assert!(hits.len() > 10, "{summary}");
    assert_eq!(uids, hits, "one Detection Finding per hit");
    assert!(
        summary.contains(&format!("{} detection findings", hits.len())),
        "{summary}"
    );
    let stop = events
        .iter()
        .find(|e| e["finding_info"]["analytic"]["uid"] == "cloudtrail_stop_logging")
        .unwrap();
    assert_eq!(stop["api"]["operation"], "StopLogging");
    assert_eq!(stop["class_uid"], 2004);
    assert!(
        stop["evidences"][0]["actor"]["user"]["uid"].is_string(),
        "{stop}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_writes_valid_compliance_findings_that_keep_every_status() {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    lab.stop_logging().await;
    let config = lab.write_config(support::free_port(), trailsim());
    let out = trailwarden(Some(&lab.account))
        .args(["check", "--format", "ocsf", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a policy fails");
    let text = String::from_utf8(out.stdout).unwrap();
    validate(&text);
    let events: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (_, json) = lab.check();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(
        events.len(),
        findings.len(),
        "one Compliance Finding per finding"
    );
    for (event, finding) in events.iter().zip(findings) {
        let expected = match finding["status"].as_str().unwrap() {
            "pass" => (1, "Pass"),
            "fail" => (3, "Fail"),
            "error" => (99, "Error"),
            _ => (99, "Pending"),
        };
        let c = &event["compliance"];
        assert_eq!(
            (
                c["status_id"].as_i64().unwrap(),
                c["status"].as_str().unwrap()
            ),
            expected,
            "{event}"
        );
        assert_eq!(c["control"], finding["policy"]);
    }
    let logging = events
        .iter()
        .find(|e| e["compliance"]["control"] == "trail-logging")
        .unwrap();
    assert_eq!(logging["compliance"]["status"], "Fail");
    assert_eq!(logging["resources"][0]["uid"], lab.trail_arn.as_str());
    assert_eq!(logging["cloud"]["account"]["uid"], lab.account.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_serves_its_findings_and_detections_as_ocsf() {
    let (lab, mut daemon) = start("* * * * * *", "", "ocsf.log").await;
    lab.stop_logging().await;
    daemon.wait_until("the StopLogging counted", |d| {
        tamper(&d.metrics(), "cloudtrail_stop_logging", "success") >= 1.0
    });
    let (code, body) = daemon.get("/findings?format=ocsf").unwrap();
    assert_eq!(code, 200, "{body}");
    let summary = validate(&body);
    let events: Vec<Value> = serde_json::from_str(&body).unwrap();
    let detection = events
        .iter()
        .find(|e| e["finding_info"]["analytic"]["uid"] == "cloudtrail_stop_logging")
        .unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(detection["resources"][0]["uid"], lab.trail_arn.as_str());
    assert!(events.iter().any(|e| e["class_uid"] == 2003), "{summary}");

    let (code, json) = daemon.get("/findings").unwrap();
    assert_eq!(code, 200);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["findings"].as_array().unwrap().len(),
        events.iter().filter(|e| e["class_uid"] == 2003).count()
    );
    let (code, body) = daemon.get("/findings?format=xml").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("json or ocsf"), "{body}");
}
