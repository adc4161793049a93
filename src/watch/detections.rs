//! Publishing detections: after their claim is stored (`state::claims`), each detection is
//! counted in `trailwarden_tamper_events_total`, logged once, and `/status` is rebuilt from
//! the store; then it is marked published. What a crash left unpublished is published at the
//! next start, its log line marked `republished`. `/status` lists each event once, with every
//! detection it matched.

use super::Watch;
use super::runner::{Overlap, Poller};
use crate::config::Severity;
use crate::evaluate::detection::{Hit, Outcome};
use crate::posture::Unavailable;
use crate::state::StoredDetection;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;

/// How many events `/status` lists.
const STATUS_EVENTS: usize = 100;

impl Watch {
    /// Runs a poller that claims detections: the run, then a re-collection of what they
    /// touched (so a StopLogging counted is already a stopped trail in the metrics), then
    /// their publication. `run` gives its failures and what it claimed, each with whether it
    /// asks for a re-collection.
    pub(super) async fn execute_detecting(
        &self,
        poller: &Poller,
        run: impl Future<Output = (Vec<Unavailable>, Vec<(StoredDetection, bool)>)>,
    ) {
        let mut found = Vec::new();
        self.execute(poller, Overlap::Skip, async {
            let (errors, detections) = run.await;
            found = detections;
            errors
        })
        .await;
        if found.iter().any(|(_, recollect)| *recollect) {
            self.refresh().await;
        }
        let detections: Vec<StoredDetection> = found.into_iter().map(|(d, _)| d).collect();
        let any = !detections.is_empty();
        self.publish_detections(&detections, false).await;
        // What was just detected may be what remediation puts right, and says who did it.
        if any {
            Box::pin(self.remediate()).await;
        }
    }

    /// Publishes detections whose claim is stored, then marks them published.
    pub(super) async fn publish_detections(
        &self,
        detections: &[StoredDetection],
        republished: bool,
    ) {
        if detections.is_empty() {
            return;
        }
        // `/status` first: every detection is stored before it is published, so a reader
        // who sees the metric count it also finds it listed.
        self.refresh_status_events().await;
        let m = &self.published.metrics;
        for d in detections {
            // Logged before counted, for the same reason as `/status` above.
            log_detection(d, republished);
            let e = &d.entry;
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            m.tamper_events
                .with_label_values(&[
                    &d.detection,
                    &text("event_name"),
                    &text("outcome"),
                    &text("account"),
                    &text("region"),
                ])
                .inc();
            let last = m.last_tamper_event.with_label_values(&[&d.detection]);
            last.set(last.get().max(d.event_time.timestamp() as f64));
        }
        let mut ids: Vec<String> = detections.iter().map(|d| d.event_id.clone()).collect();
        ids.dedup();
        if let Err(e) = self.store.run(move |s| s.mark_published(&ids)).await {
            // Published already: at worst they are published again after a restart.
            tracing::error!(error = %e, "cannot mark detections published");
        }
    }

    /// Publishes what a crash left unpublished, and fills `/status` from the store: at start.
    pub async fn publish_left_over(&self) {
        match self.store.run(|s| s.unpublished_detections()).await {
            Ok(left) if !left.is_empty() => {
                tracing::warn!(
                    detections = left.len(),
                    "publishing detections stored before a crash but not published"
                );
                // Fills `/status` too.
                return self.publish_detections(&left, true).await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read unpublished detections"),
        }
        self.refresh_status_events().await;
    }

    async fn refresh_status_events(&self) {
        match self.store.run(|s| s.recent_detections()).await {
            Ok(recent) => {
                let ocsf = ocsf_events(&recent, STATUS_EVENTS);
                let mut doc = self.published.status.write();
                doc.events = status_events(recent, STATUS_EVENTS);
                doc.ocsf_events = ocsf;
            }
            Err(e) => tracing::error!(error = %e, "cannot read recent detections"),
        }
    }
}

/// One `/status` entry per event (newest first, at most `limit`): the entry of its most
/// severe detection, with every detection it matched under `detections`.
pub fn status_events(recent: Vec<StoredDetection>, limit: usize) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    let mut by_event: HashMap<String, Vec<StoredDetection>> = HashMap::new();
    for d in recent {
        if !by_event.contains_key(&d.event_id) {
            order.push(d.event_id.clone());
        }
        by_event.entry(d.event_id.clone()).or_default().push(d);
    }
    order
        .into_iter()
        .take(limit)
        .filter_map(|id| {
            let mut all = by_event.remove(&id)?;
            all.sort_by_key(|d| std::cmp::Reverse(severity_rank(&d.entry)));
            let mut entry = all[0].entry.clone();
            entry["detections"] = all
                .iter()
                .map(|d| json!({"detection": d.detection, "severity": d.entry["severity"]}))
                .collect();
            Some(entry)
        })
        .collect()
}

/// The detections of the newest `limit` events as OCSF Detection Findings, one per
/// detection, for `GET /findings?format=ocsf`.
pub fn ocsf_events(recent: &[StoredDetection], limit: usize) -> Vec<Value> {
    let mut events: Vec<&str> = Vec::new();
    recent
        .iter()
        .filter(|d| {
            if !events.contains(&d.event_id.as_str()) {
                events.push(&d.event_id);
            }
            events.len() <= limit
        })
        .filter_map(|d| hit_of_entry(&d.entry))
        .map(|hit| crate::ocsf::detection_finding(&hit, env!("CARGO_PKG_VERSION")))
        .collect()
}

/// A stored detection's entry read back as the hit it was made from (`stored`); `None` for an
/// entry without the fields every entry has.
pub fn hit_of_entry(e: &Value) -> Option<Hit> {
    let text = |k: &str| e[k].as_str().map(str::to_string);
    let outcome = match e["outcome"].as_str()? {
        "failure" => Outcome::Failure,
        _ => Outcome::Success,
    };
    Some(Hit {
        detection: text("detection")?,
        severity: serde_json::from_value(e["severity"].clone()).ok()?,
        outcome,
        event_id: text("event_id")?,
        event_time: chrono::DateTime::parse_from_rfc3339(e["event_time"].as_str()?)
            .ok()?
            .with_timezone(&chrono::Utc),
        event_source: text("event_source")?,
        event_name: text("event_name")?,
        account: text("account").unwrap_or_default(),
        region: text("region").unwrap_or_default(),
        actor: text("actor"),
        actor_type: text("actor_type"),
        source_ip: text("source_ip"),
        user_agent: text("user_agent"),
        resource: text("resource"),
        request: text("request").unwrap_or_default(),
        error_code: text("error_code"),
        recollect: false,
        sigma: e["sigma"]["title"].as_str().map(|title| {
            let author = e["sigma"]["author"].as_str().map(str::to_string);
            (title.to_string(), author)
        }),
    })
}

fn severity_rank(entry: &Value) -> u8 {
    match entry["severity"].as_str() {
        Some("critical") => 4,
        Some("high") => 3,
        Some("medium") => 2,
        Some("low") => 1,
        _ => 0,
    }
}

/// A detection as the store and `/status` keep it.
pub(super) fn stored(h: &Hit) -> StoredDetection {
    let mut d = StoredDetection {
        event_id: h.event_id.clone(),
        detection: h.detection.clone(),
        event_time: h.event_time,
        entry: json!({
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
        }),
    };
    if let Some((title, author)) = &h.sigma {
        d.entry["sigma"] = json!({"title": title, "author": author});
    }
    d
}

/// One structured line per detection, at warn (info for informational detections).
fn log_detection(d: &StoredDetection, republished: bool) {
    let e = &d.entry;
    let text = |k: &str| e[k].as_str().unwrap_or_default();
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                detection = %d.detection,
                sigma_title = e["sigma"]["title"].as_str(),
                sigma_author = e["sigma"]["author"].as_str(),
                severity = text("severity"),
                event_name = text("event_name"),
                outcome = text("outcome"),
                actor = e["actor"].as_str().unwrap_or("unknown"),
                actor_type = e["actor_type"].as_str().unwrap_or("unknown"),
                source_ip = text("source_ip"),
                resource = text("resource"),
                event_id = %d.event_id,
                event_time = %d.event_time,
                account = text("account"),
                region = text("region"),
                republished,
                "tamper event detected"
            )
        };
    }
    if text("severity") == Severity::Info.as_str() {
        line!(info);
    } else {
        line!(warn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn d(id: &str, detection: &str, severity: &str, minute: u32) -> StoredDetection {
        StoredDetection {
            event_id: id.into(),
            detection: detection.into(),
            event_time: Utc.with_ymd_and_hms(2026, 12, 1, 0, minute, 0).unwrap(),
            entry: json!({"event_id": id, "detection": detection, "severity": severity}),
        }
    }

    #[test]
    fn a_stored_entry_reads_back_as_its_hit() {
        let mut hit = Hit {
            detection: "stop".into(),
            severity: Severity::Critical,
            outcome: Outcome::Failure,
            event_id: "e1".into(),
            event_time: Utc.with_ymd_and_hms(2026, 12, 1, 0, 1, 2).unwrap(),
            event_source: "cloudtrail.amazonaws.com".into(),
            event_name: "StopLogging".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            actor: Some("arn:aws:iam::123456789012:user/x".into()),
            actor_type: Some("IAMUser".into()),
            source_ip: Some("198.51.100.7".into()),
            user_agent: Some("aws-cli".into()),
            resource: Some("arn:aws:cloudtrail:us-east-1:123456789012:trail/t".into()),
            request: "{\"name\":\"t\"}".into(),
            error_code: Some("AccessDenied".into()),
            recollect: false,
            sigma: None,
        };
        assert_eq!(hit_of_entry(&stored(&hit).entry), Some(hit.clone()));
        hit.sigma = Some(("Title".into(), Some("someone".into())));
        hit.outcome = Outcome::Success;
        hit.actor = None;
        hit.error_code = None;
        assert_eq!(hit_of_entry(&stored(&hit).entry), Some(hit));
        assert_eq!(hit_of_entry(&json!({"event_id": "e"})), None);
    }

    #[test]
    fn each_event_once_with_all_its_detections_most_severe_first() {
        let recent = vec![
            d("e2", "trail_start", "info", 5),
            d("e1", "any_write", "info", 1),
            d("e1", "stop", "critical", 1),
            d("e0", "stop", "critical", 0),
        ];
        let events = status_events(recent, 2);
        assert_eq!(events.len(), 2, "limited, counting events not detections");
        assert_eq!(events[0]["event_id"], "e2");
        assert_eq!(events[1]["event_id"], "e1");
        assert_eq!(events[1]["detection"], "stop");
        let all: Vec<&str> = events[1]["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["detection"].as_str().unwrap())
            .collect();
        assert_eq!(all, ["stop", "any_write"]);
    }
}
