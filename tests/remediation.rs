//! Remediation against trailsim: in dry run it only reports; enabled, it starts a stopped
//! trail again within an event poll, leaves a person who stops it again alone for the
//! cool-down, leaves an allowed principal's change alone, and its own StartLogging (known by
//! its request id) is no tamper event.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::event_watch::{event_polls, tamper, wait_polls};
use support::lab::{Lab, Options};
use support::{Daemon, metric_value, trailsim, trailsim_request};

/// A lab and a daemon whose trail-logging policy says `remediate: true`, with `remediation`
/// as given. Trails are polled hourly: only the StopLogging event can start a remediation.
async fn start(remediation: &str, log: &str) -> (Lab, Daemon) {
    let marked = "    check: trail_logging\n    severity: critical\n";
    start_with(Options::default(), "0 0 * * * *", marked, remediation, log).await
}

/// A lab built with `options`, trails polled on `trails`, and `remediate: true` added to the
/// shipped policy whose lines are `policy`.
async fn start_with(
    options: Options,
    trails: &str,
    policy: &str,
    remediation: &str,
    log: &str,
) -> (Lab, Daemon) {
    let lab = Lab::build_at(trailsim(), options).await;
    let port = support::free_port();
    let config = lab.write_events_config(
        port,
        trailsim(),
        trails,
        &format!("remediation:\n{remediation}"),
    );
    let policies = lab.dir.path().join("policies.yaml");
    let text = std::fs::read_to_string(&policies).unwrap();
    let marked = text.replace(policy, &format!("{policy}    remediate: true\n"));
    assert_ne!(
        text, marked,
        "the shipped trail-logging policy is where the test expects it"
    );
    std::fs::write(&policies, marked).unwrap();
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join(log));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    wait_polls(&mut daemon, 1.0);
    (lab, daemon)
}

async fn is_logging(lab: &Lab) -> bool {
    let out = lab
        .cloudtrail()
        .get_trail_status()
        .name(&lab.trail_arn)
        .send()
        .await
        .unwrap();
    out.is_logging().unwrap()
}

fn decisions(daemon: &Daemon) -> Vec<Value> {
    daemon.status()["remediation"]["decisions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_decision(daemon: &mut Daemon, decision: &str, outcome: &str) -> Value {
    daemon.wait_until(&format!("a {decision} decision"), |d| {
        decisions(d)
            .iter()
            .any(|e| e["decision"] == decision && e["outcome"] == outcome)
    });
    decisions(daemon)
        .into_iter()
        .find(|e| e["decision"] == decision && e["outcome"] == outcome)
        .unwrap()
}

/// The calls a daemon made beyond the read-only policy, each checked against
/// deploy/iam-policy-remediation.json.
fn writes(metrics: &str) -> Vec<String> {
    let read_only = support::granted_actions("deploy/iam-policy.json");
    let remediation = support::granted_actions("deploy/iam-policy-remediation.json");
    let writes: Vec<String> = support::called_actions(metrics)
        .into_iter()
        .filter(|a| !read_only.contains(a))
        .collect();
    for w in &writes {
        assert!(
            remediation.contains(w),
            "{w} is not in deploy/iam-policy-remediation.json"
        );
    }
    writes
}

fn counted(daemon: &Daemon, outcome: &str) -> f64 {
    metric_value(
        &daemon.metrics(),
        "trailwarden_remediations_total",
        &[("action", "start_logging"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_only_reports() {
    let (lab, mut daemon) = start("  dry_run: true\n", "dry.log").await;
    assert_eq!(counted(&daemon, "dry_run"), 0.0);
    lab.stop_logging().await;
    let entry = wait_decision(&mut daemon, "dry_run", "dry_run");
    assert_eq!(entry["action"], "start_logging");
    assert_eq!(entry["target"], lab.trail_arn.as_str());
    assert_eq!(entry["trigger"]["event"]["event_name"], "StopLogging");
    assert!(entry["trigger"]["event"]["actor"].is_string(), "{entry}");
    assert_eq!(daemon.status()["remediation"]["dry_run"], true);
    wait_polls(&mut daemon, 2.0);
    assert!(!is_logging(&lab).await, "a dry run changes nothing");
    assert_eq!(
        counted(&daemon, "dry_run"),
        1.0,
        "reported once, not at every poll"
    );
    assert_eq!(counted(&daemon, "done"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn enabled_it_starts_the_trail_again_then_leaves_a_person_alone_for_the_cool_down() {
    let (lab, mut daemon) = start("  dry_run: false\n  cool_down: 1h\n", "act.log").await;
    let m = daemon.metrics();
    let starts_before = tamper(&m, "cloudtrail_start_logging", "success");
    let polls_before = event_polls(&m);
    lab.stop_logging().await;
    let entry = wait_decision(&mut daemon, "act", "done");
    assert!(is_logging(&lab).await, "{entry}");
    let polls = event_polls(&daemon.metrics()) - polls_before;
    assert!(
        polls <= 2.0,
        "within the event poll that saw the StopLogging: {polls} polls"
    );
    let request_id = entry["request_id"].as_str().unwrap().to_string();

    // The daemon's StartLogging is in CloudTrail, under its request id, and is no detection.
    let records = trailsim_request("GET", "/_trailsim/records", &serde_json::json!({}));
    let own = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["requestID"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no record with request id {request_id}"))
        .clone();
    assert_eq!(own["eventName"], "StartLogging");
    wait_polls(&mut daemon, 2.0);
    let m = daemon.metrics();
    assert_eq!(
        tamper(&m, "cloudtrail_start_logging", "success"),
        starts_before,
        "{m}"
    );
    for e in daemon.status()["events"].as_array().unwrap() {
        assert_ne!(
            e["event_id"], own["eventID"],
            "its own call listed as tampering: {e}"
        );
    }

    // Beyond the read-only policy it called only what deploy/iam-policy-remediation.json grants.
    assert_eq!(writes(&m), ["cloudtrail:StartLogging"]);

    // A person stops it again: left to them for the cool-down, and the alert stays.
    lab.stop_logging().await;
    let cooling = wait_decision(&mut daemon, "cooling_down", "cooling_down");
    assert!(cooling["until"].is_string(), "{cooling}");
    wait_polls(&mut daemon, 2.0);
    assert!(
        !is_logging(&lab).await,
        "not started again within the cool-down"
    );
    assert_eq!(counted(&daemon, "done"), 1.0);
    let logging = daemon.status()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == "trail-logging")
        .unwrap()
        .clone();
    assert_eq!(logging["status"], "fail", "{logging}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_principals_change_is_left_alone() {
    // The lab's principal (trailwarden-test) is the break-glass role here.
    let (lab, mut daemon) = start(
        "  dry_run: false\n  allow_principals: ['arn:aws:sts::\\d+:assumed-role/trailwarden-test/.*']\n",
        "allowed.log",
    )
    .await;
    lab.stop_logging().await;
    let entry = wait_decision(&mut daemon, "allowed_principal", "allowed_principal");
    assert!(
        entry["principal"]
            .as_str()
            .unwrap()
            .contains("assumed-role/trailwarden-test/"),
        "{entry}"
    );
    wait_polls(&mut daemon, 2.0);
    assert!(!is_logging(&lab).await);
    assert_eq!(counted(&daemon, "done"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn management_events_are_recorded_again_and_the_data_selectors_kept() {
    // The lab's trail has only a data event selector: no management events at all.
    let options = Options {
        data_events_only: true,
        ..Options::default()
    };
    let policy = "    check: management_events\n    severity: high\n";
    let remediation = "  dry_run: false\n  wait_for_event: 1s\n";
    let (lab, mut daemon) =
        start_with(options, "* * * * * *", policy, remediation, "selectors.log").await;
    let entry = wait_decision(&mut daemon, "act", "done");
    assert_eq!(entry["action"], "restore_management_events");
    assert_eq!(entry["target"], lab.trail_arn.as_str());
    let selectors = lab
        .cloudtrail()
        .get_event_selectors()
        .trail_name(&lab.trail_arn)
        .send()
        .await
        .unwrap();
    let advanced = selectors.advanced_event_selectors();
    let categories: Vec<Vec<String>> = advanced
        .iter()
        .map(|s| {
            s.field_selectors()
                .iter()
                .filter(|f| f.field() == "eventCategory")
                .flat_map(|f| f.equals().to_vec())
                .collect()
        })
        .collect();
    assert_eq!(
        categories,
        [vec!["Data".to_string()], vec!["Management".to_string()]],
        "the data selector kept, a management one added: {advanced:?}"
    );
    assert_eq!(writes(&daemon.metrics()), ["cloudtrail:PutEventSelectors"]);
    daemon.wait_until("management events recorded", |d| {
        d.status()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["policy"] == "management-events" && f["status"] == "pass")
    });
}
