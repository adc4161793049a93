//! The bucket poller as the daemon runs it: one pass (`bucket/`) over each trail's bucket,
//! then the detections it claimed, metrics, `/status` and the policies that read the bucket's
//! evidence. Series of a trail that vanished, or of a region whose read failed, are removed,
//! never left at their last value.

use super::Watch;
use super::bucket::{Inputs, TrailPass, read_trail_bucket};
use crate::collect::accounts::BucketRead;
use crate::integrity::coverage::gaps;
use crate::integrity::verdict::Kind;
use crate::posture::{TrailEvidence, TrailState, Unavailable};
use crate::state::StoredDetection;
use chrono::{Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl Watch {
    pub async fn poll_bucket(&self) {
        self.execute_detecting(&self.pollers.bucket, self.run_bucket())
            .await;
    }

    async fn run_bucket(&self) -> (Vec<Unavailable>, Vec<(StoredDetection, bool)>) {
        let Some(reads) = self.bucket_reads() else {
            tracing::debug!("bucket poll before the first trail and posture polls: skipped");
            return (Vec::new(), Vec::new());
        };
        let detections = self.detections();
        let watched = self.watched();
        let tick = || self.pollers.bucket.tick();
        let now = Utc::now();
        let hole_tolerance = self.coverage_params().1;
        let detections = match watched {
            Some(w) if !detections.is_empty() => Some((detections.clone(), Arc::new(w))),
            _ => None,
        };
        let mut evidence = BTreeMap::new();
        let mut errors = Vec::new();
        let mut found = Vec::new();
        let mut trails = BTreeSet::new();
        for read in &reads {
            let t = &read.state.trail;
            trails.insert(t.name.clone());
            let inputs = Inputs {
                aws: &read.aws,
                store: &self.store,
                settings: &self.bucket_settings,
                limits: &self.read_limits,
                detections: detections.clone(),
                now,
                hole_tolerance,
                tick: &tick,
                notified_until: self.notified_until(),
            };
            // Several trails may share a bucket; each reads its own digests, logs once per folder.
            match Box::pin(read_trail_bucket(
                &inputs,
                &read.state,
                read.as_account.as_deref(),
            ))
            .await
            {
                Ok(pass) => {
                    self.publish_pass(&t.name, &pass);
                    errors.extend(pass.errors.iter().cloned());
                    found.extend(pass.detections);
                    evidence.insert(t.arn.clone(), Ok(pass.evidence));
                }
                Err(e) => {
                    if e.from_api {
                        errors.push(e.clone());
                    }
                    evidence.insert(t.arn.clone(), Err(e));
                }
            }
        }
        let states: Vec<TrailState> = reads.into_iter().map(|r| r.state).collect();
        self.publish_bucket_series(&evidence, &states, &trails);
        match self.store.run(|s| s.unread_objects(None)).await {
            Ok(waiting) => {
                let m = &self.published.metrics;
                for kind in ["log", "digest"] {
                    let n = waiting.iter().filter(|u| u.kind == kind).count();
                    m.unread_objects.with_label_values(&[kind]).set(n as i64);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot count the reads waiting for a retry"),
        }
        {
            let mut doc = self.published.status.write();
            doc.buckets = evidence
                .iter()
                .map(|(arn, e)| bucket_entry(arn, e))
                .collect();
        }
        self.latest.lock().evidence = Some(evidence);
        self.evaluate_and_publish().await;
        (errors, found)
    }

    /// The trails whose buckets a pass reads, with the clients that read each: the daemon's
    /// own trails with its own clients, or (many accounts) each judged trail with its bucket
    /// owner's. `None` until the polls that name them have run.
    pub(super) fn bucket_reads(&self) -> Option<Vec<BucketRead>> {
        if let Some(a) = &self.accounts {
            return a.bucket_reads();
        }
        let latest = self.latest.lock();
        let t = latest.trails.as_ref()?;
        let account = t.account.clone().ok();
        Some(
            t.trails
                .iter()
                .flatten()
                .filter(|s| s.trail.s3_bucket_name.is_some())
                .map(|s| BucketRead {
                    judge: account.clone().unwrap_or_default(),
                    state: s.clone(),
                    aws: self.aws.clone(),
                    as_account: account.clone(),
                })
                .collect(),
        )
    }

    pub(super) fn publish_pass(&self, trail: &str, pass: &TrailPass) {
        let m = &self.published.metrics;
        for r in pass
            .evidence
            .regions
            .iter()
            .filter(|r| r.validated_until.is_some())
        {
            // Every kind at 0 from the first validation on, so increase() sees the first.
            for kind in Kind::ALL {
                let labels = [r.account.as_str(), r.region.as_str(), trail, kind.as_str()];
                m.digest_failures.with_label_values(&labels);
                m.note("digest_failures", &labels);
            }
            let labels = [r.account.as_str(), r.region.as_str(), trail];
            m.logs_validated.with_label_values(&labels);
            m.note("logs_validated", &labels);
        }
        for ((account, region), n) in &pass.logs_validated {
            m.logs_validated
                .with_label_values(&[account, region, trail])
                .inc_by(*n);
            m.note("logs_validated", &[account, region, trail]);
        }
        for (account, region, item) in &pass.new_items {
            if let Some(kind) = item.class.failure() {
                let labels = [account.as_str(), region.as_str(), trail, kind.as_str()];
                m.digest_failures.with_label_values(&labels).inc();
                m.note("digest_failures", &labels);
            }
        }
        for ((account, region), n) in &pass.records {
            m.log_records
                .with_label_values(&[account, region])
                .inc_by(*n);
        }
        for ((account, region), n) in &pass.missed {
            m.log_files_missed
                .with_label_values(&[account, region])
                .inc_by(*n);
        }
        for (kind, reason) in &pass.read_failures {
            m.object_read_failures
                .with_label_values(&[kind, reason])
                .inc();
        }
        m.event_claims
            .with_label_values(&["bucket"])
            .inc_by(pass.claims);
        m.log_files_found_by_listing.inc_by(pass.found_by_listing);
        m.log_files_announced.inc_by(pass.announced);
        m.log_records_unparseable.inc_by(pass.unreadable_records);
    }

    /// The per-region gauges of every trail's bucket, replaced as a whole: a region whose
    /// log folder could not be read, or a trail that is gone, has no series (its policies
    /// say why); counters of a trail that is gone go too.
    fn publish_bucket_series(
        &self,
        evidence: &BTreeMap<String, crate::posture::Fetched<TrailEvidence>>,
        states: &[TrailState],
        trails: &BTreeSet<String>,
    ) {
        let m = &self.published.metrics;
        let (min_days, tolerance) = self.coverage_params();
        let now = Utc::now();
        let (mut latest, mut oldest, mut gap) = (Vec::new(), Vec::new(), Vec::new());
        for state in states {
            let Some(Ok(e)) = evidence.get(&state.trail.arn) else {
                continue;
            };
            for r in e.regions.iter().filter(|r| r.log_error.is_none()) {
                let labels = vec![
                    r.account.clone(),
                    r.region.clone(),
                    state.trail.name.clone(),
                ];
                if let Some(t) = r.coverage.newest_delivery() {
                    latest.push((labels.clone(), t.timestamp() as f64));
                }
                if let Some(t) = r.coverage.oldest {
                    oldest.push((labels.clone(), t.timestamp() as f64));
                }
                let began = e.created.or(r.origin);
                let g = gaps(&r.coverage, now, min_days, tolerance, began);
                gap.push((labels, g.longest().num_seconds() as f64));
            }
        }
        m.replace("latest_log", &m.latest_log, latest, |g, v| g.set(v));
        m.replace("oldest_log", &m.oldest_log, oldest, |g, v| g.set(v));
        m.replace("coverage_gap", &m.coverage_gap, gap, |g, v| g.set(v));
        let kept = |labels: &[String]| labels.get(2).is_some_and(|t| trails.contains(t));
        m.forget("digest_failures", &m.digest_failures, &kept);
        m.forget("logs_validated", &m.logs_validated, &kept);
    }

    /// The coverage policy's window and tolerance (the defaults without one).
    pub(super) fn coverage_params(&self) -> (i64, Duration) {
        let (days, tolerance) = self.policies.read().coverage_params();
        (
            days as i64,
            Duration::from_std(tolerance).unwrap_or(Duration::hours(6)),
        )
    }
}

/// One trail's bucket in `/status`.
fn bucket_entry(
    arn: &str,
    e: &Result<TrailEvidence, crate::posture::Unavailable>,
) -> serde_json::Value {
    match e {
        Err(e) => serde_json::json!({"trail": arn, "error": e.reason}),
        Ok(ev) => serde_json::json!({
            "trail": arn,
            "digests_seen": ev.digests_seen,
            "created": ev.created,
            "regions": ev.regions.iter().map(|r| serde_json::json!({
                "account": r.account,
                "region": r.region,
                "newest_log": r.coverage.newest_delivery(),
                "oldest_log": r.coverage.oldest,
                "log_files": r.coverage.files,
                "holes": r.coverage.holes.iter().map(|(a, b)| serde_json::json!({"start": a, "end": b})).collect::<Vec<_>>(),
                "chain_origin": r.origin,
                "validated_until": r.validated_until,
                "log_error": r.log_error,
                "digest_error": r.digest_error,
            })).collect::<Vec<_>>(),
            "unread": ev.unread,
            "integrity": ev.verdicts.iter().take(100).collect::<Vec<_>>(),
        }),
    }
}
