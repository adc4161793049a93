//! The demo world of `scripts/demo.sh`, seeded and changed by its own script in the test
//! moto: every shipped policy passes with `config/demo.yaml`, and each action the demo offers
//! fails the policy it is meant to.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use support::demo::{demo_account, demo_config, demo_world};
use support::lab::finding;

#[test]
fn the_demo_world_passes_then_fails_after_stop_logging() {
    // As scripts/demo.sh runs it: through trailsim, which delivers log files and digests.
    let endpoint = support::trailsim().to_string();
    let account = demo_account(&endpoint);
    demo_world("seed", &endpoint);
    support::trailsim_control("/_trailsim/deliver", &serde_json::json!({}));
    support::trailsim_control("/_trailsim/digest", &serde_json::json!({}));
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), &endpoint, |text| text);

    let (code, out) = support::lab::check_with(&account, &config);
    for f in out["findings"].as_array().unwrap() {
        assert_eq!(f["status"], "pass", "{f:#}");
    }
    assert_eq!(code, 0);

    for (action, policy) in [
        ("stop-logging", "trail-logging"),
        ("disable-key", "sse-kms"),
        ("shorten-lifecycle", "retention"),
    ] {
        demo_world(action, &endpoint);
        let (code, out) = support::lab::check_with(&account, &config);
        assert_eq!(finding(&out, policy)["status"], "fail", "after {action}");
        assert_eq!(code, 1, "after {action}");
    }
    demo_world("start-logging", &endpoint);
    let (_, out) = support::lab::check_with(&account, &config);
    assert_eq!(finding(&out, "trail-logging")["status"], "pass");
}
