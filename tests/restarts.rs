//! The kill -9 campaign: the daemon is killed with SIGKILL at random moments, 24 times, while
//! 48 tamper events (StopLogging, StartLogging) arrive through both sources: event history
//! (shown a second late) and the log files delivered into the bucket. At the end every event
//! trailsim recorded is in the store and in `/status` exactly once, both sources claimed some,
//! nothing waits unpublished, and no digest verdict is a failure.
//!
//! A binary of its own: it runs for a minute and more, and its trailsim shows events late.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::lab::{Lab, Options};
use support::proof::{Weather, listed_events, recorded, status_of};
use support::{Daemon, TrailsimSetup, trailsim_with};
use trailwarden::state::StateStore;

const KILLS: usize = 24;

/// A small deterministic generator: the kill moments are random, and reproducible from the
/// seed the test prints.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice() {
    let endpoint = trailsim_with(TrailsimSetup {
        visibility_delay: Duration::from_secs(1),
        ..Default::default()
    })
    .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = runtime.block_on(Lab::build_at(&endpoint, Options::default()));
    let _weather = Weather::start(Duration::from_millis(1500), Duration::from_secs(3));
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill moments from KILL_SEED={seed}");
    let mut moments = Moments(seed);
    let port = support::free_port();
    let config = lab.write_daemon_config(port, &endpoint, "* * * * * *", "5s", "");
    let log = |i: usize| lab.dir.path().join(format!("run{i:02}.log"));
    let mut d = Daemon::start(&lab.account, &config, port, log(0));
    let started = Instant::now();
    for round in 0..KILLS {
        runtime.block_on(async {
            let ct = lab.cloudtrail();
            ct.stop_logging().name(&lab.trail_arn).send().await.unwrap();
            ct.start_logging()
                .name(&lab.trail_arn)
                .send()
                .await
                .unwrap();
        });
        std::thread::sleep(Duration::from_millis(200 + moments.next_ms(2500)));
        d.kill();
        d = Daemon::start(&lab.account, &config, port, log(round + 1));
    }
    let caused: Vec<String> = ["StopLogging", "StartLogging"]
        .iter()
        .flat_map(|name| recorded(&lab.account.id, name))
        .collect();
    // The lab's own StartLogging, and two per round.
    assert_eq!(caused.len(), 2 * KILLS + 1, "the events trailsim recorded");
    // Settle: everything caused shows up.
    d.wait_until("every caused event listed", |d| {
        let s = status_of(d);
        let listed: Vec<String> = ["cloudtrail_stop_logging", "cloudtrail_start_logging"]
            .iter()
            .flat_map(|det| listed_events(&s, det))
            .collect();
        caused.iter().all(|id| listed.contains(id))
    });
    let status = status_of(&d);
    assert!(d.stop().success());
    eprintln!(
        "{KILLS} kills and {} events in {:.0}s",
        caused.len(),
        started.elapsed().as_secs_f64()
    );

    // /status: each caused event once, nothing else but the trail's creation.
    let mut listed: BTreeMap<String, usize> = BTreeMap::new();
    for e in status["events"].as_array().unwrap() {
        *listed
            .entry(e["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in &caused {
        assert_eq!(listed.get(id), Some(&1), "{id} in /status: {listed:?}");
    }
    assert_eq!(
        listed.len(),
        caused.len() + 1,
        "only the CreateTrail besides: {listed:?}"
    );

    // The store: every detection of every caused event once, all published, claimed by both
    // sources, no integrity failure.
    let store = StateStore::open(&lab.dir.path().join("state")).unwrap();
    let detections = store.recent_detections().unwrap();
    let mut per_event: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for det in &detections {
        per_event
            .entry(det.event_id.as_str())
            .or_default()
            .push(det.detection.as_str());
    }
    for id in &caused {
        let found = per_event.get(id.as_str()).cloned().unwrap_or_default();
        assert_eq!(found.len(), 1, "{id}: {found:?}");
    }
    assert!(store.unpublished_detections().unwrap().is_empty());
    let sources: BTreeMap<String, u64> = store.claims_by_source().unwrap().into_iter().collect();
    eprintln!("claims by source: {sources:?}");
    assert!(
        sources.get("event_history").copied().unwrap_or(0) > 0
            && sources.get("bucket").copied().unwrap_or(0) > 0,
        "both sources claimed events: {sources:?}"
    );
    let failures: Vec<_> = store
        .integrity_items(chrono::Utc::now() - chrono::Duration::days(1))
        .unwrap()
        .into_iter()
        .filter(|i| i.class != "explained_restart")
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    // The logs: each event published at least once, and at most once without `republished`
    // (a kill after the log line, before its mark, publishes it again, marked).
    let mut lines: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for i in 0..=KILLS {
        let text = std::fs::read_to_string(log(i)).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("tamper event detected")) {
            let Some(id) = caused.iter().find(|id| line.contains(id.as_str())) else {
                continue;
            };
            let entry = lines.entry(id.clone()).or_default();
            if line.contains("republished=true") {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    for id in &caused {
        let (first, again) = lines.get(id).copied().unwrap_or_default();
        assert!(first + again >= 1, "{id} never published");
        assert!(first <= 1, "{id} published {first} times unmarked");
    }
}
