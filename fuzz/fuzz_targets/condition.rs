//! The condition language: any text parses to a condition or an error, and a condition
//! evaluates over a trail document and over a record without a panic, to true, false or
//! unknown.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use trailwarden_core::config::condition::{Condition, RecordPaths};
use trailwarden_core::config::yaml::parse_str;
use trailwarden_core::evaluate::condition::eval;

fn documents() -> &'static (serde_json::Value, serde_json::Value) {
    static DOCS: OnceLock<(serde_json::Value, serde_json::Value)> = OnceLock::new();
    DOCS.get_or_init(|| {
        let trail = serde_json::json!({
            "account": "111122223333",
            "trail": {"name": "lab", "home_region": "us-east-1", "is_multi_region_trail": true,
                      "kms_key_id": null, "s3_key_prefix": ""},
            "status": {"is_logging": true, "latest_delivery_time": "2026-12-01T00:00:00Z"},
            "selectors": {"basic": [{"read_write_type": "all"}]},
            "bucket": {"lifecycle_rules": [{"expiration_days": 400}], "versioning": "enabled"},
            "key": null,
        });
        let record = serde_json::json!({
            "eventName": "PutBucketLifecycle", "eventSource": "s3.amazonaws.com",
            "requestParameters": {"bucketName": "b", "LifecycleConfiguration": {"Rule": [
                {"Expiration": {"Days": "1"}}]}},
            "derived": {"lifecycle_min_days": 1},
            "errorCode": null,
        });
        (trail, record)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = chrono::Utc::now();
    let (trail, record) = documents();
    if let Ok(c) = parse_str::<Condition>(Path::new("c.yaml"), text) {
        let _ = eval(&c, trail, now);
    }
    if let Ok(c) = parse_str::<Condition<RecordPaths>>(Path::new("c.yaml"), text) {
        let _ = eval(&c, record, now);
    }
});
