//! The pollers and what they share: each run collects, stores the result as the latest, then
//! evaluates every policy over the latest of everything and publishes the findings.
//!
//! Every poller runs through one runner (`runner.rs`): never overlapping itself, a panic
//! counted as a failed run, one poller's failures never stopping another. The event history
//! poller lives in `events.rs`, the bucket poller in `bucket_poller.rs` (one pass:
//! `bucket/`), and the publication of detections in `detections.rs`.

mod accounts;
mod aws_config;
pub mod bucket;
mod bucket_poller;
mod config_cross_check;
mod detections;
mod events;
mod notifications;
mod remediation;
mod runner;
mod security_hub;

pub use accounts::ACCOUNTS;
pub use aws_config::AWS_CONFIG;
pub use detections::status_events;
pub use remediation::REMEDIATION;
pub use security_hub::SECURITY_HUB;

use crate::collect::objects::ReadLimits;
use crate::collect::{self, TrailsResult, aws::Aws};
use crate::config::{DetectionSet, EventHistorySettings, PolicySet};
use crate::evaluate::{self, Finding, Status};
use crate::plan::shards::Shard;
use crate::posture::{Fetched, Posture, Snapshot, Trail, Unavailable};
use crate::publish::health::Progress;
use crate::publish::http::Published;
use crate::publish::status;
use crate::state::Store;
use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use runner::{Overlap, Poller};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub const TRAILS: &str = "trails";
pub const POSTURE: &str = "posture";
pub const EVENTS: &str = "events";
pub const BUCKET: &str = "bucket";
pub const NOTIFICATIONS: &str = "notifications";

#[derive(Default)]
struct Latest {
    trails: Option<TrailsResult>,
    posture: Option<Posture>,
    evidence: Option<BTreeMap<String, Fetched<crate::posture::TrailEvidence>>>,
}

/// The pollers.
struct Pollers {
    /// Discovery of the watched accounts (with an `accounts` section only).
    accounts: Poller,
    trails: Poller,
    posture: Poller,
    events: Poller,
    bucket: Poller,
    /// The bucket notification queues (with `bucket.queues` only).
    notifications: Poller,
    /// Verdicts sent to AWS Config (with an `aws_config` section only).
    aws_config: Poller,
    /// Failures put right (with a `remediation` section only).
    remediation: Poller,
    /// Findings imported into Security Hub (with a `security_hub` section only).
    security_hub: Poller,
    /// Whether event history is polled (there are detections).
    with_events: bool,
    with_accounts: bool,
    with_notifications: bool,
    with_aws_config: bool,
    with_remediation: bool,
    with_security_hub: bool,
}

impl Pollers {
    fn iter(&self) -> impl Iterator<Item = &Poller> {
        [
            &self.accounts,
            &self.trails,
            &self.posture,
            &self.events,
            &self.bucket,
            &self.notifications,
            &self.aws_config,
            &self.remediation,
            &self.security_hub,
        ]
        .into_iter()
        .filter(|p| p.name != EVENTS || self.with_events)
        .filter(|p| p.name != ACCOUNTS || self.with_accounts)
        .filter(|p| p.name != NOTIFICATIONS || self.with_notifications)
        .filter(|p| p.name != AWS_CONFIG || self.with_aws_config)
        .filter(|p| p.name != REMEDIATION || self.with_remediation)
        .filter(|p| p.name != SECURITY_HUB || self.with_security_hub)
    }
}

pub struct Watch {
    aws: Arc<Aws>,
    /// Many accounts; `None`: the daemon's own account only.
    accounts: Option<accounts::AccountsWatch>,
    regions: Vec<String>,
    policies: RwLock<Arc<PolicySet>>,
    store: Store,
    published: Arc<Published>,
    latest: Mutex<Latest>,
    /// Held from snapshot to publication, so an older snapshot never publishes last.
    publishing: tokio::sync::Mutex<()>,
    pollers: Pollers,
    bucket_settings: crate::config::BucketSettings,
    read_limits: ReadLimits,
    events: events::EventWatch,
    /// The status each finding was last logged with: a finding is logged when it changes.
    logged: Mutex<HashMap<(String, String), Status>>,
    /// When each notification queue was last found empty.
    queues_drained: Mutex<BTreeMap<String, chrono::DateTime<Utc>>>,
    /// This replica's part of the accounts, and of the notification queues.
    shard: Shard,
    /// Verdicts for AWS Config (`aws_config` section).
    aws_config: Option<aws_config::ConfigWatch>,
    /// Remediation (`remediation` section).
    remediation: Option<remediation::RemediationWatch>,
    /// Security Hub imports (`security_hub` section).
    security_hub: Option<security_hub::HubWatch>,
}

/// What the daemon builds a [`Watch`] from.
pub struct Setup {
    pub aws: Aws,
    pub accounts: Option<crate::config::AccountSettings>,
    pub regions: Vec<String>,
    pub policies: PolicySet,
    pub detections: DetectionSet,
    pub event_history: EventHistorySettings,
    pub bucket: crate::config::BucketSettings,
    /// Bodies that stall this long are given up (the SDK's own timeout ends at the headers).
    pub body_timeout: std::time::Duration,
    pub store: Store,
    /// This replica's part of the accounts.
    pub shard: Shard,
    pub aws_config: Option<crate::config::AwsConfigSettings>,
    pub remediation: Option<crate::config::RemediationSettings>,
    pub security_hub: Option<crate::config::SecurityHubSettings>,
    /// Whether this replica may write to AWS.
    pub writer: bool,
}

impl Watch {
    /// The pollers' progress, for `/healthz`.
    pub fn progress(&self) -> Vec<Arc<Progress>> {
        self.pollers.iter().map(|p| p.progress.clone()).collect()
    }

    pub fn new(setup: Setup, published: Arc<Published>) -> Watch {
        let with_events = !setup.detections.is_empty();
        let with_accounts = setup.accounts.is_some();
        let with_notifications = setup
            .bucket
            .queues
            .iter()
            .any(|q| setup.shard.owns_bucket(&q.bucket));
        let with_aws_config = setup.aws_config.is_some();
        let with_remediation = setup.remediation.is_some();
        let with_security_hub = setup.security_hub.is_some();
        let all = [
            ACCOUNTS,
            TRAILS,
            POSTURE,
            EVENTS,
            BUCKET,
            NOTIFICATIONS,
            AWS_CONFIG,
            REMEDIATION,
            SECURITY_HUB,
        ];
        for name in all {
            if (name == ACCOUNTS && !with_accounts)
                || (name == NOTIFICATIONS && !with_notifications)
                || (name == AWS_CONFIG && !with_aws_config)
                || (name == REMEDIATION && !with_remediation)
                || (name == SECURITY_HUB && !with_security_hub)
            {
                continue;
            }
            published.metrics.poll_panics.with_label_values(&[name]);
        }
        let b = &setup.bucket;
        let read_limits = ReadLimits::new(b.max_object_size.0, b.read_memory.0, setup.body_timeout);
        let aws_config = (setup.aws_config)
            .filter(|_| with_aws_config)
            .map(|c| aws_config::ConfigWatch::new(c, &setup.regions, setup.writer));
        let remediation =
            (setup.remediation).map(|r| remediation::RemediationWatch::new(r, setup.writer));
        if let Some(r) = &remediation {
            r.zero_series(&published.metrics);
        }
        let security_hub = (setup.security_hub)
            .map(|h| security_hub::HubWatch::new(h, &setup.regions, setup.writer));
        if security_hub.is_some() {
            for compliance in ["PASSED", "FAILED"] {
                (published.metrics.security_hub_imports).with_label_values(&[compliance]);
            }
        }
        if let Some(c) = &aws_config
            && c.settings.cross_check
        {
            for (_, rule, _, _) in crate::evaluate::config_rules::MANAGED_RULES {
                (published.metrics.config_rule_disagreements).with_label_values(&[rule]);
            }
        }
        if aws_config
            .as_ref()
            .is_some_and(|c| c.settings.conformance_pack.is_some())
        {
            for compliance in ["COMPLIANT", "NON_COMPLIANT"] {
                published
                    .metrics
                    .config_evaluations
                    .with_label_values(&[compliance]);
            }
        }
        Watch {
            aws: Arc::new(setup.aws),
            accounts: setup
                .accounts
                .map(|a| accounts::AccountsWatch::new(a, setup.shard)),
            regions: setup.regions,
            policies: RwLock::new(Arc::new(setup.policies)),
            store: setup.store,
            published,
            latest: Mutex::new(Latest::default()),
            publishing: tokio::sync::Mutex::new(()),
            pollers: Pollers {
                accounts: Poller::new(ACCOUNTS),
                trails: Poller::new(TRAILS),
                posture: Poller::new(POSTURE),
                events: Poller::new(EVENTS),
                bucket: Poller::new(BUCKET),
                notifications: Poller::new(NOTIFICATIONS),
                aws_config: Poller::new(AWS_CONFIG),
                remediation: Poller::new(REMEDIATION),
                security_hub: Poller::new(SECURITY_HUB),
                with_events,
                with_accounts,
                with_notifications,
                with_aws_config,
                with_remediation,
                with_security_hub,
            },
            queues_drained: Mutex::new(BTreeMap::new()),
            shard: setup.shard,
            read_limits,
            bucket_settings: setup.bucket,
            events: events::EventWatch::new(setup.detections, setup.event_history),
            logged: Mutex::new(HashMap::new()),
            aws_config,
            remediation,
            security_hub,
        }
    }

    /// Swaps in new policies (config reload) and re-evaluates at once.
    pub async fn set_policies(&self, policies: PolicySet) {
        *self.policies.write() = Arc::new(policies);
        self.evaluate_and_publish().await;
    }

    /// Trails, status, selectors; then, when a bucket or key is new to the posture poller,
    /// the posture at once instead of at its next tick.
    pub async fn poll_trails(&self) {
        let mut unseen = false;
        self.execute(&self.pollers.trails, Overlap::Skip, async {
            let (errors, u) = self.run_trails().await;
            unseen = u;
            errors
        })
        .await;
        if unseen {
            Box::pin(self.poll_posture()).await;
        }
        Box::pin(self.remediate()).await;
    }

    /// Trails, then posture, now: after a tamper event.
    pub async fn refresh(&self) {
        self.execute(&self.pollers.trails, Overlap::Wait, async {
            self.run_trails().await.0
        })
        .await;
        self.execute(&self.pollers.posture, Overlap::Wait, self.run_posture())
            .await;
    }

    async fn run_trails(&self) -> (Vec<Unavailable>, bool) {
        if let Some(a) = &self.accounts {
            return Box::pin(self.run_trails_of_accounts(a)).await;
        }
        let result = collect::collect_trails(&self.aws, &self.regions).await;
        let errors = trails_errors(&result);
        self.published.metrics.publish_trails(&result);
        let unseen = {
            let mut latest = self.latest.lock();
            let unseen = has_unseen_resources(&result, latest.posture.as_ref());
            latest.trails = Some(result);
            unseen
        };
        self.evaluate_and_publish().await;
        (errors, unseen)
    }

    /// Buckets, keys and AWS Config recorders of the trails the last trail poll found.
    pub async fn poll_posture(&self) {
        self.execute(&self.pollers.posture, Overlap::Skip, self.run_posture())
            .await;
        Box::pin(self.remediate()).await;
    }

    /// Each reached account's clients; the daemon's own account without an `accounts` section.
    fn account_clients(&self) -> BTreeMap<String, Arc<Aws>> {
        match &self.accounts {
            Some(a) => a
                .reached()
                .into_iter()
                .map(|r| (r.member.account.id.clone(), r.aws))
                .collect(),
            None => {
                let own = self.published.status.read().account.clone();
                own.map(|id| (id, self.aws.clone())).into_iter().collect()
            }
        }
    }

    async fn run_posture(&self) -> Vec<Unavailable> {
        if let Some(a) = &self.accounts {
            return Box::pin(self.run_posture_of_accounts(a)).await;
        }
        let (account, trails) = {
            let latest = self.latest.lock();
            let Some(t) = &latest.trails else {
                // Nothing to look at before the first trail poll; it runs at start.
                tracing::debug!("posture poll before the first trail poll: skipped");
                return Vec::new();
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
        self.latest.lock().posture = Some(posture);
        self.evaluate_and_publish().await;
        errors
    }

    /// Evaluates the latest of everything and publishes it. Nothing is published until both
    /// pollers have run once: half a picture would turn bucket and key policies into
    /// `error` and reset their `since`. The first publication makes the daemon ready.
    async fn evaluate_and_publish(&self) {
        let _publishing = self.publishing.lock().await;
        let now = Utc::now();
        let (findings, account, trail_summaries, accounts) = if let Some(a) = &self.accounts {
            let Some(e) = self.evaluate_accounts(a, now) else {
                return;
            };
            (e.findings, e.own, e.trails, Some(e.accounts))
        } else {
            let (snapshot, trail_summaries) = {
                let latest = self.latest.lock();
                let (Some(trails), Some(posture)) = (&latest.trails, &latest.posture) else {
                    return;
                };
                let mut snapshot = trails.snapshot(&self.regions, Some(posture.clone()));
                snapshot.evidence = latest.evidence.clone();
                (snapshot, status::trail_summaries(trails))
            };
            let policies = self.policies.read().clone();
            let findings = evaluate::evaluate(&policies, &snapshot, now);
            (findings, snapshot.account.ok(), trail_summaries, None)
        };
        let recorded = findings.clone();
        let since = match self
            .store
            .run(move |s| s.record_findings(&recorded, now))
            .await
        {
            Ok(since) => Some(since),
            Err(e) => {
                tracing::error!(error = %e, "cannot record findings in the state store");
                None
            }
        };
        self.log_changes(&findings);
        self.published.metrics.publish_findings(&findings);
        {
            let mut doc = self.published.status.write();
            doc.evaluated_at = Some(now);
            doc.account = account;
            doc.accounts = accounts;
            doc.findings = status::finding_entries(&findings, since.as_deref());
            doc.trails = trail_summaries;
            doc.descriptions = (self.policies.read().policies.iter())
                .filter_map(|p| Some((p.id.clone(), p.description.clone()?)))
                .collect();
        }
        if !self.published.ready.swap(true, Ordering::Relaxed) {
            tracing::info!("first evaluation published; ready");
        }
    }

    /// One line per finding whose status changed (the first evaluation counts as a change
    /// for findings that do not pass): the log is the audit trail of what the daemon saw,
    /// without repeating itself at every tick.
    fn log_changes(&self, findings: &[Finding]) {
        let mut logged = self.logged.lock();
        for f in changed_findings(&mut logged, findings) {
            match f.status {
                Status::Pass => tracing::info!(
                    policy = %f.policy, resource = %f.resource, "policy passing: {}", f.message
                ),
                Status::Fail => tracing::warn!(
                    policy = %f.policy, severity = f.severity.as_str(), resource = %f.resource,
                    "policy failing: {}", f.message
                ),
                Status::Error => tracing::warn!(
                    policy = %f.policy, severity = f.severity.as_str(), resource = %f.resource,
                    "policy could not be evaluated: {}", f.message
                ),
                Status::Pending => tracing::info!(
                    policy = %f.policy, resource = %f.resource, "policy pending: {}", f.message
                ),
            }
        }
    }
}

/// The findings to log: those whose status differs from the one last logged (which
/// `logged` remembers), and new ones that do not pass. Findings that vanished are forgotten,
/// so one that comes back is logged again.
fn changed_findings<'a>(
    logged: &mut HashMap<(String, String), Status>,
    findings: &'a [Finding],
) -> Vec<&'a Finding> {
    let mut out = Vec::new();
    let mut seen = HashMap::with_capacity(findings.len());
    for f in findings {
        let key = (f.policy.clone(), f.resource.clone());
        let changed = match logged.get(&key) {
            Some(previous) => *previous != f.status,
            None => f.status != Status::Pass,
        };
        if changed {
            out.push(f);
        }
        seen.insert(key, f.status);
    }
    *logged = seen;
    out
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
    api_error(&result.trails, &mut errors);
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
            posture,
            evidence: None,
            members: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;

    fn finding(resource: &str, status: Status) -> Finding {
        Finding {
            policy: "log-coverage".into(),
            severity: Severity::High,
            status,
            account: "1".into(),
            region: "us-east-1".into(),
            resource: resource.into(),
            resource_name: resource.into(),
            message: String::new(),
        }
    }

    #[test]
    fn a_finding_is_logged_when_its_status_changes_not_at_every_tick() {
        let mut logged = HashMap::new();
        let ticks: [(&[Finding], &[&str]); 5] = [
            (
                &[finding("a", Status::Pending), finding("b", Status::Pass)],
                &["a"],
            ),
            (
                &[finding("a", Status::Pending), finding("b", Status::Pass)],
                &[],
            ),
            (
                &[finding("a", Status::Pass), finding("b", Status::Fail)],
                &["a", "b"],
            ),
            (&[finding("a", Status::Pass)], &[]),
            (
                &[finding("a", Status::Pass), finding("b", Status::Fail)],
                &["b"],
            ),
        ];
        for (i, (findings, expected)) in ticks.iter().enumerate() {
            let got: Vec<&str> = changed_findings(&mut logged, findings)
                .into_iter()
                .map(|f| f.resource.as_str())
                .collect();
            assert_eq!(got, *expected, "tick {i}");
        }
    }
}
