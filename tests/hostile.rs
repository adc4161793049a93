//! Hostile objects under the real key layout: gzip bombs (a log file and a digest), a log
//! file that is not gzip, one cut short, one of the wrong JSON shape, one holding a 100 MB
//! record, a digest replaced by JSON of the wrong shape and one that is not gzip. Each is
//! reported with its own verdict, the daemon's memory stays under 256 MB, and the rest of
//! the chain is still judged: later digests validate.
//!
//! A binary of its own: it plants large objects and measures the daemon's memory.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use aws_sdk_s3::primitives::ByteStream;
use flate2::{Compression, write::GzEncoder};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;
use support::lab::{Lab, Options};
use support::proof::{Weather, status_of};
use support::{Daemon, trailsim};

/// gzip of `head`, `n` bytes of `fill`, then `tail`, written as it goes (never held inflated).
fn gzip_stream(head: &[u8], fill: u8, n: usize, tail: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(head).unwrap();
    let block = vec![fill; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        e.write_all(&block[..k]).unwrap();
        left -= k;
    }
    e.write_all(tail).unwrap();
    e.finish().unwrap()
}

/// The daemon's peak resident memory, from /proc.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_objects_are_each_reported_in_bounded_memory_and_the_chain_goes_on() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = runtime.block_on(Lab::build_at(trailsim(), Options::default()));
    let weather = Weather::start(Duration::from_secs(1), Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(7));
    let s3 = lab.s3();
    let account = lab.account.id.clone();
    let now = chrono::Utc::now();
    let log_key = |tag: &str| {
        trailsim::delivery::log_key(
            None,
            None,
            &account,
            "us-east-1",
            now,
            &format!("{tag:0>16}"),
        )
    };
    let logs: Vec<(String, Vec<u8>, &str)> =
        vec![
        (
            log_key("bomb"),
            gzip_stream(b"", b' ', 512 << 20, b""),
            "oversized",
        ),
        (log_key("notgzip"), b"\x00\x01 not a log file at all".repeat(40), "malformed_log"),
        (
            log_key("cut"),
            {
                let whole = trailsim::delivery::gzip(&trailsim::delivery::log_json(&[]));
                whole[..whole.len() / 2].to_vec()
            },
            "malformed_log",
        ),
        (
            log_key("shape"),
            trailsim::delivery::gzip(br#"{"Records": {"eventName": 1}}"#),
            "malformed_log",
        ),
        (
            log_key("bigrecord"),
            gzip_stream(
                br#"{"Records":[{"eventSource":"s3.amazonaws.com","eventName":"PutObject","pad":""#,
                b'a',
                100 << 20,
                br#""}]}"#,
            ),
            "malformed_log",
        ),
    ];
    // The newest digest so far is replaced; two digests are added beside it.
    let digest_folder = format!("AWSLogs/{account}/CloudTrail-Digest/us-east-1/");
    let newest = runtime.block_on(async {
        let listed = s3
            .list_objects_v2()
            .bucket(&lab.bucket)
            .prefix(&digest_folder)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .max()
            .unwrap()
            .to_string()
    });
    let digest_key = |at: chrono::DateTime<chrono::Utc>| {
        trailsim::digest::digest_key(None, None, &account, "us-east-1", "lab", "us-east-1", at)
    };
    let digests: Vec<(String, Vec<u8>, &str)> = vec![
        (
            newest.clone(),
            trailsim::delivery::gzip(br#"{"awsAccountId": 5, "logFiles": "none"}"#),
            "invalid_format",
        ),
        (
            digest_key(now + chrono::Duration::seconds(1)),
            gzip_stream(b"", b'0', 64 << 20, b""),
            "oversized",
        ),
        (
            digest_key(now + chrono::Duration::seconds(2)),
            b"\x1f\x8b but not gzip".to_vec(),
            "invalid_format",
        ),
    ];
    runtime.block_on(async {
        for (key, body, _) in logs.iter().chain(&digests) {
            s3.put_object()
                .bucket(&lab.bucket)
                .key(key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
        }
    });
    let port = support::free_port();
    let config = lab.write_daemon_config(
        port,
        trailsim(),
        "* * * * * *",
        "20s",
        "bucket:\n  max_inflated_size: 256MiB\n  max_digest_size: 4MiB\n  max_record_size: 1MiB\n  read_memory: 64MiB\n",
    );
    let mut d = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir.path().join("hostile.log"),
    );
    let verdict = |status: &Value, object: &str, class: &str| {
        status["buckets"][0]["integrity"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["object"] == object && i["class"] == class)
    };
    d.wait_until("every hostile object reported", |d| {
        let s = status_of(d);
        logs.iter()
            .chain(&digests)
            .all(|(key, _, class)| verdict(&s, key, class))
    });
    // The chain goes on: a digest written after the hostile ones validates.
    let after = now + chrono::Duration::seconds(3);
    d.wait_until("a later digest validated", |d| {
        status_of(d)["buckets"][0]["regions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["region"] == "us-east-1")
            .filter_map(|r| r["validated_until"].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .any(|t| t > after)
    });
    drop(weather);
    let peak = peak_kib(d.child.id());
    eprintln!(
        "peak resident memory with hostile objects: {} MiB",
        peak / 1024
    );
    assert!(peak < 256 * 1024, "VmHWM {peak} kB");
    let s = status_of(&d);
    // Each reported once, with what is wrong with it.
    for (key, _, class) in logs.iter().chain(&digests) {
        let items: Vec<&Value> = s["buckets"][0]["integrity"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["object"] == key.as_str() && i["class"] == *class)
            .collect();
        assert_eq!(items.len(), 1, "{key}: {items:#?}");
        assert!(!items[0]["detail"].as_str().unwrap().is_empty());
    }
    let log = d.log_text();
    assert!(!log.contains("panicked"), "{log}");
    d.stop();
}
