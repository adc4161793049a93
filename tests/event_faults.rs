//! Injected LookupEvents faults delay the event history watcher but lose nothing. A test
//! binary of its own: trailsim's faults apply to every caller, so no other test may share it.

mod support;

use serde_json::json;
use support::lab::{Lab, Options};
use support::{Daemon, metric_value, trailsim, trailsim_control};

fn tamper(m: &str, detection: &str, outcome: &str) -> f64 {
    metric_value(
        m,
        "trailwarden_tamper_events_total",
        &[("detection", detection), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

fn event_polls(m: &str) -> f64 {
    metric_value(
        m,
        "trailwarden_poll_duration_seconds_count",
        &[("poller", "events")],
    )
    .unwrap_or(0.0)
}

/// Waits until `n` more event polls have finished.
fn wait_polls(daemon: &mut Daemon, n: f64) {
    let from = event_polls(&daemon.metrics());
    daemon.wait_until("more event polls", |d| {
        event_polls(&d.metrics()) >= from + n
    });
}

async fn start(trails_cron: &str, extra: &str, log: &str) -> (Lab, Daemon) {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let port = support::free_port();
    let config = lab.write_events_config(port, trailsim(), trails_cron, extra);
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join(log));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    wait_polls(&mut daemon, 1.0);
    (lab, daemon)
}

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
