//! A log file, hostile: whatever the bytes (gzip or not, any JSON or none), reading stays
//! within its caps and never panics; and when the bytes are a well-formed
//! `{"Records": [...]}` document, the streaming splitter hands out exactly the records a
//! whole-document JSON parser sees, byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use trailwarden_core::logfile::{self, Limits};

#[derive(serde::Deserialize)]
struct Whole<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<&'a RawValue>,
}

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_inflated: 1 << 20,
        max_record: 4 << 10,
        max_records: 1000,
    };
    let mut scratch = Vec::new();
    let _ = logfile::read(data, &small, &mut scratch, |r| {
        if let Ok(r) = r {
            assert!(r.text.len() <= small.max_record);
        }
    });
    let _ = logfile::hash(data, small.max_inflated);
    // Differential: a document serde reads whole (not gzip, so the bytes are the document).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(whole) = serde_json::from_str::<Whole>(text) else {
        return;
    };
    let big = Limits {
        max_inflated: u64::MAX,
        max_record: usize::MAX,
        max_records: u64::MAX,
    };
    let mut seen = Vec::new();
    let summary = logfile::read(data, &big, &mut scratch, |r| {
        seen.push(match r {
            Ok(r) => r.text.trim().to_string(),
            Err((i, _)) => format!("fault {i}"),
        })
    })
    .expect("no cap");
    if text.trim_start().starts_with('{') && !text.contains("\"Records\"") {
        return;
    }
    // Keys may repeat ("Records" twice): serde keeps the last, the splitter reads both.
    if text.matches("\"Records\"").count() != 1 {
        return;
    }
    assert_eq!(summary.malformed, None, "{text}");
    assert_eq!(seen.len(), whole.records.len(), "{text}");
    for (got, want) in seen.iter().zip(&whole.records) {
        if !got.starts_with("fault") {
            assert_eq!(got, want.get().trim(), "{text}");
        }
    }
});
