//! The deployment artifacts against the real daemon (deploy/prometheus/alerts.yaml,
//! grafana/*.json, deploy/kubernetes/): a real Prometheus scraping trailwarden, which
//! watches a trail through trailsim, fires TrailwardenCloudTrailLoggingStopped after
//! StopLogging and not before; `promtool check metrics` passes on a scrape; and every metric
//! the alerts and dashboards name is in a scrape. Needs Debian's `prometheus` package
//! (prometheus and promtool on PATH); without it the tests fail, they do not skip.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::lab::{Lab, Options};
use support::prometheus::{Prometheus, check_metrics, metric_names, scrape_names, tool};
use support::{Daemon, manifest_dir, metric_value, trailsim, trailsim_control};

const LOGGING_STOPPED: &str = "TrailwardenCloudTrailLoggingStopped";
const TAMPER: &str = "TrailwardenTamperEventDetected";

fn alerts_file() -> PathBuf {
    manifest_dir().join("deploy/prometheus/alerts.yaml")
}

fn dashboards() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join("grafana"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in grafana/");
    files
}

/// `(where, text)` pairs.
type Located = Vec<(String, String)>;

/// The PromQL the alert rules and dashboards run, and everything else they say (descriptions,
/// annotations), each as `(where, text)`.
fn queries_and_prose() -> (Located, Located) {
    let mut queries = Vec::new();
    let mut prose = Vec::new();
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(alerts_file()).unwrap()).unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap_or("?").to_string();
            queries.push((
                format!("alerts.yaml {name}"),
                rule["expr"].as_str().unwrap().to_string(),
            ));
            prose.push((
                format!("alerts.yaml {name} annotations"),
                serde_yaml::to_string(&rule["annotations"]).unwrap(),
            ));
        }
    }
    fn panels(list: &serde_json::Value, file: &str, queries: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                queries.push((
                    format!("{file} panel {:?}", panel["title"].as_str().unwrap_or("")),
                    t["expr"].as_str().unwrap().to_string(),
                ));
            }
            panels(&panel["panels"], file, queries);
        }
    }
    for path in dashboards() {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let d: serde_json::Value = serde_json::from_str(&text).unwrap();
        panels(&d["panels"], &file, &mut queries);
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if let Some(q) = v["query"].as_str() {
                queries.push((format!("{file} variable {}", v["name"]), q.to_string()));
            }
        }
        prose.push((file, text));
    }
    (queries, prose)
}

/// Exported only with an `accounts` section, which this single-account daemon has not:
/// tests/shards.rs and tests/organization.rs scrape them from daemons that have.
const ONLY_WITH_ACCOUNTS: &[&str] = &[
    "trailwarden_account_info",
    "trailwarden_accounts",
    "trailwarden_account_up",
];

/// Every metric a query names is a series of the scrape (a histogram through its `_bucket`,
/// `_sum`, `_count`); every metric the prose names is at least a family of it.
fn assert_names_exported(exposition: &str) {
    let (samples, families) = scrape_names(exposition);
    let (queries, prose) = queries_and_prose();
    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for (place, q) in &queries {
        for name in metric_names(q) {
            if !samples.contains(&name) && !ONLY_WITH_ACCOUNTS.contains(&name.as_str()) {
                missing.push(format!("{place} queries {name}"));
            }
            used.insert(name);
        }
    }
    for (place, text) in &prose {
        for name in metric_names(text) {
            if !samples.contains(&name)
                && !families.contains(&name)
                && !ONLY_WITH_ACCOUNTS.contains(&name.as_str())
            {
                missing.push(format!("{place} mentions {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics the alerts or dashboards use but the daemon does not export:\n  {}\n\
         exported: {samples:?}",
        missing.join("\n  ")
    );
    assert!(
        used.len() >= 20,
        "suspiciously few metric names found in the queries: {used:?}"
    );
}

fn scrape_value(daemon: &Daemon, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&daemon.metrics(), name, labels)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_fires_logging_stopped_after_stop_logging_and_every_metric_used_exists() {
    // Fail early and clearly without the tools.
    tool("promtool");
    tool("prometheus");

    // A compliant lab whose bucket already holds log files and a digest, so that the
    // bucket watcher's first poll (at start) sees a delivered, validated trail.
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    trailsim_control("/_trailsim/deliver", &json!({}));
    trailsim_control("/_trailsim/digest", &json!({}));
    let port = support::free_port();
    // Trails and event history every 2 seconds.
    let config = lab.write_events_config(port, trailsim(), "*/2 * * * * *", "");
    let mut daemon = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir.path().join("daemon.log"),
    );
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    check_metrics(&daemon.metrics());

    let mut prometheus = Prometheus::start(&[&daemon.base], &[&alerts_file()]);
    let trail = [("trail", "lab"), ("account", lab.account.id.as_str())];
    prometheus.wait_until(
        "the trail logging in Prometheus",
        Duration::from_secs(60),
        |p| {
            p.query(&format!(
                "trailwarden_trail_logging{{trail=\"lab\", account=\"{}\"}} == 1",
                lab.account.id
            ))
            .len()
                == 1
        },
    );
    // Quiet while the trail logs: several evaluations (one a second) see it logging.
    for _ in 0..8 {
        for name in [LOGGING_STOPPED, TAMPER] {
            let active = prometheus.alerts_named(name, &[]);
            assert!(
                active.is_empty(),
                "{name} active while logging: {active:#?}"
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // Every rule of alerts.yaml evaluates against the real series without error.
    for rule in prometheus.rules() {
        assert_eq!(rule["health"], "ok", "rule does not evaluate: {rule:#}");
    }
    let others = prometheus.alerts();
    if !others.is_empty() {
        eprintln!("other alerts active before StopLogging: {others:#?}");
    }

    let stopped = Instant::now();
    lab.stop_logging().await;
    prometheus.wait_until(
        "TrailwardenCloudTrailLoggingStopped firing",
        Duration::from_secs(120),
        |p| {
            p.alerts_named(LOGGING_STOPPED, &trail)
                .iter()
                .any(|a| a["state"] == "firing")
        },
    );
    eprintln!(
        "{LOGGING_STOPPED} fired {:?} after StopLogging",
        stopped.elapsed()
    );
    let alert = &prometheus.alerts_named(LOGGING_STOPPED, &trail)[0];
    assert_eq!(alert["labels"]["severity"], "critical", "{alert:#}");
    assert_eq!(alert["labels"]["region"], "us-east-1", "{alert:#}");
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("docs/runbooks.md#trailwardencloudtrailloggingstopped"),
        "{alert:#}"
    );
    // The StopLogging event itself: a counter series born at 1, which the rule catches.
    prometheus.wait_until(
        "TrailwardenTamperEventDetected firing for the StopLogging",
        Duration::from_secs(60),
        |p| {
            p.alerts_named(
                TAMPER,
                &[
                    ("detection", "cloudtrail_stop_logging"),
                    ("outcome", "success"),
                    ("account", lab.account.id.as_str()),
                ],
            )
            .iter()
            .any(|a| a["state"] == "firing")
        },
    );
    // Informational detections (the lab's CreateTrail and StartLogging) never page.
    let info = prometheus
        .alerts_named(TAMPER, &[])
        .into_iter()
        .filter(|a| a["labels"]["detection"] != "cloudtrail_stop_logging")
        .collect::<Vec<_>>();
    assert!(info.is_empty(), "{info:#?}");

    // Series that only exist after something went wrong: an unreadable event history
    // record, a failed poll, a skipped tick.
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    trailsim_control(
        "/_trailsim/records",
        &json!({"records": [{
            "eventVersion": "1.08",
            "eventID": format!("no-source-{}", lab.account.id),
            "eventTime": now,
            "eventName": "PutBucketPolicy",
            "awsRegion": "us-east-1",
            "recipientAccountId": lab.account.id,
            "readOnly": false
        }]}),
    );
    daemon.wait_until("the unreadable record counted", |d| {
        metric_value(&d.metrics(), "trailwarden_events_unparseable_total", &[]).unwrap_or(0.0)
            >= 1.0
    });
    trailsim_control(
        "/_trailsim/faults",
        &json!({"operation": "LookupEvents", "kind": "access_denied", "count": 1}),
    );
    daemon.wait_until("a failed events poll", |d| {
        metric_value(
            &d.metrics(),
            "trailwarden_poll_errors_total",
            &[("poller", "events")],
        )
        .is_some()
    });
    trailsim_control(
        "/_trailsim/faults",
        &json!({"operation": "LookupEvents", "kind": "latency", "latency_ms": 5000, "count": 1}),
    );
    daemon.wait_until("a skipped events tick", |d| {
        metric_value(
            &d.metrics(),
            "trailwarden_poll_skipped_total",
            &[("poller", "events")],
        )
        .is_some()
    });
    assert!(scrape_value(&daemon, "trailwarden_tamper_events_total", &[]).is_some());

    let exposition = daemon.metrics();
    check_metrics(&exposition);
    assert_names_exported(&exposition);

    // Every dashboard query runs in Prometheus on these series (promtool only parses them:
    // this catches matching errors), and the tamper table counts the StopLogging although
    // its counter series was born at 1.
    let (queries, _) = queries_and_prose();
    let mut empty = Vec::new();
    for (place, q) in queries.iter().filter(|(p, _)| p.contains("panel")) {
        if prometheus.query(&promql_of_panel(q)).is_empty() {
            empty.push(place.as_str());
        }
    }
    eprintln!("dashboard queries without data in this run: {empty:?}");
    let table = queries
        .iter()
        .find(|(p, _)| p.contains("Tamper events in the time range"))
        .expect("the tamper table");
    let rows = prometheus.query(&promql_of_panel(&table.1));
    assert!(
        rows.iter()
            .any(|r| r["metric"]["detection"] == "cloudtrail_stop_logging"
                && r["value"][1].as_str().unwrap().parse::<f64>().unwrap() >= 1.0),
        "{rows:#?}"
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

/// A dashboard query as Grafana sends it, for this short run: every variable All.
fn promql_of_panel(q: &str) -> String {
    let q = q
        .replace("$__rate_interval", "5s")
        .replace("$__interval", "5s")
        .replace("$__range", "1h");
    regex::Regex::new(r"\$\{?\w+\}?")
        .unwrap()
        .replace_all(&q, ".*")
        .to_string()
}

/// The configuration the Kubernetes base ships is one the daemon accepts (it is generated
/// from config/trailwarden.yaml; .ci/deploy-checks keeps the copies in step).
#[test]
fn kubernetes_config_is_valid() {
    let dir = manifest_dir().join("deploy/kubernetes/base/config");
    let out = support::trailwarden(None)
        .args(["validate-config", "--config"])
        .arg(dir.join("trailwarden.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
