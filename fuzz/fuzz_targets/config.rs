//! The configuration files: any text gives a configuration or errors with a place, never a
//! panic; the daemon file's bucket settings that load pass their own cross-checks or say why,
//! and an accounts section's role template names the account.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use trailwarden_core::config::yaml::parse_str;
use trailwarden_core::config::{DaemonFile, DetectionSet, PolicySet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    if let Ok(d) = parse_str::<DaemonFile>(path, text) {
        let _ = d.bucket.check();
        let _ = d.bucket.log_limits();
        if let Some(a) = &d.accounts {
            let _ = a.check();
            let _ = a.selects("123456789012");
            assert!(!a.role.arn_for("123456789012").contains("{account}"));
        }
    }
    if let Err(e) = parse_str::<PolicySet>(path, text) {
        assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
    }
    let _ = parse_str::<DetectionSet>(path, text);
});
