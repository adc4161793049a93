//! Listing in constant memory: a million log keys, generated a page (1000 keys) at a time
//! in key order as ListObjectsV2 would return them, through `layout::parse_log_key` and
//! `coverage::Coverage::add`. Peak RSS (VmHWM) after 10k keys and after all of them.
//!
//!     nice -n 19 cargo bench --bench listing
//!
//! `BENCH_KEYS` changes the count (default 1,000,000). Deliveries are 5 minutes apart, with
//! a 30-minute hole every 500 keys, so the hole list reaches its cap (`MAX_HOLES`) and the
//! cap is what keeps memory flat.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::hint::black_box;
use std::time::Instant;
use trailwarden::integrity::coverage::{Coverage, MAX_HOLES};
use trailwarden::integrity::layout::parse_log_key;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const PAGE: usize = 1000;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

/// Key `n` of the listing and its delivery time.
fn key(n: u64, start: DateTime<Utc>, rng: &mut Rng) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Every 500th delivery comes 35 minutes after the one before: a hole over the tolerance.
    let minutes = n * 5 + (n / 500) * 30;
    let t = start + Duration::minutes(minutes as i64);
    let unique: String = (0..16)
        .map(|_| ALNUM[(rng.next() % ALNUM.len() as u64) as usize] as char)
        .collect();
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{}/{ACCOUNT}_CloudTrail_{REGION}_{}_{unique}.json.gz",
        t.format("%Y/%m/%d"),
        t.format("%Y%m%dT%H%MZ"),
    )
}

/// (VmHWM, VmRSS) in kB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let total: u64 = std::env::var("BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let start = Utc.with_ymd_and_hms(2017, 1, 1, 0, 0, 0).unwrap();
    let tolerance = Duration::minutes(15);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut coverage = Coverage::default();
    let (hwm0, _) = memory();
    println!("before: VmHWM {hwm0} kB");

    let t = Instant::now();
    let mut parse_time = std::time::Duration::ZERO;
    let mut n = 0u64;
    let mut last_key = String::new();
    let mut at_10k = None;
    while n < total {
        // One page, as a listing call would hand it over.
        let page: Vec<String> = (n..(n + PAGE as u64).min(total))
            .map(|i| key(i, start, &mut rng))
            .collect();
        let p = Instant::now();
        for k in &page {
            let parsed = parse_log_key(k).expect("a log key");
            coverage.add(parsed.delivered, tolerance);
            black_box(&parsed);
        }
        parse_time += p.elapsed();
        assert!(page[0] > last_key, "keys come in key order");
        last_key = page.last().unwrap().clone();
        n += page.len() as u64;
        if n == 10_000 {
            at_10k = Some((memory(), t.elapsed()));
        }
    }
    let elapsed = t.elapsed();
    let (hwm, rss) = memory();
    assert_eq!(coverage.files, total);
    if let Some(((hwm10k, rss10k), t10k)) = at_10k {
        println!(
            "after 10,000 keys: VmHWM {hwm10k} kB, VmRSS {rss10k} kB ({:.3} s)",
            t10k.as_secs_f64()
        );
    }
    println!(
        "after {total} keys: VmHWM {hwm} kB, VmRSS {rss} kB; {:.2} s in all ({:.0} keys/s), \
         of which parse_log_key + Coverage::add {:.2} s ({:.0} ns/key); the rest is generating keys",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        parse_time.as_secs_f64(),
        parse_time.as_nanos() as f64 / total as f64
    );
    println!(
        "coverage: {} files, oldest {:?}, newest {:?}, {} holes kept (cap {MAX_HOLES})",
        coverage.files,
        coverage.oldest.map(|t| t.to_rfc3339()),
        coverage.newest.map(|t| t.to_rfc3339()),
        coverage.holes.len()
    );
}
