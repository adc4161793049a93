//! The demo world of `scripts/demo.sh`, seeded and changed by its own script in the test
//! moto: every shipped policy passes with `config/demo.yaml`, and each action the demo offers
//! fails the policy it is meant to.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::process::Command;
use support::lab::finding;
use support::{Account, manifest_dir, python_env};

fn demo_world(action: &str, endpoint: &str) {
    let out = Command::new(python_env().join("bin/python"))
        .arg(manifest_dir().join("scripts/demo_world.py"))
        .args([action, "--endpoint", endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo_world.py {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_world_passes_then_fails_after_stop_logging() {
    // As scripts/demo.sh runs it: through trailsim, which delivers log files and digests.
    let endpoint = support::trailsim().to_string();
    // The demo uses moto's default account, which no other test touches.
    let account = Account {
        id: "123456789012".into(),
        endpoint: endpoint.clone(),
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: "demo".into(),
        session_token: String::new(),
    };
    demo_world("seed", &endpoint);
    support::trailsim_control("/_trailsim/deliver", &serde_json::json!({}));
    support::trailsim_control("/_trailsim/digest", &serde_json::json!({}));
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(manifest_dir().join("config/demo.yaml")).unwrap();
    assert!(shipped.contains("endpoint_url: http://127.0.0.1:4566"));
    let config = dir.path().join("demo.yaml");
    // The shipped policy and detection files, by absolute path.
    let mut text = shipped.replace("http://127.0.0.1:4566", &endpoint);
    for file in ["policies", "detections"] {
        text = text.replace(
            &format!("{file}: {file}.yaml"),
            &format!(
                "{file}: {}",
                manifest_dir().join(format!("config/{file}.yaml")).display()
            ),
        );
    }
    std::fs::write(&config, text).unwrap();

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
