//! The fault matrix: every AWS operation the daemon calls × {500, throttling, AccessDenied,
//! dropped connection, latency past the timeout}, each first persistent, then transient.
//!
//! - Persistent: the policies that need the operation say `error` with the reason (or, for an
//!   operation no policy needs, the poller says it failed); nothing fails.
//! - Cleared, and transient (one call fails): everything is back to `pass`, no read waits for
//!   a retry, and the tamper event caused during the fault is counted exactly once.
//! - Over the whole run: no policy ever failed, no digest verdict was a failure, no tamper
//!   event was counted that nobody caused.
//!
//! One lab and one daemon per operation, several at a time against one trailsim; faults are
//! limited to each lab's account. A binary of its own: it runs for minutes.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::lab::{Lab, Options};
use support::proof::{
    Weather, digest_failures, false_alarms, findings, healthy, listed_events, recorded, status_of,
};
use support::{Daemon, trailsim, trailsim_control, trailsim_request};

/// An operation as trailsim names it, optionally only for keys under a folder of the lab's
/// account (`CloudTrail/` or `CloudTrail-Digest/`), the poller that calls it and the
/// policies that need it.
struct Operation {
    name: &'static str,
    folder: Option<&'static str>,
    poller: &'static str,
    policies: &'static [&'static str],
}

const BUCKET_POLICIES: &[&str] = &["log-delivery-fresh", "log-coverage", "log-integrity"];

const OPERATIONS: &[Operation] = &[
    op("ListTrails", None, "trails", &["trail-logging"]),
    op("DescribeTrails", None, "trails", &["trail-logging"]),
    op("GetTrailStatus", None, "trails", &["trail-logging"]),
    op("GetEventSelectors", None, "trails", &["management-events"]),
    op("GetCallerIdentity", None, "trails", &[]),
    op("LookupEvents", None, "events", &[]),
    op("ListPublicKeys", None, "bucket", &["log-integrity"]),
    op("GetBucketLocation", None, "bucket", BUCKET_POLICIES),
    op(
        "ListObjectsV2",
        Some("CloudTrail/"),
        "bucket",
        &["log-delivery-fresh", "log-coverage"],
    ),
    op(
        "ListObjectsV2",
        Some("CloudTrail-Digest/"),
        "bucket",
        &["log-integrity"],
    ),
    op(
        "GetObject",
        Some("CloudTrail/"),
        "bucket",
        &["log-integrity"],
    ),
    op(
        "GetObject",
        Some("CloudTrail-Digest/"),
        "bucket",
        &["log-integrity"],
    ),
    op("GetBucketLifecycle", None, "posture", &["retention"]),
    op("GetBucketVersioning", None, "posture", &[]),
    op(
        "GetBucketPublicAccessBlock",
        None,
        "posture",
        &["bucket-not-public"],
    ),
    op(
        "GetBucketPolicyStatus",
        None,
        "posture",
        &["bucket-not-public"],
    ),
    op("GetBucketAcl", None, "posture", &["bucket-not-public"]),
    op("GetBucketEncryption", None, "posture", &[]),
    op("GetBucketLogging", None, "posture", &[]),
    op("GetObjectLockConfiguration", None, "posture", &[]),
    op("DescribeKey", None, "posture", &["sse-kms"]),
    op("GetKeyRotationStatus", None, "posture", &[]),
    op("ListAliases", None, "posture", &[]),
    op(
        "DescribeConfigurationRecorderStatus",
        None,
        "posture",
        &["config-recording"],
    ),
];

const fn op(
    name: &'static str,
    folder: Option<&'static str>,
    poller: &'static str,
    policies: &'static [&'static str],
) -> Operation {
    Operation {
        name,
        folder,
        poller,
        policies,
    }
}

/// A fault kind, and words one of which the reason it causes contains.
const KINDS: &[(&str, &[&str])] = &[
    ("server_error", &["InternalFailure", "500", "service error"]),
    ("throttling", &["Throttl", "SlowDown", "Rate exceeded"]),
    ("access_denied", &["AccessDenied"]),
    (
        "drop",
        &[
            "unreadable response",
            "cannot reach",
            "dropped",
            "connection",
            "body",
        ],
    ),
    ("latency", &["timed out", "stalled"]),
];

/// Daemons checked at once: moto answers one request at a time.
const AT_ONCE: usize = 6;

const EXPECTED: &[&str] = &["cloudtrail_start_logging", "cloudtrail_trail_created"];

#[test]
fn every_operation_under_every_fault_errs_then_recovers_and_never_fails() {
    let _weather = Weather::start(Duration::from_secs(1), Duration::from_secs(4));
    let started = Instant::now();
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let next = Arc::new(Mutex::new(0usize));
    let workers: Vec<_> = (0..AT_ONCE)
        .map(|_| {
            let (problems, next) = (problems.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(operation) = OPERATIONS.get(i) else {
                        return;
                    };
                    // FAULT_MATRIX_ONLY=GetObject runs the operations whose name has it.
                    if std::env::var("FAULT_MATRIX_ONLY")
                        .is_ok_and(|only| !operation.name.contains(&only))
                    {
                        continue;
                    }
                    let found = run_operation(operation);
                    problems.lock().unwrap().extend(found);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let problems = problems.lock().unwrap();
    eprintln!(
        "fault matrix: {} operations × {} kinds × persistent and transient in {:.0}s, {} problem(s)",
        OPERATIONS.len(),
        KINDS.len(),
        started.elapsed().as_secs_f64(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One operation through every fault kind; returns what went wrong.
fn run_operation(operation: &Operation) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = runtime.block_on(Lab::build_at(trailsim(), Options::default()));
    let name = match operation.folder {
        Some(f) => format!("{} {f}", operation.name),
        None => operation.name.to_string(),
    };
    let port = support::free_port();
    let config = lab.write_daemon_config(
        port,
        trailsim(),
        "*/2 * * * * *",
        "2s",
        "bucket:\n  retry_backoff: 1s\n",
    );
    let mut d = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir
            .path()
            .join(format!("{}.log", name.replace(['/', ' '], "_"))),
    );
    let mut problems = Vec::new();
    let mut note = |what: String| problems.push(format!("{name}: {what}"));
    if !wait(&d, 120, healthy) {
        note(format!(
            "never healthy before any fault: {:#?}",
            findings(&status_of(&d))
        ));
        return problems;
    }
    let key_prefix = operation
        .folder
        .map(|f| format!("AWSLogs/{}/{f}", lab.account.id));
    for (kind, words) in KINDS {
        let mut fault = json!({"operation": operation.name, "kind": kind,
            "account": lab.account.id, "latency_ms": 3000});
        if let Some(p) = &key_prefix {
            fault["key_prefix"] = json!(p);
        }
        // Persistent.
        fault["seconds"] = json!(3600.0);
        trailsim_control("/_trailsim/faults", &fault);
        runtime.block_on(start_logging(&lab));
        let said = wait(&d, 90, |s| says(s, operation, words));
        if !said {
            note(format!(
                "{kind}: persistent fault not reported as error: {:#?} pollers {}",
                findings(&status_of(&d)),
                status_of(&d)["pollers"]
            ));
        }
        trailsim_request(
            "DELETE",
            "/_trailsim/faults",
            &json!({"account": lab.account.id}),
        );
        if !wait(&d, 120, healthy) {
            note(format!(
                "{kind}: not back to pass after the fault cleared: {:#?}",
                findings(&status_of(&d))
            ));
            break;
        }
        // Transient: one call fails.
        fault.as_object_mut().unwrap().remove("seconds");
        fault["count"] = json!(1);
        trailsim_control("/_trailsim/faults", &fault);
        runtime.block_on(start_logging(&lab));
        std::thread::sleep(Duration::from_secs(3));
        if !wait(&d, 120, healthy) {
            note(format!(
                "{kind}: not back to pass after a transient fault: {:#?}",
                findings(&status_of(&d))
            ));
            break;
        }
        trailsim_request(
            "DELETE",
            "/_trailsim/faults",
            &json!({"account": lab.account.id}),
        );
    }
    // Every StartLogging caused is counted, once.
    let caused = recorded(&lab.account.id, "StartLogging");
    let counted_all = wait(&d, 90, |s| {
        let listed = listed_events(s, "cloudtrail_start_logging");
        caused.iter().all(|id| listed.contains(id))
    });
    let listed = listed_events(&status_of(&d), "cloudtrail_start_logging");
    if !counted_all {
        note(format!("events lost: caused {caused:?}, listed {listed:?}"));
    }
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != listed.len() || listed.len() != caused.len() {
        note(format!(
            "events counted twice or unknown: caused {caused:?}, listed {listed:?}"
        ));
    }
    let failures = digest_failures(&d.metrics());
    if !failures.is_empty() {
        note(format!("digest failures counted: {failures:?}"));
    }
    d.stop();
    for line in false_alarms(&d.log_text(), EXPECTED) {
        note(format!("false alarm: {line}"));
    }
    problems
}

async fn start_logging(lab: &Lab) {
    lab.cloudtrail()
        .start_logging()
        .name(&lab.trail_arn)
        .send()
        .await
        .expect("StartLogging");
}

/// Whether `/status` reports the fault: the policies that need the operation say `error`
/// with the reason, or the poller that calls it failed with it. Never a failure.
fn says(status: &Value, operation: &Operation, words: &[&str]) -> bool {
    let mentions = |text: &str| words.iter().any(|w| text.contains(w));
    let f = findings(status);
    if operation.policies.is_empty() {
        return status["pollers"].as_array().into_iter().flatten().any(|p| {
            p["name"] == operation.poller
                && p["last_error"].as_str().is_some_and(mentions)
                && p["last_error_time"].as_str() >= p["last_success"].as_str()
        });
    }
    operation.policies.iter().all(|policy| {
        f.iter()
            .any(|(p, s, m)| p == policy && s == "error" && mentions(m))
    })
}

/// Polls `/status` until `ready` holds, for at most `seconds`.
fn wait(d: &Daemon, seconds: u64, mut ready: impl FnMut(&Value) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let s = status_of(d);
        if !s.is_null() && ready(&s) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// A poller stuck inside one run (its listing answered 8 s late, with a timeout of 20 s)
/// makes `/healthz` say so within `health.stall_after`, and healthy again once it moves.
#[test]
fn a_poller_stuck_without_progress_makes_healthz_unhealthy() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = runtime.block_on(Lab::build_at(trailsim(), Options::default()));
    trailsim_control("/_trailsim/deliver", &json!({}));
    let port = support::free_port();
    let config = lab.write_daemon_config(
        port,
        trailsim(),
        "*/2 * * * * *",
        "20s",
        "health:\n  stall_after: 3s\n",
    );
    let mut d = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir.path().join("stall.log"),
    );
    d.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    assert_eq!(d.get("/healthz").unwrap().0, 200);
    trailsim_control(
        "/_trailsim/faults",
        &json!({"operation": "ListObjectsV2", "kind": "latency", "latency_ms": 8000,
                "account": lab.account.id, "seconds": 10.0}),
    );
    d.wait_until("/healthz unhealthy", |d| {
        d.get("/healthz").is_some_and(|(code, body)| {
            code == 503 && body.contains("poller bucket has made no progress")
        })
    });
    d.wait_until("/healthz healthy again", |d| {
        d.get("/healthz").is_some_and(|(code, _)| code == 200)
    });
    d.stop();
}
