//! A hunt: the detections run over files of records after the fact (pure).
//!
//! A file's shape is found from its bytes, not its name: a CloudTrail log file
//! (`{"Records": [...]}`, gzip or not) goes through the same streaming reader as the daemon's
//! bucket poller; anything else is read as a sequence of JSON values, as exports write them:
//! JSON lines, arrays of records, concatenated or pretty-printed records, `Records` objects.
//! A value that is not JSON is reported with its byte offset and reading resumes at the next
//! line, so one bad line of an export loses only that line.
//!
//! Hits are kept when their event falls in the hunted range, and an event found in two files
//! (overlapping exports, a redelivered log file) is reported once per detection.

use super::detection::{Watched, detect, wants};
use super::log_records::{self, EventHits, add_hits};
use crate::config::DetectionSet;
use crate::logfile::{self, Limits, LogRecord};
use crate::record::{Record, RecordError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read;

/// Event times a hunt keeps; an open end keeps everything on that side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Range {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

/// What the detections hunt with.
#[derive(Debug, Clone, Copy)]
pub struct Hunting<'a> {
    pub detections: &'a DetectionSet,
    pub watched: &'a Watched,
    pub range: Range,
    pub limits: Limits,
    /// For conditions that compare with the present.
    pub now: DateTime<Utc>,
}

/// What one file gave.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Records read (whether or not any detection looked at them).
    pub records: u64,
    /// Events in the range with their hits, in file order.
    pub events: Vec<EventHits>,
    /// Records or values that could not be read, and the first few reasons.
    pub unreadable: u64,
    pub faults: Vec<String>,
    /// Why the file was not read to its end (not gzip, oversized, not a log file past some
    /// point); `None` when it was.
    pub problem: Option<String>,
}

/// Faults kept per file; the rest are counted.
const KEPT_FAULTS: usize = 5;

impl FileScan {
    fn fault(&mut self, what: String) {
        self.unreadable += 1;
        if self.faults.len() < KEPT_FAULTS {
            self.faults.push(what);
        }
    }
}

/// Reads one file of records through the detections. `scratch` is reused between files.
pub fn scan_file(body: &[u8], hunting: &Hunting<'_>, scratch: &mut Vec<u8>) -> FileScan {
    let mut scan = if is_log_file(body) {
        let scan = scan_log_file(body, hunting, scratch);
        let concatenated = scan
            .problem
            .as_deref()
            .is_some_and(|p| p.contains(logfile::DATA_AFTER_THE_OBJECT));
        // `zcat *.json.gz > all.json`: log files one after another, read as values.
        if concatenated {
            scan_values(body, hunting, scratch)
        } else {
            scan
        }
    } else {
        scan_values(body, hunting, scratch)
    };
    for e in &mut scan.events {
        // A record's hits share its time: the event is in the range or not.
        if !hunting.range.contains(e.event_time) {
            e.hits.clear();
        }
    }
    scan.events.retain(|e| !e.hits.is_empty());
    scan
}

/// Whether the (inflated) text begins `{"Records"`: the shape CloudTrail delivers.
fn is_log_file(body: &[u8]) -> bool {
    let mut head = Vec::with_capacity(256);
    if body.starts_with(&[0x1f, 0x8b]) {
        // A broken stream leaves what came before it: enough to tell the shape.
        let _ = flate2::bufread::GzDecoder::new(body)
            .take(256)
            .read_to_end(&mut head);
    } else {
        head.extend_from_slice(&body[..body.len().min(256)]);
    }
    // A byte order mark is no log file's: such a file is read as values.
    let text = trim_spaces(&head);
    text.first() == Some(&b'{') && trim_spaces(&text[1..]).starts_with(b"\"Records\"")
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &bytes[skip..]
}

/// Past a byte order mark, as Windows tools write, and JSON whitespace.
fn trim_start(bytes: &[u8]) -> &[u8] {
    trim_spaces(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
}

fn scan_log_file(body: &[u8], hunting: &Hunting<'_>, scratch: &mut Vec<u8>) -> FileScan {
    let read = log_records::scan(
        body,
        &hunting.limits,
        Some((hunting.detections, hunting.watched)),
        hunting.now,
        scratch,
    );
    let (records, problem) = match read.summary {
        Ok(s) if s.trailing_data && s.malformed.is_none() => (
            s.records,
            Some("bytes follow the first gzip member and were not read".to_string()),
        ),
        Ok(s) => (s.records, s.malformed),
        Err(oversized) => (0, Some(oversized.0)),
    };
    FileScan {
        records,
        events: read.events,
        unreadable: read.unreadable,
        faults: read.faults,
        problem,
    }
}

/// The parts of a value that say what it is: a record's source and name, or an export's
/// `Records`.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Vec<&'a RawValue>>,
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
}

fn scan_values(body: &[u8], hunting: &Hunting<'_>, scratch: &mut Vec<u8>) -> FileScan {
    let mut scan = FileScan::default();
    if let Err(e) = logfile::inflate(body, hunting.limits.max_inflated, scratch) {
        // What came before a broken gzip stream is still read.
        scan.problem = Some(e);
    }
    let text = trim_start(scratch);
    let mut at = 0;
    while at < text.len() {
        let mut values = serde_json::Deserializer::from_slice(&text[at..]).into_iter::<&RawValue>();
        loop {
            let started = values.byte_offset();
            match values.next() {
                None => {
                    at = text.len();
                    break;
                }
                Some(Ok(value)) => {
                    if scan.records >= hunting.limits.max_records {
                        scan.problem = Some(format!(
                            "more than {} records: the rest were not read",
                            hunting.limits.max_records
                        ));
                        return scan;
                    }
                    value_records(value, at + started, hunting, &mut scan);
                }
                Some(Err(e)) => {
                    let from = at + started;
                    scan.fault(format!("byte {from}: not JSON: {e}"));
                    // Resume at the line after the one where the bad value began.
                    let begins = text.len() - trim_spaces(&text[from..]).len();
                    at = match memchr::memchr(b'\n', &text[begins..]) {
                        Some(i) => begins + i + 1,
                        None => text.len(),
                    };
                    break;
                }
            }
        }
    }
    scan
}

/// The records of one top-level value: itself, the elements of an array, or an export's
/// `Records`.
fn value_records(value: &RawValue, offset: usize, hunting: &Hunting<'_>, scan: &mut FileScan) {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(elements) => {
                for e in elements {
                    one_record(e.get(), offset, hunting, scan);
                }
            }
            Err(e) => scan.fault(format!("byte {offset}: {e}")),
        },
        Some(b'{') => match serde_json::from_str::<Head<'_>>(text) {
            Ok(Head {
                records: Some(records),
                ..
            }) => {
                for r in records {
                    one_record(r.get(), offset, hunting, scan);
                }
            }
            Ok(head) => record_with_head(text, head, offset, hunting, scan),
            Err(e) => scan.fault(format!("byte {offset}: {e}")),
        },
        _ => scan.fault(format!("byte {offset}: {}", RecordError::NotAnObject)),
    }
}

fn one_record(text: &str, offset: usize, hunting: &Hunting<'_>, scan: &mut FileScan) {
    match serde_json::from_str::<Head<'_>>(text) {
        Ok(head) => record_with_head(text, head, offset, hunting, scan),
        Err(_) => {
            scan.records += 1;
            scan.fault(format!(
                "value at byte {offset}: {}",
                RecordError::NotAnObject
            ));
        }
    }
}

fn record_with_head(
    text: &str,
    head: Head<'_>,
    offset: usize,
    hunting: &Hunting<'_>,
    scan: &mut FileScan,
) {
    if head.event_source.is_none() && head.event_name.is_none() {
        // A digest file, a query's summary: JSON, but no record.
        return scan.fault(format!(
            "value at byte {offset}: not a CloudTrail record (no eventSource or eventName)"
        ));
    }
    scan.records += 1;
    let record = LogRecord {
        event_source: head.event_source.unwrap_or_default(),
        event_name: head.event_name.unwrap_or_default(),
        text,
    };
    // Most records match nothing: only these are parsed whole.
    if !wants(hunting.detections, &record.event_source, &record.event_name) {
        return;
    }
    match Record::parse(record.text) {
        Ok(r) => {
            let hits = detect(hunting.detections, &r, hunting.watched, hunting.now);
            add_hits(&mut scan.events, &r, hits);
        }
        Err(e) => scan.fault(format!("value at byte {offset}: {e}")),
    }
}

/// The (event, detection) pairs already reported: an event in two files is one hit.
#[derive(Debug, Default)]
pub struct Reported(HashSet<(String, String)>);

impl Reported {
    /// Drops the hits reported before, and remembers the rest.
    pub fn keep_new(&mut self, events: &mut Vec<EventHits>) {
        for e in events.iter_mut() {
            e.hits
                .retain(|h| self.0.insert((e.event_id.clone(), h.detection.clone())));
        }
        events.retain(|e| !e.hits.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use std::io::Write;
    use std::path::Path;

    fn detections() -> DetectionSet {
        parse_str(
            Path::new("d.yaml"),
            "detections:\n- id: stop\n  severity: critical\n  source: cloudtrail.amazonaws.com\n  events: [StopLogging]\n- id: versioning\n  severity: high\n  source: s3.amazonaws.com\n  events: [PutBucketVersioning]\n  target: trail_bucket\n",
        )
        .unwrap()
    }

    fn record(id: &str, name: &str, time: &str) -> String {
        let (source, request) = match name {
            "PutBucketVersioning" => ("s3.amazonaws.com", r#"{"bucketName":"b"}"#),
            _ => ("cloudtrail.amazonaws.com", r#"{"name":"lab"}"#),
        };
        format!(
            r#"{{"eventVersion":"1.08","eventID":"{id}","eventTime":"{time}","eventSource":"{source}","eventName":"{name}","awsRegion":"us-east-1","recipientAccountId":"123456789012","requestParameters":{request}}}"#
        )
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn scan_with(body: &[u8], watched: &Watched, range: Range) -> FileScan {
        let detections = detections();
        let hunting = Hunting {
            detections: &detections,
            watched,
            range,
            limits: Limits::default(),
            now: t("2026-12-01T00:00:00Z"),
        };
        scan_file(body, &hunting, &mut Vec::new())
    }

    fn hits(scan: &FileScan) -> Vec<String> {
        scan.events
            .iter()
            .flat_map(|e| {
                e.hits
                    .iter()
                    .map(|h| format!("{}:{}", e.event_id, h.detection))
            })
            .collect()
    }

    /// Each shape exports and deliveries write, with what it must give.
    #[test]
    fn every_shape_of_file_gives_its_records_and_hits() {
        let stop = record("e1", "StopLogging", "2026-11-20T10:00:00Z");
        let benign = r#"{"eventID":"e2","eventTime":"2026-11-20T10:01:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","recipientAccountId":"123456789012"}"#;
        let log_file = format!("{{\"Records\":[{stop},{benign}]}}");
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&stop).unwrap(),
        )
        .unwrap();
        // (what, body, records, hits, unreadable)
        type Case<'a> = (&'a str, Vec<u8>, u64, Vec<&'a str>, u64);
        let cases: Vec<Case> = vec![
            (
                "log file, gzip",
                gzip(log_file.as_bytes()),
                2,
                vec!["e1:stop"],
                0,
            ),
            (
                "log file, plain",
                log_file.clone().into_bytes(),
                2,
                vec!["e1:stop"],
                0,
            ),
            (
                "log file with a BOM and spaces",
                format!("\u{feff}  \n{log_file}").into_bytes(),
                2,
                vec!["e1:stop"],
                0,
            ),
            (
                "JSON lines",
                format!("{benign}\n{stop}\n").into_bytes(),
                2,
                vec!["e1:stop"],
                0,
            ),
            (
                "JSON lines, gzip",
                gzip(format!("{stop}\n{benign}").as_bytes()),
                2,
                vec!["e1:stop"],
                0,
            ),
            (
                "an array",
                format!("[{benign},{stop}]").into_bytes(),
                2,
                vec!["e1:stop"],
                0,
            ),
            (
                "one pretty record",
                pretty.clone().into_bytes(),
                1,
                vec!["e1:stop"],
                0,
            ),
            (
                "log files one after another (zcat *.json.gz)",
                gzip(format!("{log_file}{log_file}\n{log_file}").as_bytes()),
                6,
                vec!["e1:stop"],
                0,
            ),
            (
                "a broken line between two good ones",
                format!("{benign}\n{{\"eventName\": \n{stop}\n").into_bytes(),
                2,
                vec!["e1:stop"],
                1,
            ),
            (
                "a line that is not an object",
                format!("42\n{stop}\n").into_bytes(),
                1,
                vec!["e1:stop"],
                1,
            ),
            (
                "a record without a time",
                format!("{}\n", stop.replace("\"eventTime\"", "\"when\"")).into_bytes(),
                1,
                vec![],
                1,
            ),
            (
                "a digest file",
                gzip(br#"{"awsAccountId":"123456789012","logFiles":[]}"#),
                0,
                vec![],
                1,
            ),
            ("empty", Vec::new(), 0, vec![], 0),
            ("blank lines only", b"\n\n  \n".to_vec(), 0, vec![], 0),
        ];
        for (what, body, records, expected, unreadable) in cases {
            let scan = scan_with(&body, &Watched::default(), Range::default());
            assert_eq!(scan.records, records, "{what}: records");
            assert_eq!(hits(&scan), expected, "{what}: hits");
            assert_eq!(
                scan.unreadable, unreadable,
                "{what}: unreadable {:?}",
                scan.faults
            );
        }
    }

    #[test]
    fn a_damaged_file_is_reported_and_what_came_before_is_kept() {
        let stop = record("e1", "StopLogging", "2026-11-20T10:00:00Z");
        // Truncated gzip of JSON lines: the first line survives.
        let lines = format!("{stop}\n{}\n", "x".repeat(100_000));
        let mut body = gzip(lines.as_bytes());
        body.truncate(body.len() - 8);
        let scan = scan_with(&body, &Watched::default(), Range::default());
        assert_eq!(hits(&scan), ["e1:stop"]);
        assert!(
            scan.problem.as_deref().unwrap().contains("gzip"),
            "{:?}",
            scan.problem
        );
        // Binary junk: nothing read, every problem said.
        let scan = scan_with(&[0u8, 159, 146, 150], &Watched::default(), Range::default());
        assert_eq!(scan.records, 0);
        assert_eq!(scan.unreadable, 1, "{:?}", scan.faults);
        // A log file cut short: its records so far are read, and it says why it stopped.
        let cut = format!("{{\"Records\":[{stop},{{\"eventID\":");
        let scan = scan_with(cut.as_bytes(), &Watched::default(), Range::default());
        assert_eq!(hits(&scan), ["e1:stop"]);
        assert!(scan.problem.is_some());
    }

    #[test]
    fn hits_are_kept_only_inside_the_range() {
        let body = format!(
            "{}\n{}\n{}\n",
            record("early", "StopLogging", "2026-11-01T00:00:00Z"),
            record("inside", "StopLogging", "2026-11-10T00:00:00Z"),
            record("late", "StopLogging", "2026-11-20T00:00:01Z"),
        );
        let range = Range {
            start: Some(t("2026-11-05T00:00:00Z")),
            end: Some(t("2026-11-20T00:00:00Z")),
        };
        let scan = scan_with(body.as_bytes(), &Watched::default(), range);
        assert_eq!(hits(&scan), ["inside:stop"]);
        assert_eq!(scan.records, 3, "records out of range are still read");
        let open = Range {
            start: Some(t("2026-11-05T00:00:00Z")),
            end: None,
        };
        let scan = scan_with(body.as_bytes(), &Watched::default(), open);
        assert_eq!(hits(&scan), ["inside:stop", "late:stop"]);
    }

    #[test]
    fn targets_need_a_watched_resource_unless_any_resource_counts() {
        let body = record("v", "PutBucketVersioning", "2026-11-20T10:00:00Z");
        let scan = scan_with(body.as_bytes(), &Watched::default(), Range::default());
        assert!(hits(&scan).is_empty(), "bucket b is no trail's");
        let any = Watched {
            any_resource: true,
            ..Watched::default()
        };
        let scan = scan_with(body.as_bytes(), &any, Range::default());
        assert_eq!(hits(&scan), ["v:versioning"]);
        let mut watched = Watched::default();
        watched.add_trail(Some("b"), None, None, None);
        let scan = scan_with(body.as_bytes(), &watched, Range::default());
        assert_eq!(hits(&scan), ["v:versioning"]);
    }

    #[test]
    fn an_event_in_two_files_is_reported_once_per_detection() {
        let first = scan_with(
            record("e1", "StopLogging", "2026-11-20T10:00:00Z").as_bytes(),
            &Watched::default(),
            Range::default(),
        );
        let mut reported = Reported::default();
        let mut events = first.events.clone();
        reported.keep_new(&mut events);
        assert_eq!(events.len(), 1);
        let mut again = first.events;
        reported.keep_new(&mut again);
        assert!(again.is_empty(), "the second file's copy is not a new hit");
    }
}
