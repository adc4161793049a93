//! Steady state with fast digests: trailsim delivers every second and signs every four, while
//! API calls keep coming, for over a minute (across a minute boundary, where a log file of the
//! minute a digest ends in is listed by that digest and delivered beside the next one). The
//! bucket poller runs every second. Not one integrity failure, ever: `log-integrity` passes
//! at every look, every failure kind stays at 0, and log files keep being validated.
//!
//! A binary of its own: its trailsim runs on its own timers.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use chrono::Timelike;
use std::time::{Duration, Instant};
use support::lab::{Lab, Options};
use support::proof::{digest_failures, false_alarms, findings, status_of};
use support::{Daemon, TrailsimSetup, metric_value, trailsim_with};

#[test]
fn fast_digests_over_minute_boundaries_raise_no_integrity_failure() {
    let endpoint = trailsim_with(TrailsimSetup {
        timers: Some((Duration::from_secs(1), Duration::from_secs(4))),
        ..Default::default()
    })
    .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = runtime.block_on(Lab::build_at(&endpoint, Options::default()));
    let port = support::free_port();
    let config = lab.write_daemon_config(
        port,
        &endpoint,
        "* * * * * *",
        "10s",
        "bucket:\n  retry_backoff: 1s\n",
    );
    let mut d = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir.path().join("steady.log"),
    );
    // trailsim's clock (key minutes, digest times) 30 seconds before a minute boundary, so
    // the run crosses one.
    let offset = 30 - i64::from(chrono::Utc::now().second());
    support::trailsim_control(
        "/_trailsim/clock",
        &serde_json::json!({"offset_seconds": offset}),
    );
    let run = Duration::from_secs(45);
    let started = Instant::now();
    let mut looks = 0;
    while started.elapsed() < run {
        runtime.block_on(async {
            // Activity for the log files: a read and a write.
            let ct = lab.cloudtrail();
            ct.describe_trails().send().await.unwrap();
            ct.add_tags()
                .resource_id(&lab.trail_arn)
                .tags_list(
                    aws_sdk_cloudtrail::types::Tag::builder()
                        .key("k")
                        .value(format!("{looks}"))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        });
        let status = status_of(&d);
        for (policy, s, message) in findings(&status) {
            if policy == "log-integrity" {
                assert_ne!(s, "fail", "at {}s: {message}", started.elapsed().as_secs());
            }
        }
        looks += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    // The last digests judged: wait for validation to catch up, then look at the counts.
    d.wait_until("log-integrity passing", |d| {
        findings(&status_of(d))
            .iter()
            .any(|(p, s, _)| p == "log-integrity" && s == "pass")
    });
    let m = d.metrics();
    let validated = metric_value(
        &m,
        "trailwarden_log_files_validated_total",
        &[
            ("account", lab.account.id.as_str()),
            ("region", "us-east-1"),
        ],
    )
    .unwrap_or(0.0);
    eprintln!(
        "{looks} looks over {}s, {validated} log files validated",
        run.as_secs()
    );
    assert!(validated >= 25.0, "log files validated: {validated}\n{m}");
    assert!(digest_failures(&m).is_empty(), "{:?}", digest_failures(&m));
    d.stop();
    let alarms = false_alarms(
        &d.log_text(),
        &["cloudtrail_trail_created", "cloudtrail_start_logging"],
    );
    assert!(alarms.is_empty(), "{alarms:#?}");
}
