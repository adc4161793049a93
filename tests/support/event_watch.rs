//! What the event history tests share: the tamper and poll metrics, and a lab built through
//! trailsim with a daemon watching its event history.

use super::lab::{Lab, Options};
use super::{Daemon, metric_value, trailsim};

pub fn tamper(m: &str, detection: &str, outcome: &str) -> f64 {
    metric_value(
        m,
        "trailwarden_tamper_events_total",
        &[("detection", detection), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

pub fn event_polls(m: &str) -> f64 {
    metric_value(
        m,
        "trailwarden_poll_duration_seconds_count",
        &[("poller", "events")],
    )
    .unwrap_or(0.0)
}

/// Waits until `n` more event polls have finished.
pub fn wait_polls(daemon: &mut Daemon, n: f64) {
    let from = event_polls(&daemon.metrics());
    daemon.wait_until("more event polls", |d| {
        event_polls(&d.metrics()) >= from + n
    });
}

/// A lab through trailsim and a daemon on it, after its first event poll.
pub async fn start(trails_cron: &str, extra: &str, log: &str) -> (Lab, Daemon) {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let port = super::free_port();
    let config = lab.write_events_config(port, trailsim(), trails_cron, extra);
    let mut daemon = Daemon::start(&lab.account, &config, port, lab.dir.path().join(log));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    wait_polls(&mut daemon, 1.0);
    (lab, daemon)
}
