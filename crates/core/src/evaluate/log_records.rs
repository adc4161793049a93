//! A log file's records, read once: the detections they match (grouped by event, so an
//! event is claimed once with every detection it matched) and the logging transitions of
//! trails that explain digest chain restarts.

use super::detection::{Hit, Watched, detect, wants};
use crate::config::DetectionSet;
use crate::integrity::chain::TRANSITIONS;
use crate::logfile::{self, Limits, LogFileSummary, Oversized};
use crate::record::Record;
use chrono::{DateTime, Utc};

/// One event's detections.
#[derive(Debug, Clone, PartialEq)]
pub struct EventHits {
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub hits: Vec<Hit>,
}

/// A logging transition found in a log file.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTransition {
    /// As the record names the trail: its name or ARN.
    pub trail: String,
    pub time: DateTime<Utc>,
    pub event_name: String,
}

/// The logging transition a record is, if it is one: a successful CloudTrail call that starts
/// or stops a trail's digest chains, with the trail it names.
pub fn transition_of(record: &Record) -> Option<FoundTransition> {
    let name = record.raw["requestParameters"]["name"].as_str()?;
    (record.event_source == "cloudtrail.amazonaws.com"
        && TRANSITIONS.contains(&record.event_name.as_str())
        && !record.failed())
    .then(|| FoundTransition {
        trail: name.to_string(),
        time: record.event_time,
        event_name: record.event_name.clone(),
    })
}

/// Adds `record`'s hits to `events`: the same event twice in a file (a duplicated delivery)
/// is one event, each detection once.
pub fn add_hits(events: &mut Vec<EventHits>, record: &Record, hits: Vec<Hit>) {
    if hits.is_empty() {
        return;
    }
    match events.iter_mut().find(|e| e.event_id == record.event_id) {
        Some(e) => {
            for h in hits {
                if !e.hits.iter().any(|k| k.detection == h.detection) {
                    e.hits.push(h);
                }
            }
        }
        None => events.push(EventHits {
            event_id: record.event_id.clone(),
            event_time: record.event_time,
            hits,
        }),
    }
}

/// What reading one log file gave.
#[derive(Debug)]
pub struct LogScan {
    pub summary: Result<LogFileSummary, Oversized>,
    pub events: Vec<EventHits>,
    pub transitions: Vec<FoundTransition>,
    /// Records that could not be read, with the first few reasons (position: why).
    pub unreadable: u64,
    pub faults: Vec<String>,
}

/// Faults kept per file for the log line; the rest are only counted.
const KEPT_FAULTS: usize = 5;

/// Reads a log file: hash, records through `detections` (when given), transitions.
pub fn scan(
    body: &[u8],
    limits: &Limits,
    detections: Option<(&DetectionSet, &Watched)>,
    now: DateTime<Utc>,
    scratch: &mut Vec<u8>,
) -> LogScan {
    let mut events: Vec<EventHits> = Vec::new();
    let mut transitions = Vec::new();
    let mut unreadable = 0u64;
    let mut faults = Vec::new();
    let mut fault = |what: String| {
        unreadable += 1;
        if faults.len() < KEPT_FAULTS {
            faults.push(what);
        }
    };
    let summary = logfile::read(body, limits, scratch, |r| {
        let r = match r {
            Ok(r) => r,
            Err((i, e)) => return fault(format!("record {i}: {e}")),
        };
        let transition = r.event_source == "cloudtrail.amazonaws.com"
            && TRANSITIONS.contains(&r.event_name.as_ref());
        let wanted = detections.is_some_and(|(d, _)| wants(d, &r.event_source, &r.event_name));
        // Most records match nothing: only these are parsed whole.
        if !(transition || wanted) {
            return;
        }
        let record = match r.record() {
            Ok(record) => record,
            Err(e) => return fault(format!("{} record: {e}", r.event_name)),
        };
        if transition {
            transitions.extend(transition_of(&record));
        }
        let Some((detections, watched)) = detections else {
            return;
        };
        add_hits(
            &mut events,
            &record,
            detect(detections, &record, watched, now),
        );
    });
    LogScan {
        summary,
        events,
        transitions,
        unreadable,
        faults,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use std::path::Path;

    #[test]
    fn an_event_matching_two_detections_keeps_both_and_counts_once() {
        let detections: DetectionSet = parse_str(
            Path::new("d.yaml"),
            "detections:\n- id: stop\n  severity: critical\n  source: cloudtrail.amazonaws.com\n  events: [StopLogging]\n- id: any_cloudtrail_write\n  severity: info\n  source: cloudtrail.amazonaws.com\n  events: [StopLogging, StartLogging]\n",
        )
        .unwrap();
        let record = r#"{"eventVersion":"1.08","eventID":"e1","eventTime":"2026-12-01T00:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","recipientAccountId":"123456789012","requestParameters":{"name":"lab"}}"#;
        // The same record twice, as a duplicated delivery would hold it.
        let file = format!(
            r#"{{"Records":[{record},{record},{{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}}]}}"#
        );
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = scan(
            file.as_bytes(),
            &Limits::default(),
            Some((&detections, &Watched::default())),
            now,
            &mut Vec::new(),
        );
        assert_eq!(s.events.len(), 1);
        let names: Vec<&str> = s.events[0]
            .hits
            .iter()
            .map(|h| h.detection.as_str())
            .collect();
        assert_eq!(names, ["stop", "any_cloudtrail_write"]);
        assert_eq!(s.transitions.len(), 2, "each record's transition is kept");
        assert_eq!(s.transitions[0].trail, "lab");
        assert_eq!(s.summary.unwrap().records, 3);
        // Without detections, transitions are still found.
        let s = scan(
            file.as_bytes(),
            &Limits::default(),
            None,
            now,
            &mut Vec::new(),
        );
        assert!(s.events.is_empty());
        assert_eq!(s.transitions.len(), 2);
    }
}
