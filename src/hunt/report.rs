//! What a hunt found, as it goes and at the end: the progress bar (on a terminal only), each
//! hit once (an event in two files is one hit), the files that could not be read, the output
//! (a table, one JSON document, or JSON lines as hits come) and the exit code.

use super::HuntedFile;
use crate::evaluate::detection::Hit;
use crate::evaluate::hunt::{Range, Reported};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HuntFormat {
    /// One line per hit, aligned, for people.
    Table,
    /// One document: the hits, the files that could not be read, the totals.
    Json,
    /// One hit per line as it is found; problems go to stderr.
    Jsonl,
    /// One OCSF 1.8.0 Detection Finding per line as it is found; problems go to stderr.
    Ocsf,
}

/// One hit as a hunt reports it.
#[derive(Debug, Clone, Serialize)]
pub struct HuntHit {
    pub detection: String,
    pub severity: &'static str,
    pub outcome: &'static str,
    pub event_time: DateTime<Utc>,
    pub event_id: String,
    pub event_source: String,
    pub event_name: String,
    pub account: String,
    pub region: String,
    pub actor: Option<String>,
    pub actor_type: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub resource: Option<String>,
    pub request: String,
    pub error_code: Option<String>,
    /// A Sigma rule's title and author; absent for YAML detections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma_author: Option<String>,
    /// The file or object it was found in.
    pub file: String,
}

impl HuntHit {
    fn new(hit: Hit, file: &str) -> HuntHit {
        let (sigma_title, sigma_author) = match hit.sigma {
            Some((title, author)) => (Some(title), author),
            None => (None, None),
        };
        HuntHit {
            detection: hit.detection,
            severity: hit.severity.as_str(),
            outcome: hit.outcome.as_str(),
            event_time: hit.event_time,
            event_id: hit.event_id,
            event_source: hit.event_source,
            event_name: hit.event_name,
            account: hit.account,
            region: hit.region,
            actor: hit.actor,
            actor_type: hit.actor_type,
            source_ip: hit.source_ip,
            user_agent: hit.user_agent,
            resource: hit.resource,
            request: hit.request,
            error_code: hit.error_code,
            sigma_title,
            sigma_author,
            file: file.to_string(),
        }
    }
}

/// A file, folder or listing that could not be read, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub files: u64,
    pub records: u64,
    pub hits: u64,
    /// Records (or values) that could not be read, in files otherwise read.
    pub unreadable_records: u64,
    /// Files in folders that are not hunted (another extension, digest folders).
    pub passed_over: u64,
}

pub struct Report {
    format: HuntFormat,
    range: Range,
    progress: ProgressBar,
    started: Instant,
    reported: Reported,
    hits: Vec<HuntHit>,
    problems: Vec<Problem>,
    totals: Totals,
}

impl Report {
    pub fn new(format: HuntFormat, range: Range) -> Report {
        // Drawn on stderr only when it is a terminal: hidden in pipes, logs and CI.
        let progress = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        progress.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        progress.set_message("listing");
        Report {
            format,
            range,
            progress,
            started: Instant::now(),
            reported: Reported::default(),
            hits: Vec::new(),
            problems: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// The number of files to read is known.
    pub fn listed(&mut self, files: u64) {
        self.progress.set_length(files);
        self.show();
    }

    /// A file in a folder that is not hunted.
    pub fn passed_over(&mut self) {
        self.totals.passed_over += 1;
    }

    /// A file, folder or listing that could not be read at all.
    pub fn unreadable(&mut self, file: &str, reason: &str) {
        self.problems.push(Problem {
            file: file.to_string(),
            reason: reason.to_string(),
        });
    }

    /// A file read: its new hits kept (and printed at once as JSON lines), its problems noted.
    pub fn file(&mut self, file: HuntedFile) {
        self.totals.files += 1;
        self.progress.inc(1);
        let mut scan = match file.scan {
            Ok(scan) => scan,
            Err(reason) => {
                self.unreadable(&file.name, &reason);
                return self.show();
            }
        };
        self.totals.records += scan.records;
        self.totals.unreadable_records += scan.unreadable;
        if let Some(problem) = scan.problem.take() {
            self.unreadable(&file.name, &problem);
        }
        if scan.unreadable > 0 {
            let reasons = scan.faults.join("; ");
            self.unreadable(
                &file.name,
                &format!("{} records could not be read: {reasons}", scan.unreadable),
            );
        }
        self.reported.keep_new(&mut scan.events);
        for event in scan.events {
            for hit in event.hits {
                self.totals.hits += 1;
                if self.format == HuntFormat::Ocsf {
                    let mut finding =
                        crate::ocsf::detection_finding(&hit, env!("CARGO_PKG_VERSION"));
                    finding["unmapped"]["trailwarden"]["file"] = file.name.clone().into();
                    self.progress.suspend(|| println!("{finding}"));
                    continue;
                }
                let hit = HuntHit::new(hit, &file.name);
                if self.format == HuntFormat::Jsonl {
                    let line = serde_json::to_string(&hit).expect("serializable");
                    self.progress.suspend(|| println!("{line}"));
                } else {
                    self.hits.push(hit);
                }
            }
        }
        self.show();
    }

    fn show(&self) {
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        self.progress.set_message(format!(
            "{} records, {} hits, {:.0} records/s",
            self.totals.records,
            self.totals.hits,
            self.totals.records as f64 / seconds
        ));
    }

    /// Prints the result and returns the exit code: 1 with hits, else 2 when the hunt could
    /// not start (`fatal`) or something could not be read, else 0.
    pub fn finish(mut self, fatal: Option<String>) -> i32 {
        self.progress.finish_and_clear();
        if let Some(why) = &fatal {
            self.unreadable("hunt", why);
        }
        self.hits.sort_by(|a, b| {
            (a.event_time, &a.event_id, &a.detection).cmp(&(
                b.event_time,
                &b.event_id,
                &b.detection,
            ))
        });
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = match self.format {
            HuntFormat::Table => out.write_all(table(&self.hits).as_bytes()),
            HuntFormat::Json => {
                let doc = serde_json::json!({
                    "range": {"start": self.range.start, "end": self.range.end},
                    "totals": self.totals,
                    "hits": self.hits,
                    "problems": self.problems,
                });
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("serializable")
                )
            }
            HuntFormat::Jsonl | HuntFormat::Ocsf => Ok(()),
        };
        let _ = out.flush();
        for p in &self.problems {
            eprintln!("trailwarden hunt: {}: {}", p.file, p.reason);
        }
        let t = &self.totals;
        eprintln!(
            "trailwarden hunt: {} files, {} records, {} hits; {} problems{}",
            t.files,
            t.records,
            t.hits,
            self.problems.len(),
            if t.passed_over > 0 {
                format!(
                    "; {} files in folders passed over (not records)",
                    t.passed_over
                )
            } else {
                String::new()
            }
        );
        if t.hits > 0 {
            1
        } else if fatal.is_some() || !self.problems.is_empty() {
            2
        } else {
            0
        }
    }
}

/// The hits as aligned columns, oldest first.
fn table(hits: &[HuntHit]) -> String {
    let header = [
        "TIME",
        "SEVERITY",
        "DETECTION",
        "OUTCOME",
        "ACCOUNT",
        "REGION",
        "EVENT",
        "ACTOR",
        "RESOURCE",
        "FILE",
    ];
    let rows: Vec<[String; 10]> = hits
        .iter()
        .map(|h| {
            [
                h.event_time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                h.severity.to_string(),
                // A Sigma rule's id is a UUID: its title says more to a person.
                h.sigma_title.clone().unwrap_or_else(|| h.detection.clone()),
                h.outcome.to_string(),
                h.account.clone(),
                h.region.clone(),
                h.event_name.clone(),
                h.actor.clone().unwrap_or_else(|| "-".into()),
                h.resource.clone().unwrap_or_else(|| "-".into()),
                h.file.clone(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    if rows.is_empty() {
        return text;
    }
    let line = |cells: &mut dyn Iterator<Item = &str>, text: &mut String| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    };
    line(&mut header.iter().copied(), &mut text);
    for row in &rows {
        line(&mut row.iter().map(String::as_str), &mut text);
    }
    text
}
