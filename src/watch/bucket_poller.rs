//! The bucket poller as the daemon runs it: one pass (`bucket.rs`) over each trail's bucket,
//! then metrics, `/status` and the policies that read the bucket's evidence.

use super::bucket::{Inputs, TrailPass, read_trail_bucket};
use super::{BUCKET, Watch};
use crate::integrity::coverage::gaps;
use crate::integrity::verdict::Kind;
use crate::posture::{TrailEvidence, TrailState};
use chrono::{Duration, Utc};
use std::collections::BTreeMap;
use std::time::Instant;

impl Watch {
    pub async fn poll_bucket(&self) {
        let Ok(_running) = self.bucket_running.try_lock() else {
            self.skipped(BUCKET);
            return;
        };
        let (account, states) = {
            let latest = self.latest.lock().expect("latest lock poisoned");
            let Some(t) = &latest.trails else {
                tracing::debug!("bucket poll before the first trail poll: skipped");
                return;
            };
            let states: Vec<TrailState> = t.trails.as_ref().map(|s| s.to_vec()).unwrap_or_default();
            (t.account.clone().ok(), states)
        };
        let started = Instant::now();
        let detections = self.detections();
        let watched = self.watched().map(|(_, w)| w);
        let inputs = Inputs {
            aws: &self.aws,
            store: &self.store,
            settings: &self.bucket_settings,
            detections: match (&watched, detections.detections.is_empty()) {
                (Some(w), false) => Some((&detections, w)),
                _ => None,
            },
            now: Utc::now(),
            hole_tolerance: self.coverage_params().1,
        };
        let mut evidence = BTreeMap::new();
        let mut errors = Vec::new();
        let mut hits = Vec::new();
        for state in states.iter().filter(|s| s.trail.s3_bucket_name.is_some()) {
            let t = &state.trail;
            // Several trails may share a bucket; each reads its own digests, logs once per folder.
            match read_trail_bucket(&inputs, state, account.as_deref()).await {
                Ok(pass) => {
                    self.publish_pass(&t.name, &pass);
                    errors.extend(pass.errors.iter().cloned());
                    hits.extend(pass.hits);
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
        {
            let mut doc = self.published.status.write().expect("status lock poisoned");
            doc.buckets = evidence
                .iter()
                .map(|(arn, e)| bucket_entry(arn, e))
                .collect();
        }
        self.latest.lock().expect("latest lock poisoned").evidence = Some(evidence);
        if hits.iter().any(|h| h.recollect) {
            self.refresh().await;
        }
        self.publish_hits(&hits);
        self.evaluate_and_publish();
        self.record_run(BUCKET, started, errors);
    }

    fn publish_pass(&self, trail: &str, pass: &TrailPass) {
        let m = &self.published.metrics;
        let (min_days, tolerance) = self.coverage_params();
        let now = Utc::now();
        for r in &pass.evidence.regions {
            let labels = [r.account.as_str(), r.region.as_str(), trail];
            if let Some(t) = r.coverage.newest_delivery() {
                m.latest_log
                    .with_label_values(&labels)
                    .set(t.timestamp() as f64);
            }
            if let Some(t) = r.coverage.oldest {
                m.oldest_log
                    .with_label_values(&labels)
                    .set(t.timestamp() as f64);
            }
            let g = gaps(&r.coverage, now, min_days, tolerance, r.origin);
            m.coverage_gap
                .with_label_values(&labels)
                .set(g.longest().num_seconds() as f64);
            if r.validated_until.is_some() {
                // Every kind at 0 from the first validation on, so increase() sees the first.
                for kind in Kind::ALL {
                    m.digest_failures.with_label_values(&[
                        &r.account,
                        &r.region,
                        trail,
                        kind.as_str(),
                    ]);
                }
                m.logs_validated.with_label_values(&labels);
            }
        }
        for ((account, region), n) in &pass.logs_validated {
            m.logs_validated
                .with_label_values(&[account, region, trail])
                .inc_by(*n);
        }
        for (account, region, item) in &pass.new_items {
            if let Some(kind) = item.class.failure() {
                m.digest_failures
                    .with_label_values(&[account, region, trail, kind.as_str()])
                    .inc();
            }
        }
        for ((account, region), n) in &pass.records {
            m.log_records
                .with_label_values(&[account, region])
                .inc_by(*n);
        }
        m.log_records_unparseable.inc_by(pass.unreadable_records);
    }

    /// The coverage policy's window and tolerance (the defaults without one).
    fn coverage_params(&self) -> (i64, Duration) {
        let (days, tolerance) = self
            .policies
            .read()
            .expect("policies lock poisoned")
            .coverage_params();
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
            "regions": ev.regions.iter().map(|r| serde_json::json!({
                "account": r.account,
                "region": r.region,
                "newest_log": r.coverage.newest_delivery(),
                "oldest_log": r.coverage.oldest,
                "log_files": r.coverage.files,
                "holes": r.coverage.holes.iter().map(|(a, b)| serde_json::json!({"start": a, "end": b})).collect::<Vec<_>>(),
                "chain_origin": r.origin,
                "validated_until": r.validated_until,
            })).collect::<Vec<_>>(),
            "integrity": ev.verdicts.iter().take(100).collect::<Vec<_>>(),
        }),
    }
}
