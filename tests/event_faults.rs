//! Injected LookupEvents faults delay the event history watcher but lose nothing. A test
//! binary of its own: trailsim's faults apply to every caller, so no other test may share it.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::event_watch::{start, tamper, wait_polls};
use support::{metric_value, trailsim_control};

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_server_errors_delay_but_lose_nothing() {
    let (lab, mut daemon) = start("*/5 * * * * *", "", "run.log").await;
    trailsim_control(
        "/_trailsim/faults",
        &json!({"operation": "LookupEvents", "kind": "throttling", "count": 3}),
    );
    lab.stop_logging().await;
    trailsim_control(
        "/_trailsim/faults",
        &json!({"operation": "LookupEvents", "kind": "server_error", "count": 2}),
    );
    daemon.wait_until("the StopLogging counted", |d| {
        tamper(&d.metrics(), "cloudtrail_stop_logging", "success") >= 1.0
    });
    wait_polls(&mut daemon, 2.0);
    let m = daemon.metrics();
    assert_eq!(tamper(&m, "cloudtrail_stop_logging", "success"), 1.0);
    let failed_calls = |outcome| {
        metric_value(
            &m,
            "trailwarden_aws_api_calls_total",
            &[("operation", "LookupEvents"), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    // Three throttled and two failed calls, retried through the limiter within the polls.
    assert!(failed_calls("client_error") >= 3.0, "{m}");
    assert!(failed_calls("server_error") >= 2.0, "{m}");
}
