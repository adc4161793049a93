//! The event history poller: reads write events from LookupEvents per region, incrementally
//! from a checkpoint with a look-back overlap; claims each page's events with their
//! detections in one transaction (an event another poll or the bucket poller claimed first is
//! dropped); records the trails' logging transitions; re-collects what a tamper event
//! touched; and publishes.

use super::Watch;
use super::detections::stored;
use crate::collect::aws::Aws;
use crate::collect::events::{LookedUp, RateLimiter, write_events};
use crate::config::sigma::SigmaRules;
use crate::config::{Check, DetectionSet, EventHistorySettings};
use crate::evaluate::detection::{Watched, detect};
use crate::evaluate::log_records::{FoundTransition, transition_of};
use crate::evaluate::record_facts::Retention;
use crate::posture::{Posture, TrailState, Unavailable};
use crate::record::Record;
use crate::state::{Claim, Source, StateError, StoredDetection};
use chrono::Utc;
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// LookupEvents' limit per account and region.
const LOOKUPS_PER_SECOND: u32 = 2;

pub(super) struct EventWatch {
    detections: RwLock<Arc<DetectionSet>>,
    settings: EventHistorySettings,
    /// One per account and region: every LookupEvents call there waits for it.
    limiters: Mutex<HashMap<(String, String), Arc<RateLimiter>>>,
}

impl EventWatch {
    pub(super) fn new(detections: DetectionSet, settings: EventHistorySettings) -> EventWatch {
        EventWatch {
            detections: RwLock::new(Arc::new(detections)),
            settings,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    fn limiter(&self, account: &str, region: &str) -> Arc<RateLimiter> {
        self.limiters
            .lock()
            .entry((account.to_string(), region.to_string()))
            .or_insert_with(|| Arc::new(RateLimiter::per_second(LOOKUPS_PER_SECOND)))
            .clone()
    }
}

impl Watch {
    pub fn set_detections(&self, detections: DetectionSet) {
        self.report_sigma(&detections.sigma);
        *self.events.detections.write() = Arc::new(detections);
    }

    /// The Sigma rules loaded and those that could not be: logged (each problem with its
    /// file and reason), counted, and in `/status.sigma`.
    pub fn report_sigma(&self, sigma: &SigmaRules) {
        for p in &sigma.problems {
            tracing::warn!(file = %p.file.display(), reason = %p.reason, "Sigma rule not loaded");
        }
        if !sigma.rules.is_empty() || !sigma.problems.is_empty() {
            tracing::info!(
                loaded = sigma.rules.len(),
                failed = sigma.problems.len(),
                "Sigma rules"
            );
        }
        let m = &self.published.metrics.sigma_rules;
        m.with_label_values(&["loaded"])
            .set(sigma.rules.len() as i64);
        m.with_label_values(&["failed"])
            .set(sigma.problems.len() as i64);
        self.published.status.write().sigma = (!sigma.rules.is_empty()
            || !sigma.problems.is_empty())
        .then(|| serde_json::json!({"rules": sigma.rules, "problems": sigma.problems}));
    }

    pub(super) fn detections(&self) -> Arc<DetectionSet> {
        self.events.detections.read().clone()
    }

    /// One run of the event history poller over every region.
    pub async fn poll_events(&self) {
        if self.detections().is_empty() {
            return;
        }
        self.execute_detecting(&self.pollers.events, self.run_events())
            .await;
    }

    /// The detections claimed (with whether they ask for a re-collection), and the failures.
    /// Accounts are read `concurrency` at a time, each region after the other; an account
    /// that fails holds up no other.
    async fn run_events(&self) -> (Vec<Unavailable>, Vec<(StoredDetection, bool)>) {
        let detections = self.detections();
        let Some(watched) = self.watched() else {
            // The trail poll runs first at start; until it has, targets are unknown.
            tracing::debug!("event poll before the first trail poll: skipped");
            return (Vec::new(), Vec::new());
        };
        let concurrency = self
            .accounts
            .as_ref()
            .map_or(1, |a| a.settings().concurrency);
        let started = Utc::now();
        let (watched, detections) = (&watched, &detections);
        let per_account: Vec<AccountEvents> = futures_util::stream::iter(self.event_sources())
            .map(|(account, aws)| async move {
                Box::pin(self.poll_account(&aws, account, detections, watched)).await
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut errors = Vec::new();
        let mut found = Vec::new();
        let mut failed = BTreeSet::new();
        for a in per_account {
            errors.extend(a.errors);
            found.extend(a.found);
            failed.extend(a.failed_regions);
        }
        // A region's gauge: every account's history there was read up to at least the start
        // of this run.
        for region in self.regions.iter().filter(|r| !failed.contains(*r)) {
            self.published
                .metrics
                .event_checkpoint
                .with_label_values(&[region])
                .set(started.timestamp() as f64);
        }
        (errors, found)
    }

    /// One account's event history, each region after the other.
    async fn poll_account(
        &self,
        aws: &Aws,
        account: Result<String, Unavailable>,
        detections: &DetectionSet,
        watched: &Watched,
    ) -> AccountEvents {
        let mut out = AccountEvents::default();
        let Ok(account) = account else {
            out.errors.push(Unavailable::new(
                "the account is unknown (GetCallerIdentity failed): event history checkpoints are per account",
            ));
            out.failed_regions.extend(self.regions.iter().cloned());
            return out;
        };
        for region in &self.regions {
            let (claimed, error) = self
                .poll_region(aws, &account, region, detections, watched)
                .await;
            out.found.extend(claimed);
            if let Some(e) = error {
                out.failed_regions.insert(region.clone());
                out.errors.push(e);
            }
            self.pollers.events.tick();
        }
        out
    }

    /// The watched resources, from the latest trail and posture polls of every account.
    /// They do not need the account: a failed GetCallerIdentity never turns the detections
    /// off. `None` before the first trail poll.
    pub(super) fn watched(&self) -> Option<Watched> {
        let mut watched = match &self.accounts {
            Some(a) => a.watched()?,
            None => {
                let latest = self.latest.lock();
                let trails = latest.trails.as_ref()?;
                watched_of(trails.trails.iter().flatten(), latest.posture.iter())
            }
        };
        watched.own_requests = self.own_requests();
        let policies = self.policies.read();
        watched.retention = policies
            .policies
            .iter()
            .find_map(|p| match p.check {
                Check::Retention {
                    min_days,
                    min_noncurrent_days,
                } => Some(Retention {
                    min_days,
                    min_noncurrent_days,
                }),
                _ => None,
            })
            .unwrap_or_default();
        Some(watched)
    }

    /// Whose event history the poller reads, with the clients that read it: the daemon's
    /// account, or every account the last trail poll reached.
    fn event_sources(&self) -> Vec<(Result<String, Unavailable>, Arc<Aws>)> {
        match &self.accounts {
            Some(a) => a
                .reached()
                .into_iter()
                .map(|r| (Ok(r.member.account.id), r.aws))
                .collect(),
            None => {
                let latest = self.latest.lock();
                let account = latest.trails.as_ref().map(|t| t.account.clone());
                account.into_iter().map(|a| (a, self.aws.clone())).collect()
            }
        }
    }

    /// Reads one region from its checkpoint to now, claiming each page as it comes. Returns
    /// the detections claimed and the failure that stopped the query, if any; what was
    /// claimed before a failure stays claimed, and the checkpoint stays where it was.
    async fn poll_region(
        &self,
        aws: &Aws,
        account: &str,
        region: &str,
        detections: &DetectionSet,
        watched: &Watched,
    ) -> (Vec<(StoredDetection, bool)>, Option<Unavailable>) {
        let settings = &self.events.settings;
        let overlap = chrono::Duration::from_std(settings.overlap.0).unwrap_or_default();
        let window = chrono::Duration::from_std(settings.initial_window.0).unwrap_or_default();
        let now = Utc::now();
        let (a, r) = (account.to_string(), region.to_string());
        let checkpoint = match self.store.run(move |s| s.event_checkpoint(&a, &r)).await {
            Ok(c) => c,
            Err(e) => return (Vec::new(), Some(store_failure(e))),
        };
        let start = checkpoint.map_or(now - window, |c| c - overlap);
        let client = aws.cloudtrail(region);
        let limiter = self.events.limiter(account, region);
        let mut pages = write_events(&client, &limiter, start, now);
        let mut found = Vec::new();
        let m = &self.published.metrics;
        loop {
            let page = match pages.next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => return (found, Some(e)),
            };
            self.pollers.events.tick();
            let read = read_page(page, detections, watched, now);
            let claims: Vec<Claim> = read.iter().map(|r| r.claim.clone()).collect();
            let transitions: Vec<FoundTransition> =
                read.iter().flat_map(|r| r.transitions.clone()).collect();
            let fresh = match self
                .store
                .run(move |s| {
                    s.record_transitions(&transitions)?;
                    s.claim_events(Source::EventHistory, &claims, now)
                })
                .await
            {
                Ok(fresh) => fresh,
                // Without the claims, processing could count twice: stop here.
                Err(e) => return (found, Some(store_failure(e))),
            };
            for (r, fresh) in read.into_iter().zip(fresh) {
                if !fresh {
                    m.events_duplicate.with_label_values(&[region]).inc();
                    continue;
                }
                m.event_claims
                    .with_label_values(&[Source::EventHistory.as_str()])
                    .inc();
                match r.unreadable {
                    Some(error) => {
                        m.events_unparseable.with_label_values(&[region]).inc();
                        tracing::warn!(event_id = %r.claim.event_id, region, %error, "unreadable event history record");
                    }
                    None => m.events_processed.with_label_values(&[region]).inc(),
                }
                let recollect = r.recollect;
                found.extend(r.claim.detections.into_iter().map(|d| (d, recollect)));
            }
        }
        tracing::debug!(region, calls = pages.calls, %start, "event history read");
        // Older than the next query's start, an event cannot come back from event history;
        // but the bucket poller may still read it from a log file within its read window.
        let read_window = chrono::Duration::from_std(self.bucket_settings.read_window.0)
            .unwrap_or(chrono::Duration::days(3));
        let forget = crate::plan::claims::forget_before(now, overlap, read_window);
        let (a, r) = (account.to_string(), region.to_string());
        if let Err(e) = self
            .store
            .run(move |s| s.finish_event_poll(&a, &r, now, forget))
            .await
        {
            return (found, Some(store_failure(e)));
        }
        (found, None)
    }
}

/// The resources the detections watch: the trails' buckets, prefixes, keys (with their
/// aliases) and log groups.
pub(super) fn watched_of<'a>(
    trails: impl Iterator<Item = &'a TrailState>,
    postures: impl Iterator<Item = &'a Posture>,
) -> Watched {
    let mut watched = Watched::default();
    for state in trails {
        let t = &state.trail;
        watched.add_trail(
            t.s3_bucket_name.as_deref(),
            t.s3_key_prefix.as_deref(),
            t.kms_key_id.as_deref(),
            t.cloud_watch_logs_log_group_arn.as_deref(),
        );
    }
    for posture in postures {
        for key in posture.keys.values().flatten() {
            watched.add_key(&key.arn);
            for alias in key.aliases.iter().flatten() {
                watched.add_key(alias);
            }
        }
    }
    watched
}

/// What one account's event history gave in a run.
#[derive(Default)]
struct AccountEvents {
    errors: Vec<Unavailable>,
    found: Vec<(StoredDetection, bool)>,
    failed_regions: BTreeSet<String>,
}

/// One event history entry, read.
struct ReadEntry {
    claim: Claim,
    transitions: Vec<FoundTransition>,
    /// Why the record could not be read (it is claimed anyway: reported once).
    unreadable: Option<String>,
    recollect: bool,
}

/// A page read: each entry's claim (with its detections), transitions, and faults. Pure.
fn read_page(
    page: Vec<LookedUp>,
    detections: &DetectionSet,
    watched: &Watched,
    now: chrono::DateTime<Utc>,
) -> Vec<ReadEntry> {
    page.into_iter()
        .map(|entry| {
            let id = event_key(&entry);
            let parsed = entry
                .record
                .as_deref()
                .ok_or_else(|| "no CloudTrailEvent".to_string())
                .and_then(|text| Record::parse(text).map_err(|e| e.to_string()));
            let record = match parsed {
                Ok(r) => r,
                Err(error) => {
                    return ReadEntry {
                        claim: Claim {
                            event_id: id,
                            event_time: now,
                            detections: vec![],
                        },
                        transitions: vec![],
                        unreadable: Some(error),
                        recollect: false,
                    };
                }
            };
            let hits = detect(detections, &record, watched, now);
            let transitions = transition_of(&record).into_iter().collect();
            ReadEntry {
                recollect: hits.iter().any(|h| h.recollect),
                claim: Claim {
                    event_id: id,
                    event_time: record.event_time,
                    detections: hits.iter().map(stored).collect(),
                },
                transitions,
                unreadable: None,
            }
        })
        .collect()
}

/// The id to dedupe by: LookupEvents' EventId, else a stable hash of the record text.
fn event_key(e: &LookedUp) -> String {
    match &e.event_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => crate::record::stable_id(e.record.as_deref().unwrap_or_default()),
    }
}

fn store_failure(e: StateError) -> Unavailable {
    Unavailable::api_failure(format!("state store: {e}"))
}
