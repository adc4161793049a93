//! The event history watcher against trailsim: tamper events counted exactly once, with who
//! did it, across polls and restarts; failed attempts; targets; history older than the
//! emulator. (Injected faults: `event_faults.rs`.)
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::event_watch::{start, tamper, wait_polls};
use support::lab::{Lab, Options};
use support::{Daemon, metric_value, trailsim, trailsim_control};

fn status_events(daemon: &Daemon, detection: &str) -> Vec<serde_json::Value> {
    daemon.status()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detection"] == detection)
        .cloned()
        .collect()
}

fn actor_of(lab: &Lab) -> String {
    format!(
        "arn:aws:sts::{}:assumed-role/trailwarden-test/trailwarden-tests",
        lab.account.id
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_logging_is_counted_once_with_its_actor_and_stops_the_trail_metric() {
    // Trails polled hourly: only the reaction to the event can update the logging metric.
    let (lab, mut daemon) = start("0 0 * * * *", "", "run1.log").await;
    let m = daemon.metrics();
    assert_eq!(
        metric_value(&m, "trailwarden_trail_logging", &[("trail", "lab")]),
        Some(1.0)
    );
    assert_eq!(tamper(&m, "cloudtrail_stop_logging", "success"), 0.0);

    lab.stop_logging().await;
    daemon.wait_until("the StopLogging counted", |d| {
        tamper(&d.metrics(), "cloudtrail_stop_logging", "success") >= 1.0
    });
    let m = daemon.metrics();
    assert_eq!(
        metric_value(&m, "trailwarden_trail_logging", &[("trail", "lab")]),
        Some(0.0),
        "re-collected before the event was published"
    );
    let events = status_events(&daemon, "cloudtrail_stop_logging");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["actor"], actor_of(&lab).as_str());
    assert_eq!(e["actor_type"], "AssumedRole");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["severity"], "critical");
    assert_eq!(e["resource"], lab.trail_arn.as_str());
    assert!(
        e["source_ip"].is_string() && e["user_agent"].is_string(),
        "{e}"
    );
    // The daemon's own calls are reads: none of them is ever detected.
    for e in daemon.status()["events"].as_array().unwrap() {
        let name = e["event_name"].as_str().unwrap();
        assert!(
            !["Describe", "Get", "List", "Lookup"]
                .iter()
                .any(|p| name.starts_with(p)),
            "{e}"
        );
    }

    // Later polls re-read the overlap: the event is a duplicate, not a second tamper event.
    wait_polls(&mut daemon, 2.0);
    let m = daemon.metrics();
    assert_eq!(tamper(&m, "cloudtrail_stop_logging", "success"), 1.0);
    let duplicates = metric_value(&m, "trailwarden_events_duplicates_total", &[]).unwrap_or(0.0);
    assert!(duplicates >= 1.0, "{m}");
    let logged = daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("tamper event detected") && l.contains("cloudtrail_stop_logging"))
        .count();
    assert_eq!(logged, 1, "one log line per detection");
    assert_eq!(daemon.stop().code(), Some(0));

    // A restart between polls neither loses nor double counts: the new process counts
    // nothing again, and /status still shows the event from the state store.
    let config = lab.dir.path().join("trailwarden.yaml");
    let port: u16 = daemon.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut again = Daemon::start(&lab.account, &config, port, lab.dir.path().join("run2.log"));
    again.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    wait_polls(&mut again, 2.0);
    let m = again.metrics();
    assert_eq!(tamper(&m, "cloudtrail_stop_logging", "success"), 0.0, "{m}");
    assert!(metric_value(&m, "trailwarden_events_duplicates_total", &[]).unwrap_or(0.0) >= 1.0);
    assert_eq!(status_events(&again, "cloudtrail_stop_logging").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempts_and_targets() {
    let (lab, mut daemon) = start("*/5 * * * * *", "", "run.log").await;
    // A StopLogging on a trail that does not exist fails, and is still an attempt.
    let missing = lab
        .cloudtrail()
        .stop_logging()
        .name("no-such-trail")
        .send()
        .await;
    assert!(missing.is_err());
    // A one-day lifecycle on the trail's bucket; an 800-day one on another bucket.
    lab.set_lifecycle_days(1).await;
    let other = format!("other-{}", lab.account.id);
    lab.s3()
        .create_bucket()
        .bucket(&other)
        .send()
        .await
        .unwrap();
    lab.s3()
        .put_bucket_lifecycle_configuration()
        .bucket(&other)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::LifecycleRule::builder()
                        .id("long")
                        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
                        .filter(
                            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                                .prefix("")
                                .build(),
                        )
                        .expiration(
                            aws_sdk_s3::types::LifecycleExpiration::builder()
                                .days(800)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    daemon.wait_until("both counted", |d| {
        let m = d.metrics();
        tamper(&m, "cloudtrail_stop_logging", "failure") >= 1.0
            && tamper(&m, "s3_trail_bucket_lifecycle_shortened", "success") >= 1.0
    });
    wait_polls(&mut daemon, 1.0);
    let m = daemon.metrics();
    assert_eq!(tamper(&m, "cloudtrail_stop_logging", "failure"), 1.0);
    assert_eq!(tamper(&m, "cloudtrail_stop_logging", "success"), 0.0);
    assert_eq!(
        tamper(&m, "s3_trail_bucket_lifecycle_shortened", "success"),
        1.0,
        "not the 800 days"
    );
    let failed = &status_events(&daemon, "cloudtrail_stop_logging")[0];
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["error_code"], "TrailNotFoundException");
    let lifecycle = &status_events(&daemon, "s3_trail_bucket_lifecycle_shortened")[0];
    assert_eq!(lifecycle["resource"], lab.bucket.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn history_thirty_days_back_is_read_on_first_start() {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let when = chrono::Utc::now() - chrono::Duration::days(30);
    let time = when.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    trailsim_control(
        "/_trailsim/records",
        &json!({"records": [{
            "eventVersion": "1.08",
            "eventID": format!("old-{}", lab.account.id),
            "eventTime": time,
            "eventSource": "cloudtrail.amazonaws.com",
            "eventName": "StopLogging",
            "awsRegion": "us-east-1",
            "recipientAccountId": lab.account.id,
            "sourceIPAddress": "203.0.113.9",
            "userAgent": "aws-cli/2.15",
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{}:user/mallory", lab.account.id)},
            "requestParameters": {"name": "lab"}
        }]}),
    );
    let port = support::free_port();
    let config = lab.write_events_config(
        port,
        trailsim(),
        "*/5 * * * * *",
        "event_history:\n  initial_window: 90d\n",
    );
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join("run.log"));
    daemon.wait_until("the old StopLogging counted", |d| {
        tamper(&d.metrics(), "cloudtrail_stop_logging", "success") >= 1.0
    });
    let events = status_events(&daemon, "cloudtrail_stop_logging");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_time"], time.as_str());
    assert_eq!(events[0]["source_ip"], "203.0.113.9");
    assert!(
        events[0]["actor"]
            .as_str()
            .unwrap()
            .ends_with(":user/mallory")
    );
}

/// The shipped Sigma example set beside the YAML detections: loaded, reported in `/status`
/// and the metrics, and its rule's hit counted and logged with the rule's title and author.
#[tokio::test(flavor = "multi_thread")]
async fn sigma_rules_fire_beside_the_detections() {
    const RULE: &str = "4db60cc0-36fb-42b7-9b58-a5b53019fb74"; // AWS CloudTrail Important Change
    let sigma = support::manifest_dir().join("config/sigma");
    let extra = format!("sigma: {}\n", sigma.display());
    let (lab, mut daemon) = start("0 0 * * * *", &extra, "sigma.log").await;
    let status = daemon.status();
    assert_eq!(
        status["sigma"]["rules"].as_array().unwrap().len(),
        8,
        "{status:#}"
    );
    assert!(status["sigma"]["problems"].as_array().unwrap().is_empty());
    let m = daemon.metrics();
    assert_eq!(
        metric_value(&m, "trailwarden_sigma_rules", &[("state", "loaded")]),
        Some(8.0)
    );
    assert_eq!(tamper(&m, RULE, "success"), 0.0);

    lab.stop_logging().await;
    daemon.wait_until("the Sigma rule's hit counted", |d| {
        let m = d.metrics();
        tamper(&m, RULE, "success") >= 1.0
            && tamper(&m, "cloudtrail_stop_logging", "success") >= 1.0
    });
    let log = daemon.log_text();
    assert!(
        log.contains("AWS CloudTrail Important Change") && log.contains("vitaliy0x1"),
        "the hit is logged with the rule's title and author"
    );
    let listed = daemon.status()["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.to_string().contains(RULE));
    assert!(listed, "{:#}", daemon.status()["events"]);
    daemon.stop();
}
