//! One CloudTrail record, read leniently: any text gives a record or an error naming what is
//! wrong, never a panic; a record that parses gives a resource, a request summary and a
//! stable id for records without one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwarden_core::record::{Record, stable_id};

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
});
