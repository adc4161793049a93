//! Log processing throughput, one thread: gunzip + JSON parse alone beside the full pipeline
//! (gunzip + SHA-256 + parse into `Record` + the shipped detections), in the same run, on a
//! generated corpus of gzipped `{"Records":[...]}` files held in memory before timing.
//!
//!     nice -n 19 cargo bench --bench logfile
//!
//! Environment: `BENCH_CORPUS_MB` (uncompressed corpus size, default 128),
//! `BENCH_ROUNDS` (default 5; medians and bests are reported), `BENCH_ONLY`
//! (a phase name: `inflate`, `parse`, `parse_vec`, `read`, `full`, `sigma`, `hunt`; one
//! phase only, for a profiler). Phases run interleaved, round after round, so a busy
//! neighbour on the machine slows them alike; the ratio is taken on medians.
//!
//! `BENCH_DUMP_DIR=dir` also writes the corpus there as `.json.gz` files.
//!
//! The corpus: `support/corpus.rs`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use chrono::Utc;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use trailwarden::config::DetectionSet;
use trailwarden::evaluate::detection::{Watched, detect, wants};

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/rng.rs"]
mod rng;
use corpus::{ACCOUNT, BUCKET, KEY_ID, corpus};

// ---------------------------------------------------------------- the baseline

/// `{"Records": [...]}` read one `serde_json::Value` at a time (each dropped at once): what
/// gunzip + JSON parse cost without anything trailwarden adds.
struct FileSeed;

impl<'de> Visitor<'de> for FileSeed {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a log file")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(key) = map.next_key::<&str>()? {
            if key == "Records" {
                n = map.next_value_seed(RecordsSeed)?;
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(n)
    }
}

struct RecordsSeed;

impl<'de> DeserializeSeed<'de> for RecordsSeed {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            black_box(&v);
            n += 1;
        }
        Ok(n)
    }
}

#[derive(serde::Deserialize)]
struct WholeFile {
    #[serde(rename = "Records")]
    records: Vec<Value>,
}

/// A whole file as borrowed raw records (serde_json's `raw_value` feature, which the
/// dependency graph enables today; src/ would name it in Cargo.toml).
struct Phase {
    name: &'static str,
    what: &'static str,
    times: Vec<Duration>,
}

impl Phase {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
    fn best(&self) -> Duration {
        *self.times.iter().min().unwrap()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let megabytes: u64 = env_or("BENCH_CORPUS_MB", 128);
    let rounds: usize = env_or("BENCH_ROUNDS", 5);
    let only = std::env::var("BENCH_ONLY").ok();

    let detections: DetectionSet = trailwarden::config::yaml::load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/detections.yaml"),
    )
    .expect("config/detections.yaml");
    // The same with the Sigma example set beside them: records whose eventName some rule
    // needs are parsed too.
    let mut with_sigma = detections.clone();
    with_sigma.sigma =
        trailwarden::config::sigma::SigmaRules::load(&[
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sigma")
        ]);
    assert!(with_sigma.sigma.problems.is_empty());
    let mut watched = Watched::default();
    watched.add_trail(
        Some(BUCKET),
        None,
        Some(&format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}")),
        Some(&format!(
            "arn:aws:logs:us-east-1:{ACCOUNT}:log-group:aws-cloudtrail-logs:*"
        )),
    );
    let now = Utc::now();

    let started = Instant::now();
    let c = corpus(megabytes);
    let compressed: u64 = c.files.iter().map(|f| f.len() as u64).sum();
    println!(
        "corpus: {} files, {} records ({} flagged by construction), {:.1} MB uncompressed, {:.1} MB gzipped \
         (ratio {:.1}), {:.0} B/record; generated in {:.1} s; {} detections loaded",
        c.files.len(),
        c.records,
        c.tamper,
        c.uncompressed as f64 / 1e6,
        compressed as f64 / 1e6,
        c.uncompressed as f64 / compressed as f64,
        c.uncompressed as f64 / c.records as f64,
        started.elapsed().as_secs_f64(),
        detections.detections().len()
    );

    if let Ok(dir) = std::env::var("BENCH_DUMP_DIR") {
        // The corpus as files, for comparing with other tools or gzip backends.
        std::fs::create_dir_all(&dir).unwrap();
        for (i, f) in c.files.iter().enumerate() {
            let name = format!(
                "{ACCOUNT}_CloudTrail_us-east-1_20261101T{:02}{:02}Z_bench{i:08}.json.gz",
                i / 12 % 24,
                i % 12 * 5
            );
            std::fs::write(Path::new(&dir).join(name), f).unwrap();
        }
        println!("corpus written to {dir}");
    }

    let mut buf = Vec::new();
    // The daemon's caps: the benchmark measures what it runs.
    let limits = trailwarden::config::BucketSettings::default().log_limits();
    let mut phases = [
        Phase {
            name: "inflate",
            what: "gunzip + SHA-256 alone (logfile::inflate)",
            times: vec![],
        },
        Phase {
            name: "parse",
            what: "(a) gunzip + JSON parse: inflate, then each record into a serde_json::Value",
            times: vec![],
        },
        Phase {
            name: "parse_vec",
            what: "(a') inflate, then {\"Records\": Vec<Value>} at once",
            times: vec![],
        },
        Phase {
            name: "read",
            what: "logfile::read alone: hash, source and name of each record",
            times: vec![],
        },
        Phase {
            name: "full",
            what: "(b) logfile::read + detection::detect with config/detections.yaml",
            times: vec![],
        },
        Phase {
            name: "sigma",
            what: "(c) as (b), with the Sigma example set (config/sigma) loaded too",
            times: vec![],
        },
        Phase {
            name: "hunt",
            what: "(d) evaluate::hunt::scan_file as `hunt` reads each file, with (c)'s rules",
            times: vec![],
        },
    ];
    let mut hits = 0u64;
    let mut sigma_hits = 0u64;
    let mut bad = 0u64;
    for round in 0..rounds {
        for p in phases.iter_mut() {
            if only.as_deref().is_some_and(|o| o != p.name) {
                continue;
            }
            let t = Instant::now();
            let mut n = 0u64;
            match p.name {
                "inflate" => {
                    for f in &c.files {
                        let (h, _) = trailwarden::logfile::inflate(f, u64::MAX, &mut buf).unwrap();
                        black_box(h);
                        n += buf.len() as u64;
                    }
                    assert_eq!(n, c.uncompressed);
                }
                "parse" => {
                    for f in &c.files {
                        trailwarden::logfile::inflate(f, u64::MAX, &mut buf).unwrap();
                        let mut de = serde_json::Deserializer::from_slice(&buf);
                        n += de.deserialize_map(FileSeed).unwrap();
                        de.end().unwrap();
                    }
                    assert_eq!(n, c.records);
                }
                "parse_vec" => {
                    for f in &c.files {
                        trailwarden::logfile::inflate(f, u64::MAX, &mut buf).unwrap();
                        let whole: WholeFile = serde_json::from_slice(&buf).unwrap();
                        n += whole.records.len() as u64;
                    }
                    assert_eq!(n, c.records);
                }
                "read" => {
                    for f in &c.files {
                        let s = trailwarden::logfile::read(f, &limits, &mut buf, |r| {
                            black_box(&r);
                        })
                        .unwrap();
                        assert_eq!(s.malformed, None);
                        n += s.records;
                    }
                    assert_eq!(n, c.records);
                }
                "full" | "sigma" => {
                    let detections = if p.name == "sigma" {
                        &with_sigma
                    } else {
                        &detections
                    };
                    let (mut h, mut b) = (0u64, 0u64);
                    for f in &c.files {
                        // As the bucket poller does: only records some detection looks at
                        // are parsed whole.
                        let s = trailwarden::logfile::read(f, &limits, &mut buf, |r| match r {
                            Ok(r) if wants(detections, &r.event_source, &r.event_name) => {
                                match r.record() {
                                    Ok(record) => {
                                        h += detect(detections, &record, &watched, now).len() as u64
                                    }
                                    Err(_) => b += 1,
                                }
                            }
                            Ok(_) => {}
                            Err(_) => b += 1,
                        })
                        .unwrap();
                        n += s.records;
                    }
                    assert_eq!(n, c.records);
                    if p.name == "full" {
                        (hits, bad) = (h, b);
                    } else {
                        sigma_hits = h;
                    }
                }
                "hunt" => {
                    let hunting = trailwarden::evaluate::hunt::Hunting {
                        detections: &with_sigma,
                        watched: &watched,
                        range: Default::default(),
                        limits,
                        now,
                    };
                    let mut h = 0u64;
                    for f in &c.files {
                        let s = trailwarden::evaluate::hunt::scan_file(f, &hunting, &mut buf);
                        assert_eq!(s.problem, None);
                        h += s.events.iter().map(|e| e.hits.len() as u64).sum::<u64>();
                        n += s.records;
                    }
                    assert_eq!(n, c.records);
                    black_box(h);
                }
                _ => unreachable!(),
            }
            let elapsed = t.elapsed();
            p.times.push(elapsed);
            eprintln!(
                "round {}: {:<9} {:>7.3} s",
                round + 1,
                p.name,
                elapsed.as_secs_f64()
            );
        }
    }

    println!();
    println!(
        "{:<10} {:>12} {:>12} {:>10} {:>10}   what",
        "phase", "records/s", "best rec/s", "MB/s", "best MB/s"
    );
    for p in phases.iter().filter(|p| !p.times.is_empty()) {
        let (m, b) = (p.median().as_secs_f64(), p.best().as_secs_f64());
        println!(
            "{:<10} {:>12.0} {:>12.0} {:>10.1} {:>10.1}   {}",
            p.name,
            c.records as f64 / m,
            c.records as f64 / b,
            c.uncompressed as f64 / 1e6 / m,
            c.uncompressed as f64 / 1e6 / b,
            p.what
        );
    }
    let get = |name: &str| {
        phases
            .iter()
            .find(|p| p.name == name && !p.times.is_empty())
    };
    if let (Some(a), Some(b)) = (get("parse"), get("full")) {
        let full_rate = c.records as f64 / b.median().as_secs_f64();
        let ratio = a.median().as_secs_f64() / b.median().as_secs_f64();
        let ratio_best = a.best().as_secs_f64() / b.best().as_secs_f64();
        println!();
        println!(
            "(b)/(a): {ratio:.2} on medians, {ratio_best:.2} on bests (target >= 0.50): {}",
            verdict(ratio >= 0.5)
        );
        println!(
            "(b): {full_rate:.0} records/s on one core (target >= 150000): {}",
            verdict(full_rate >= 150_000.0)
        );
        println!(
            "detection hits: {hits} (records flagged by construction: {}); unreadable records: {bad}",
            c.tamper
        );
        if get("sigma").is_some() {
            println!("with the Sigma example set: {sigma_hits} hits");
        }
    }
    // Issue 15's target: log processing at >= 0.8 of gunzip + SHA-256 alone.
    if let Some(base) = get("inflate") {
        for name in ["read", "full", "sigma", "hunt"] {
            if let Some(p) = get(name) {
                println!(
                    "{name}/inflate: {:.2} on medians, {:.2} on bests (target >= 0.80): {}",
                    base.median().as_secs_f64() / p.median().as_secs_f64(),
                    base.best().as_secs_f64() / p.best().as_secs_f64(),
                    verdict(base.median().as_secs_f64() / p.median().as_secs_f64() >= 0.8)
                );
            }
        }
    }
    println!(
        "rounds: {rounds}; load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
