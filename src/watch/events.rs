//! The event history poller: reads write events from LookupEvents per region, incrementally
//! from a checkpoint with a look-back overlap, drops events an earlier poll processed (by id,
//! across restarts), runs the detections, re-collects the posture a tamper event touched, and
//! publishes: counters, `/status` events, one log line per detection.

use super::{EVENTS, Watch};
use crate::collect::events::{LookedUp, RateLimiter, lookup_write_events};
use crate::config::{Check, DetectionSet, EventHistorySettings, Severity};
use crate::evaluate::detection::{Hit, Watched, detect};
use crate::evaluate::record_facts::Retention;
use crate::posture::Unavailable;
use crate::record::Record;
use crate::state::{EventPollResult, StateError, StoredDetection};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// How many detections `/status` lists.
const STATUS_EVENTS: usize = 100;

/// How long processed event ids are remembered at least: longer than the bucket poller's
/// default first-pass window, so an event seen in event history is not counted again when
/// its log file is read.
const SEEN_MEMORY: chrono::Duration = chrono::Duration::days(3);

/// LookupEvents' limit per account and region.
const LOOKUPS_PER_SECOND: u32 = 2;

pub(super) struct EventWatch {
    detections: RwLock<Arc<DetectionSet>>,
    settings: EventHistorySettings,
    /// One per region: every LookupEvents call of the region waits for it.
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
    running: tokio::sync::Mutex<()>,
}

impl EventWatch {
    pub(super) fn new(detections: DetectionSet, settings: EventHistorySettings) -> EventWatch {
        EventWatch {
            detections: RwLock::new(Arc::new(detections)),
            settings,
            limiters: Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(()),
        }
    }

    fn limiter(&self, region: &str) -> Arc<RateLimiter> {
        let mut limiters = self.limiters.lock().expect("limiters lock poisoned");
        limiters
            .entry(region.to_string())
            .or_insert_with(|| Arc::new(RateLimiter::per_second(LOOKUPS_PER_SECOND)))
            .clone()
    }
}

impl Watch {
    /// Shows the detections kept in the state store in `/status` (after a restart).
    pub(super) fn with_stored_detections(self) -> Watch {
        match self.store.recent_detections() {
            Ok(stored) => {
                let mut doc = self.published.status.write().expect("status lock poisoned");
                doc.events = stored
                    .into_iter()
                    .take(STATUS_EVENTS)
                    .map(|d| d.entry)
                    .collect();
            }
            Err(e) => tracing::error!(error = %e, "cannot read recent detections"),
        }
        self
    }

    pub fn set_detections(&self, detections: DetectionSet) {
        *self
            .events
            .detections
            .write()
            .expect("detections lock poisoned") = Arc::new(detections);
    }

    pub(super) fn detections(&self) -> Arc<DetectionSet> {
        self.events
            .detections
            .read()
            .expect("detections lock poisoned")
            .clone()
    }

    /// One run of the event history poller over every region.
    pub async fn poll_events(&self) {
        let Ok(_running) = self.events.running.try_lock() else {
            self.skipped(EVENTS);
            return;
        };
        let detections = self
            .events
            .detections
            .read()
            .expect("detections lock poisoned")
            .clone();
        if detections.detections.is_empty() {
            return;
        }
        let Some((account, watched)) = self.watched() else {
            // The trail poll runs first at start; until it has, targets are unknown.
            tracing::debug!("event poll before the first trail poll: skipped");
            return;
        };
        let started = Instant::now();
        let mut errors = Vec::new();
        let mut hits = Vec::new();
        for region in &self.regions {
            let (found, error) = self
                .poll_region(&account, region, &detections, &watched)
                .await;
            hits.extend(found);
            errors.extend(error);
        }
        // Collect what the events touched before publishing them, so a StopLogging counted
        // is already a stopped trail in the metrics.
        if hits.iter().any(|h| h.recollect) {
            self.refresh().await;
        }
        self.publish_hits(&hits);
        self.record_run(EVENTS, started, errors);
    }

    /// The account and the watched resources, from the latest trail and posture polls.
    pub(super) fn watched(&self) -> Option<(String, Watched)> {
        let latest = self.latest.lock().expect("latest lock poisoned");
        let trails = latest.trails.as_ref()?;
        let account = trails.account.clone().ok()?;
        let mut watched = Watched::default();
        for state in trails.trails.iter().flatten() {
            let t = &state.trail;
            watched.add_trail(
                t.s3_bucket_name.as_deref(),
                t.s3_key_prefix.as_deref(),
                t.kms_key_id.as_deref(),
                t.cloud_watch_logs_log_group_arn.as_deref(),
            );
        }
        if let Some(posture) = &latest.posture {
            for key in posture.keys.values().flatten() {
                watched.add_key(&key.arn);
                for alias in key.aliases.iter().flatten() {
                    watched.add_key(alias);
                }
            }
        }
        let policies = self.policies.read().expect("policies lock poisoned");
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
        Some((account, watched))
    }

    /// Reads one region from its checkpoint to now. Returns the hits and the failure that
    /// stopped the query, if any; what was read before a failure is processed and kept.
    async fn poll_region(
        &self,
        account: &str,
        region: &str,
        detections: &DetectionSet,
        watched: &Watched,
    ) -> (Vec<Hit>, Option<Unavailable>) {
        let settings = &self.events.settings;
        let overlap = chrono::Duration::from_std(settings.overlap.0).unwrap_or_default();
        let window = chrono::Duration::from_std(settings.initial_window.0).unwrap_or_default();
        let now = Utc::now();
        let checkpoint = match self.store.event_checkpoint(account, region) {
            Ok(c) => c,
            Err(e) => return (Vec::new(), Some(store_failure(e))),
        };
        let start = checkpoint.map_or(now - window, |c| c - overlap);
        let client = self.aws.region(region).cloudtrail;
        let limiter = self.events.limiter(region);
        let mut batch = Batch {
            watch: self,
            region,
            detections,
            watched,
            now,
            result: EventPollResult::default(),
            hits: Vec::new(),
            ids: HashSet::new(),
            store_error: None,
        };
        let looked =
            lookup_write_events(&client, &limiter, start, now, |page| batch.process(page)).await;
        let Batch {
            mut result,
            hits,
            store_error,
            ..
        } = batch;
        let mut error = store_error.map(store_failure);
        match looked {
            Ok(calls) if error.is_none() => {
                tracing::debug!(region, calls, %start, "event history read");
                result.checkpoint = Some(now);
                // Older than the next query's start, an event cannot come back from event
                // history; but the bucket poller may still read it from a log file (its
                // first pass reads a day back): ids are kept SEEN_MEMORY at least.
                result.forget_before =
                    Some(now - (overlap + chrono::Duration::hours(1)).max(SEEN_MEMORY));
            }
            Ok(_) => {}
            Err(e) => error = Some(e),
        }
        if let Err(e) = self.store.record_event_poll(account, region, &result) {
            error.get_or_insert(store_failure(e));
        } else if let Some(c) = result.checkpoint {
            self.published
                .metrics
                .event_checkpoint
                .with_label_values(&[region])
                .set(c.timestamp() as f64);
        }
        (hits, error)
    }

    pub(super) fn publish_hits(&self, hits: &[Hit]) {
        let m = &self.published.metrics;
        for h in hits {
            m.tamper_events
                .with_label_values(&[
                    h.detection.as_str(),
                    h.event_name.as_str(),
                    h.outcome.as_str(),
                    h.account.as_str(),
                    h.region.as_str(),
                ])
                .inc();
            let last = m
                .last_tamper_event
                .with_label_values(&[h.detection.as_str()]);
            last.set(last.get().max(h.event_time.timestamp() as f64));
            log_hit(h);
        }
        if hits.is_empty() {
            return;
        }
        let mut doc = self.published.status.write().expect("status lock poisoned");
        doc.events.extend(hits.iter().map(entry_of));
        doc.events.sort_by(|a, b| {
            let time = |v: &serde_json::Value| v["event_time"].as_str().unwrap_or("").to_string();
            time(b).cmp(&time(a))
        });
        doc.events.truncate(STATUS_EVENTS);
    }
}

/// One region's poll in progress: processes pages as they arrive.
struct Batch<'a> {
    watch: &'a Watch,
    region: &'a str,
    detections: &'a DetectionSet,
    watched: &'a Watched,
    now: DateTime<Utc>,
    result: EventPollResult,
    hits: Vec<Hit>,
    /// Ids processed in this poll (pages of one query never repeat one, but cheap to be sure).
    ids: HashSet<String>,
    store_error: Option<StateError>,
}

impl Batch<'_> {
    fn process(&mut self, page: Vec<LookedUp>) {
        let m = &self.watch.published.metrics;
        let ids: Vec<String> = page.iter().map(event_key).collect();
        let seen = match self.watch.store.seen_events(&ids) {
            Ok(seen) => seen,
            Err(e) => {
                // Without the seen ids, processing could double count: stop here.
                self.store_error.get_or_insert(e);
                return;
            }
        };
        for ((entry, id), seen) in page.into_iter().zip(ids).zip(seen) {
            if seen || !self.ids.insert(id.clone()) {
                m.events_duplicate.with_label_values(&[self.region]).inc();
                continue;
            }
            let parsed = entry
                .record
                .as_deref()
                .ok_or_else(|| "no CloudTrailEvent".to_string())
                .and_then(|text| Record::parse(text).map_err(|e| e.to_string()));
            let record = match parsed {
                Ok(r) => r,
                Err(error) => {
                    m.events_unparseable.with_label_values(&[self.region]).inc();
                    tracing::warn!(event_id = %id, region = self.region, %error, "unreadable event history record");
                    // Remembered as seen: reported once, not at every overlapping poll.
                    self.result.seen.push((id, self.now));
                    continue;
                }
            };
            m.events_processed.with_label_values(&[self.region]).inc();
            for hit in detect(self.detections, &record, self.watched, self.now) {
                self.result.detections.push(StoredDetection {
                    event_id: hit.event_id.clone(),
                    detection: hit.detection.clone(),
                    event_time: hit.event_time,
                    entry: entry_of(&hit),
                });
                self.hits.push(hit);
            }
            self.result.seen.push((id, record.event_time));
        }
    }
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

/// A detection as `/status` lists it.
fn entry_of(h: &Hit) -> serde_json::Value {
    json!({
        "event_id": h.event_id,
        "event_time": h.event_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "event_source": h.event_source,
        "event_name": h.event_name,
        "detection": h.detection,
        "severity": h.severity.as_str(),
        "outcome": h.outcome.as_str(),
        "error_code": h.error_code,
        "actor": h.actor,
        "actor_type": h.actor_type,
        "source_ip": h.source_ip,
        "user_agent": h.user_agent,
        "resource": h.resource,
        "request": h.request,
        "account": h.account,
        "region": h.region,
    })
}

/// One structured line per detection, at warn (info for informational detections).
fn log_hit(h: &Hit) {
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                detection = %h.detection,
                severity = h.severity.as_str(),
                event_name = %h.event_name,
                outcome = h.outcome.as_str(),
                actor = h.actor.as_deref().unwrap_or("unknown"),
                actor_type = h.actor_type.as_deref().unwrap_or("unknown"),
                source_ip = h.source_ip.as_deref().unwrap_or(""),
                resource = h.resource.as_deref().unwrap_or(""),
                event_id = %h.event_id,
                event_time = %h.event_time,
                account = %h.account,
                region = %h.region,
                "tamper event detected"
            )
        };
    }
    if h.severity == Severity::Info {
        line!(info);
    } else {
        line!(warn);
    }
}
