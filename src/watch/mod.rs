//! The pollers and what they share: each run collects, stores the result as the latest, then
//! evaluates every policy over the latest of everything and publishes the findings.
//!
//! A poller never overlaps itself: a tick that finds the previous run still going is skipped
//! and counted. One poller's failures never stop another. The event history poller lives in
//! `events.rs`.

pub mod bucket;
mod bucket_poller;
mod events;

use crate::collect::{self, TrailsResult, aws::Aws, aws::reason_class};
use crate::config::{DetectionSet, EventHistorySettings, PolicySet};
use crate::evaluate::{self, Finding};
use crate::posture::{Fetched, Posture, Snapshot, Trail, Unavailable};
use crate::publish::http::Published;
use crate::publish::status::{self, PollerEntry};
use crate::state::StateStore;
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

pub const TRAILS: &str = "trails";
pub const POSTURE: &str = "posture";
pub const EVENTS: &str = "events";
pub const BUCKET: &str = "bucket";

#[derive(Default)]
struct Latest {
    trails: Option<TrailsResult>,
    posture: Option<Posture>,
    evidence: Option<BTreeMap<String, Fetched<crate::posture::TrailEvidence>>>,
}

pub struct Watch {
    aws: Aws,
    regions: Vec<String>,
    policies: RwLock<Arc<PolicySet>>,
    store: StateStore,
    published: Arc<Published>,
    latest: Mutex<Latest>,
    /// Held from snapshot to publication, so an older snapshot never publishes last.
    publishing: Mutex<()>,
    pollers: Mutex<BTreeMap<&'static str, PollerEntry>>,
    trails_running: tokio::sync::Mutex<()>,
    posture_running: tokio::sync::Mutex<()>,
    bucket_running: tokio::sync::Mutex<()>,
    bucket_settings: crate::config::BucketSettings,
    events: events::EventWatch,
}

impl Watch {
    pub fn new(
        aws: Aws,
        regions: Vec<String>,
        policies: PolicySet,
        (detections, settings): (DetectionSet, EventHistorySettings),
        bucket_settings: crate::config::BucketSettings,
        store: StateStore,
        published: Arc<Published>,
    ) -> Watch {
        let mut names = vec![TRAILS, POSTURE, BUCKET];
        if !detections.detections.is_empty() {
            names.push(EVENTS);
        }
        let pollers = names
            .into_iter()
            .map(|name| (name, PollerEntry::new(name)))
            .collect();
        Watch {
            aws,
            regions,
            policies: RwLock::new(Arc::new(policies)),
            store,
            published,
            latest: Mutex::new(Latest::default()),
            publishing: Mutex::new(()),
            pollers: Mutex::new(pollers),
            trails_running: tokio::sync::Mutex::new(()),
            posture_running: tokio::sync::Mutex::new(()),
            bucket_running: tokio::sync::Mutex::new(()),
            bucket_settings,
            events: events::EventWatch::new(detections, settings),
        }
        .with_stored_detections()
    }

    /// Swaps in new policies (config reload) and re-evaluates at once.
    pub fn set_policies(&self, policies: PolicySet) {
        *self.policies.write().expect("policies lock poisoned") = Arc::new(policies);
        self.evaluate_and_publish();
    }

    /// Trails, status, selectors. Returns whether a bucket or key is new to the posture
    /// poller (so the caller can run it now instead of at its next tick).
    pub async fn poll_trails(&self) -> bool {
        let Ok(_running) = self.trails_running.try_lock() else {
            self.skipped(TRAILS);
            return false;
        };
        self.run_trails().await
    }

    /// Trails, then posture, now: after a tamper event. Waits for runs in progress instead of
    /// skipping, since they may have started before the change.
    pub async fn refresh(&self) {
        {
            let _running = self.trails_running.lock().await;
            self.run_trails().await;
        }
        let _running = self.posture_running.lock().await;
        self.run_posture().await;
    }

    async fn run_trails(&self) -> bool {
        let started = Instant::now();
        let result = collect::collect_trails(&self.aws, &self.regions).await;
        let errors = trails_errors(&result);
        self.published.metrics.publish_trails(&result);
        let unseen = {
            let mut latest = self.latest.lock().expect("latest lock poisoned");
            let unseen = has_unseen_resources(&result, latest.posture.as_ref());
            latest.trails = Some(result);
            unseen
        };
        self.evaluate_and_publish();
        self.record_run(TRAILS, started, errors);
        unseen
    }

    /// Buckets, keys and AWS Config recorders of the trails the last trail poll found.
    pub async fn poll_posture(&self) {
        let Ok(_running) = self.posture_running.try_lock() else {
            self.skipped(POSTURE);
            return;
        };
        self.run_posture().await;
    }

    async fn run_posture(&self) {
        let started = Instant::now();
        let (account, trails) = {
            let latest = self.latest.lock().expect("latest lock poisoned");
            let Some(t) = &latest.trails else {
                // Nothing to look at before the first trail poll; it runs at start.
                tracing::debug!("posture poll before the first trail poll: skipped");
                return;
            };
            (
                t.account.clone().ok(),
                t.trails
                    .as_ref()
                    .map(|s| s.iter().map(|s| s.trail.clone()).collect::<Vec<Trail>>())
                    .unwrap_or_default(),
            )
        };
        let posture =
            collect::collect_posture(&self.aws, &self.regions, account.as_deref(), &trails).await;
        let errors = posture_errors(&posture);
        self.latest.lock().expect("latest lock poisoned").posture = Some(posture);
        self.evaluate_and_publish();
        self.record_run(POSTURE, started, errors);
    }

    /// Evaluates the latest of everything and publishes it. Nothing is published until both
    /// pollers have run once: half a picture would turn bucket and key policies into
    /// `error` and reset their `since`. The first publication makes the daemon ready.
    fn evaluate_and_publish(&self) {
        let _publishing = self.publishing.lock().expect("publish lock poisoned");
        let (snapshot, trail_summaries) = {
            let latest = self.latest.lock().expect("latest lock poisoned");
            let (Some(trails), Some(posture)) = (&latest.trails, &latest.posture) else {
                return;
            };
            let mut snapshot = trails.snapshot(&self.regions, Some(posture.clone()));
            snapshot.evidence = latest.evidence.clone();
            (snapshot, status::trail_summaries(trails))
        };
        let policies = self
            .policies
            .read()
            .expect("policies lock poisoned")
            .clone();
        let now = Utc::now();
        let findings = evaluate::evaluate(&policies, &snapshot, now);
        let since = match self.store.record_findings(&findings, now) {
            Ok(since) => Some(since),
            Err(e) => {
                tracing::error!(error = %e, "cannot record findings in the state store");
                None
            }
        };
        log_changes(&findings);
        self.published.metrics.publish_findings(&findings);
        {
            let mut doc = self.published.status.write().expect("status lock poisoned");
            doc.evaluated_at = Some(now);
            doc.account = snapshot.account.clone().ok();
            doc.findings = status::finding_entries(&findings, since.as_deref());
            doc.trails = trail_summaries;
        }
        if !self.published.ready.swap(true, Ordering::Relaxed) {
            tracing::info!("first evaluation published; ready");
        }
    }

    fn skipped(&self, poller: &str) {
        tracing::warn!(poller, "previous run still going; skipping this tick");
        self.published
            .metrics
            .poll_skipped
            .with_label_values(&[poller])
            .inc();
    }

    fn record_run(&self, poller: &'static str, started: Instant, errors: Vec<Unavailable>) {
        let m = &self.published.metrics;
        let seconds = started.elapsed().as_secs_f64();
        let now = Utc::now();
        m.poll_duration
            .with_label_values(&[poller])
            .observe(seconds);
        for e in &errors {
            m.poll_errors
                .with_label_values(&[poller, reason_class(&e.reason)])
                .inc();
            tracing::warn!(poller, reason = %e.reason, "AWS call failed");
        }
        m.poll_success
            .with_label_values(&[poller])
            .set(i64::from(errors.is_empty()));
        if errors.is_empty() {
            m.last_poll_success
                .with_label_values(&[poller])
                .set(now.timestamp() as f64);
        }
        let entries = {
            let mut pollers = self.pollers.lock().expect("pollers lock poisoned");
            let entry = pollers
                .entry(poller)
                .or_insert_with(|| PollerEntry::new(poller));
            entry.last_run = Some(now);
            entry.last_duration_seconds = Some(seconds);
            match errors.first() {
                None => entry.last_success = Some(now),
                Some(e) => {
                    entry.last_error = Some(e.reason.clone());
                    entry.last_error_time = Some(now);
                }
            }
            pollers.values().cloned().collect()
        };
        self.published
            .status
            .write()
            .expect("status lock poisoned")
            .pollers = entries;
        tracing::debug!(poller, seconds, errors = errors.len(), "poll finished");
    }
}

/// One line per finding that is not passing, at each evaluation: the log is the audit trail of
/// what the daemon saw. Passing findings are only logged at debug level.
fn log_changes(findings: &[Finding]) {
    for f in findings {
        match f.status {
            evaluate::Status::Pass => tracing::debug!(
                policy = %f.policy, resource = %f.resource, "pass: {}", f.message
            ),
            evaluate::Status::Fail => tracing::warn!(
                policy = %f.policy, severity = f.severity.as_str(), resource = %f.resource,
                "policy failing: {}", f.message
            ),
            evaluate::Status::Error => tracing::warn!(
                policy = %f.policy, severity = f.severity.as_str(), resource = %f.resource,
                "policy could not be evaluated: {}", f.message
            ),
        }
    }
}

/// True when the posture poller has never run, or has not seen a bucket or key of these trails.
fn has_unseen_resources(result: &TrailsResult, posture: Option<&Posture>) -> bool {
    let Some(posture) = posture else {
        return true;
    };
    result.trails.as_ref().is_ok_and(|states| {
        states.iter().any(|s| {
            let t = &s.trail;
            t.s3_bucket_name
                .as_ref()
                .is_some_and(|b| !posture.buckets.contains_key(b))
                || t.kms_key_id
                    .as_ref()
                    .is_some_and(|k| !posture.keys.contains_key(k))
        })
    })
}

fn api_error<T>(fetched: &Fetched<T>, into: &mut Vec<Unavailable>) {
    if let Err(e) = fetched
        && e.from_api
    {
        into.push(e.clone());
    }
}

fn trails_errors(result: &TrailsResult) -> Vec<Unavailable> {
    let mut errors = Vec::new();
    api_error(&result.account, &mut errors);
    errors.extend(result.listing_errors.values().cloned());
    if let Ok(states) = &result.trails {
        for s in states {
            api_error(&s.status, &mut errors);
            api_error(&s.selectors, &mut errors);
        }
    }
    errors
}

fn posture_errors(posture: &Posture) -> Vec<Unavailable> {
    let mut errors = Vec::new();
    for bucket in posture.buckets.values() {
        api_error(bucket, &mut errors);
        if let Ok(b) = bucket {
            api_error(&b.encryption, &mut errors);
            api_error(&b.lifecycle_rules, &mut errors);
            api_error(&b.versioning, &mut errors);
            api_error(&b.object_lock, &mut errors);
            api_error(&b.public_access_block, &mut errors);
            api_error(&b.policy_is_public, &mut errors);
            api_error(&b.acl_is_public, &mut errors);
            api_error(&b.access_logging, &mut errors);
        }
    }
    for key in posture.keys.values() {
        api_error(key, &mut errors);
        if let Ok(k) = key {
            api_error(&k.rotation_enabled, &mut errors);
            api_error(&k.aliases, &mut errors);
        }
    }
    for recorders in posture.recorders.values() {
        api_error(recorders, &mut errors);
    }
    errors
}

impl TrailsResult {
    /// The snapshot evaluation works on: these trails plus the given posture.
    pub fn snapshot(&self, regions: &[String], posture: Option<Posture>) -> Snapshot {
        Snapshot {
            account: self.account.clone(),
            regions: regions.to_vec(),
            trails: self.trails.clone(),
            trail_listing_errors: self.listing_errors.clone(),
            posture,
            evidence: None,
        }
    }
}
