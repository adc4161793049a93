//! The demo world of `scripts/demo.sh` for the tests: seeded and changed by its own script,
//! in moto's default account, with `config/demo.yaml` pointed at the test's trailsim.

use super::{Account, manifest_dir, python_env};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `scripts/demo_world.py ACTION` against `endpoint`.
pub fn demo_world(action: &str, endpoint: &str) {
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

/// The demo's credentials: moto's default account, which no other test touches.
pub fn demo_account(endpoint: &str) -> Account {
    Account {
        id: "123456789012".into(),
        endpoint: endpoint.to_string(),
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: "demo".into(),
        session_token: String::new(),
    }
}

/// The shipped `config/demo.yaml`, written into `dir` with its endpoint replaced by
/// `endpoint` and the shipped policy and detection files by absolute path; `edit` changes the
/// text further.
pub fn demo_config(dir: &Path, endpoint: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let shipped = std::fs::read_to_string(manifest_dir().join("config/demo.yaml")).unwrap();
    assert!(shipped.contains("endpoint_url: http://127.0.0.1:4566"));
    let mut text = shipped.replace("http://127.0.0.1:4566", endpoint);
    for file in ["policies", "detections"] {
        text = text.replace(
            &format!("{file}: {file}.yaml"),
            &format!(
                "{file}: {}",
                manifest_dir().join(format!("config/{file}.yaml")).display()
            ),
        );
    }
    let config = dir.join("demo.yaml");
    std::fs::write(&config, edit(text)).unwrap();
    config
}
