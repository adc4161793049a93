//! What the reliability tests (fault matrix, kill -9 campaign, steady state, hostile objects)
//! share: reading findings and events off a daemon, trailsim's own record of what happened,
//! deliveries on a clock, and the checks that no alarm was false.

use super::{Daemon, trailsim_control, trailsim_request};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Each finding's (policy, status, message).
pub fn findings(status: &Value) -> Vec<(String, String, String)> {
    status["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (text("policy"), text("status"), text("message"))
        })
        .collect()
}

/// Every finding passes, and no read waits for a retry.
pub fn healthy(status: &Value) -> bool {
    let f = findings(status);
    !f.is_empty()
        && f.iter().all(|(_, s, _)| s == "pass")
        && status["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|b| b["unread"].as_array().is_none_or(Vec::is_empty))
}

/// The event ids `/status` lists for `detection`, as often as it lists them.
pub fn listed_events(status: &Value, detection: &str) -> Vec<String> {
    status["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["detections"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["detection"] == detection)
        })
        .filter_map(|e| e["event_id"].as_str().map(str::to_string))
        .collect()
}

/// The ids of the successful `event_name` calls trailsim recorded for `account`.
pub fn recorded(account: &str, event_name: &str) -> Vec<String> {
    let all = trailsim_request("GET", "/_trailsim/records", &json!({}));
    all["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["recipientAccountId"] == account
                && r["eventName"] == event_name
                && r["errorCode"].is_null()
        })
        .filter_map(|r| r["eventID"].as_str().map(str::to_string))
        .collect()
}

/// Deliveries (and digests) on a clock for the whole test binary, as CloudTrail would write
/// them, until the guard is dropped.
pub struct Weather {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Weather {
    pub fn start(deliver_every: Duration, digest_every: Duration) -> Weather {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last_digest = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                trailsim_control("/_trailsim/deliver", &json!({}));
                if last_digest.elapsed() >= digest_every {
                    trailsim_control("/_trailsim/digest", &json!({}));
                    last_digest = Instant::now();
                }
                std::thread::sleep(deliver_every);
            }
        });
        Weather {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Weather {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What in a daemon's log would be a false alarm: a policy that failed, a digest verdict that
/// is a failure, a tamper event nobody caused. `expected` lists the detections the test
/// caused.
pub fn false_alarms(log: &str, expected: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("policy failing")
                || l.contains("log integrity:")
                || (l.contains("tamper event detected")
                    && !expected
                        .iter()
                        .any(|d| l.contains(&format!("detection={d}"))))
        })
        .map(str::to_string)
        .collect()
}

/// The digest validation failures counted, by kind, when any is above 0.
pub fn digest_failures(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("trailwarden_digest_validation_failures_total{"))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            (value > 0.0).then(|| (labels.to_string(), value))
        })
        .collect()
}

/// `/status`, or `Value::Null` when the daemon does not answer (restarting).
pub fn status_of(d: &Daemon) -> Value {
    match d.get("/status") {
        Some((200, body)) => serde_json::from_str(&body).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
