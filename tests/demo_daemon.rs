//! The demo as `scripts/demo.sh` runs it: trailsim delivering every 5 s and signing digests
//! every 30 s, the world seeded by `scripts/demo_world.py`, the daemon on `config/demo.yaml`.
//! Every policy passes within a minute of start, and none fails or errs on the way: a young
//! trail is `pending`, not failing. A binary of its own: trailsim's timers are global.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};
use support::demo::{demo_account, demo_config, demo_world};
use support::{Daemon, TrailsimSetup, trailsim_with};

#[test]
fn the_demo_is_all_pass_within_a_minute_and_never_fails_on_the_way() {
    let endpoint = trailsim_with(TrailsimSetup {
        timers: Some((Duration::from_secs(5), Duration::from_secs(30))),
        ..Default::default()
    })
    .to_string();
    demo_world("seed", &endpoint);
    let account = demo_account(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let state = dir.path().join("state");
    let config = demo_config(dir.path(), &endpoint, |text| {
        text.replace("127.0.0.1:9847", &format!("127.0.0.1:{port}"))
            .replace(
                "state_dir: ../target/demo-state",
                &format!("state_dir: {}", state.display()),
            )
    });
    let started = Instant::now();
    let mut daemon = Daemon::start(&account, &config, port, dir.path().join("demo.log"));
    let mut seen_pending = false;
    let mut all_pass = None;
    daemon.wait_until("every policy passing", |d| {
        let Some((200, body)) = d.get("/status") else {
            return false;
        };
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let findings = status["findings"].as_array().cloned().unwrap_or_default();
        for f in &findings {
            assert!(
                f["status"] == "pass" || f["status"] == "pending",
                "{}s after start: {f:#}",
                started.elapsed().as_secs()
            );
            seen_pending |= f["status"] == "pending";
        }
        let pass = !findings.is_empty() && findings.iter().all(|f| f["status"] == "pass");
        if pass {
            all_pass = Some(started.elapsed());
        }
        pass
    });
    let took = all_pass.unwrap();
    eprintln!(
        "every demo policy passing {:.1}s after start",
        took.as_secs_f64()
    );
    assert!(seen_pending, "the young trail was pending first");
    assert!(
        took < Duration::from_secs(60),
        "the demo must pass within a minute of start; it took {took:?}"
    );
    let log = daemon.log_text();
    assert!(!log.contains("policy failing"), "{log}");
    assert!(!log.contains("could not be evaluated"), "{log}");
}
