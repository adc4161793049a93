//! `trailwarden run` against moto: the metrics and `/status` a user watches, the Stop Logging
//! signal within one scheduled tick, first-seen times across a restart, and config reload.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use support::lab::{Lab, Options};
use support::{Daemon, metric_value};

fn trails_polls(metrics: &str) -> f64 {
    metric_value(
        metrics,
        "trailwarden_poll_duration_seconds_count",
        &[("poller", "trails")],
    )
    .unwrap_or(0.0)
}

/// The finding of `policy` in `/status`.
fn status_finding(status: &serde_json::Value, policy: &str) -> serde_json::Value {
    status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == policy)
        .unwrap_or_else(|| panic!("no {policy} finding in {status:#}"))
        .clone()
}

fn trail_logging(metrics: &str) -> Option<f64> {
    metric_value(metrics, "trailwarden_trail_logging", &[("trail", "lab")])
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_logging_shows_within_one_tick_and_survives_a_restart() {
    // A bucket that expires logs after 30 days: a failure that depends on posture data.
    let lab = Lab::build(Options {
        lifecycle_days: Some(30),
        ..Options::default()
    })
    .await;
    let port = support::free_port();
    let config = lab.write_config(port, &lab.account.endpoint);
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join("run1.log"));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));

    let m = daemon.metrics();
    assert_eq!(trail_logging(&m), Some(1.0), "{m}");
    let labels = [
        ("policy", "trail-logging"),
        ("resource", "lab"),
        ("severity", "critical"),
    ];
    let pass = |m: &str, status| {
        let mut l = labels.to_vec();
        l.push(("status", status));
        metric_value(m, "trailwarden_policy_status", &l)
    };
    assert_eq!(pass(&m, "pass"), Some(1.0), "{m}");
    assert_eq!(pass(&m, "fail"), Some(0.0));
    assert!(m.contains(&format!("account=\"{}\"", lab.account.id)));
    assert!(
        metric_value(
            &m,
            "trailwarden_aws_api_calls_total",
            &[
                ("service", "cloudtrail"),
                ("operation", "GetTrailStatus"),
                ("outcome", "success")
            ]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "API calls are counted: {m}"
    );
    assert!(!m.contains("arn:aws"), "no ARNs in labels");

    lab.stop_logging().await;
    let polls_at_stop = trails_polls(&daemon.metrics());
    // A poll that had started before StopLogging may still report 1; every poll that
    // started after it must report 0. Two more completed polls include at least one such.
    daemon.wait_until("two trail polls after StopLogging", |d| {
        trails_polls(&d.metrics()) >= polls_at_stop + 2.0
    });
    let m = daemon.metrics();
    assert_eq!(
        trail_logging(&m),
        Some(0.0),
        "one tick later the metric shows the stop"
    );
    assert_eq!(pass(&m, "fail"), Some(1.0));

    let status = daemon.status();
    let trail = &status["trails"][0];
    assert_eq!(trail["arn"], lab.trail_arn.as_str());
    assert_eq!(trail["is_logging"], false);
    let failing = status_finding(&status, "trail-logging");
    assert_eq!(failing["status"], "fail");
    assert_eq!(failing["resource"], lab.trail_arn.as_str());
    let since = failing["since"].as_str().unwrap().to_string();
    let retention = status_finding(&status, "retention");
    assert_eq!(retention["status"], "fail", "{retention:#}");
    let retention_since = retention["since"].as_str().unwrap().to_string();
    assert!(
        status["pollers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "trails" && p["last_success"].is_string())
    );
    assert_eq!(daemon.get("/healthz").unwrap().0, 200);

    // Restart: the failure keeps the time it was first seen.
    assert!(daemon.stop().success(), "clean exit on SIGTERM");
    let daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join("run2.log"));
    let mut daemon = daemon;
    daemon.wait_until("ready again", |d| {
        d.get("/readyz").is_some_and(|(c, _)| c == 200)
    });
    let status = daemon.status();
    let again = status_finding(&status, "trail-logging");
    assert_eq!(again["status"], "fail");
    assert_eq!(
        again["since"].as_str().unwrap(),
        since,
        "since kept across restart"
    );
    let again = status_finding(&status, "retention");
    assert_eq!(again["status"], "fail");
    assert_eq!(
        again["since"].as_str().unwrap(),
        retention_since,
        "a failure that needs bucket data keeps its since too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_reload_keeps_the_running_configuration() {
    let lab = Lab::build(Options::default()).await;
    let port = support::free_port();
    let config = lab.write_config(port, &lab.account.endpoint);
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join("run.log"));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    let reloads = |d: &Daemon| {
        metric_value(
            &d.metrics(),
            "trailwarden_config_last_reload_successful",
            &[],
        )
    };
    assert_eq!(reloads(&daemon), Some(1.0));

    let policies = lab.dir.path().join("policies.yaml");
    let good = std::fs::read_to_string(&policies).unwrap();
    let recorder = "  - id: config-recording\n    check: config_recording\n    severity: medium\n";
    assert!(good.contains(recorder));
    let without_recorder = good.replace(recorder, "");
    // Drops a policy and breaks another: rejected as a whole.
    std::fs::write(
        &policies,
        format!("{without_recorder}\n  - id: broken\n    check: nope\n"),
    )
    .unwrap();
    let hup = |d: &Daemon| {
        std::process::Command::new("kill")
            .args(["-HUP", &d.child.id().to_string()])
            .status()
            .unwrap()
    };
    hup(&daemon);
    daemon.wait_until("reload rejected", |d| reloads(d) == Some(0.0));
    assert!(
        daemon.log_text().contains("reload rejected"),
        "{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains("policies.yaml:"),
        "names the file"
    );
    // Still evaluating the old policies, config-recording included.
    let polls = trails_polls(&daemon.metrics());
    daemon.wait_until("another evaluation", |d| trails_polls(&d.metrics()) > polls);
    assert!(daemon.metrics().contains("policy=\"config-recording\""));

    // A good reload that drops a policy removes its series.
    std::fs::write(&policies, without_recorder).unwrap();
    hup(&daemon);
    daemon.wait_until("reload accepted", |d| reloads(d) == Some(1.0));
    daemon.wait_until("policy removed", |d| {
        !d.metrics().contains("policy=\"config-recording\"")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_iam_policy_grants_exactly_what_the_daemon_calls() {
    // Through trailsim, with the default detections: event history is read too, and the
    // bucket holds delivered log files and a digest for the bucket poller to read.
    let lab = Lab::build_at(support::trailsim(), Options::default()).await;
    support::trailsim_control("/_trailsim/deliver", &serde_json::json!({}));
    support::trailsim_control("/_trailsim/digest", &serde_json::json!({}));
    let port = support::free_port();
    let config = lab.write_events_config(port, support::trailsim(), "* * * * * *", "");
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join("run.log"));
    daemon.wait_until("ready and an event poll", |d| {
        d.get("/readyz").is_some_and(|(c, _)| c == 200)
            && support::metric_value(
                &d.metrics(),
                "trailwarden_poll_duration_seconds_count",
                &[("poller", "events")],
            )
            .is_some_and(|n| n >= 1.0)
            && support::metric_value(
                &d.metrics(),
                "trailwarden_poll_duration_seconds_count",
                &[("poller", "bucket")],
            )
            .is_some_and(|n| n >= 1.0)
    });
    let mut called = support::called_actions(&daemon.metrics());
    // Reading an SSE-KMS log object makes S3 call kms:Decrypt on the reader's behalf: no
    // request of ours shows it, the permission is needed all the same.
    if called.contains("s3:GetObject") {
        called.insert("kms:Decrypt".to_string());
    }
    let granted = support::granted_actions("deploy/iam-policy.json");
    assert!(
        called.len() >= 10,
        "the lab exercises every collector: {called:?}"
    );
    assert_eq!(
        called, granted,
        "deploy/iam-policy.json must match the calls made"
    );
}
