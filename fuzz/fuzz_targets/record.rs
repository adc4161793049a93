//! One CloudTrail record, read leniently: any text gives a record or an error naming what is
//! wrong, never a panic; a record that parses gives a resource, a request summary and a
//! stable id for records without one. The cheap walk that picks a log file's records
//! (`record_head`) agrees with the full parser wherever both answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwarden_core::record::{Record, stable_id};
use trailwarden_core::record_head::source_and_name;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Record::parse(text) {
        let _ = r.resource();
        let summary = r.request_summary(200);
        assert!(
            summary.len() <= 200 + "…".len(),
            "summary of {} bytes",
            summary.len()
        );
        let _ = r.failed();
    }
    assert_eq!(stable_id(text), stable_id(text));
    if let Some((source, name)) = source_and_name(text)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
    {
        assert_eq!(v["eventSource"].as_str(), Some(source), "eventSource");
        assert_eq!(v["eventName"].as_str(), Some(name), "eventName");
    }
});
