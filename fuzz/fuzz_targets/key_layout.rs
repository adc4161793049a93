//! Where CloudTrail puts things: any key gives a log key, a digest key, or neither, never a
//! panic; a log key sorts after the listing marker of its own minute, so a listing that
//! starts there finds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwarden_core::integrity::layout::{self, AccountRoot};

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(k) = layout::parse_log_key(key) {
        let root = AccountRoot {
            prefix: None,
            org: None,
            account: k.account.clone(),
        };
        let canonical = format!(
            "{}{}/{}_CloudTrail_{}_{}_x.json.gz",
            root.logs(&k.region),
            k.delivered.format("%Y/%m/%d"),
            k.account,
            k.region,
            k.delivered.format("%Y%m%dT%H%MZ")
        );
        assert!(layout::log_key_floor(&root, &k.region, k.delivered) < canonical);
        assert_eq!(layout::parse_log_key(&canonical), Some(k));
    }
    if let Some(d) = layout::parse_digest_key(key) {
        assert!(!d.trail.is_empty());
    }
    let _ = layout::is_org_id(key);
    let _ = layout::start_after_for(key, chrono::Utc::now());
});
