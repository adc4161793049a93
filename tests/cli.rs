//! The command line without AWS: configuration errors name file, line and column and exit 2;
//! the shipped configuration files are valid; help explains each command.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::path::Path;
use support::{manifest_dir, trailwarden};

/// Runs `trailwarden COMMAND --config CONFIG`: exit code and stderr.
fn run(command: &str, config: &Path) -> (Option<i32>, String) {
    let out = trailwarden(None)
        .args([command, "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn shipped_configurations_are_valid() {
    for file in ["config/trailwarden.yaml", "config/demo.yaml"] {
        let out = trailwarden(None)
            .args(["validate-config", "--config"])
            .arg(manifest_dir().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    }
}

#[test]
fn a_malformed_config_exits_2_naming_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "policies.yaml",
        "policies:\n  - id: keep\n    check: retention\n    severity: high\n    min_days: 30\n",
    );
    let config = write(
        dir.path(),
        "trailwarden.yaml",
        "listen: 127.0.0.1:9847\nschedule:\n  trails: \"every minute\"\npolicies: policies.yaml\n",
    );
    for command in ["validate-config", "check", "run"] {
        let (code, stderr) = run(command, &config);
        assert_eq!(code, Some(2), "{command}");
        let main = format!(
            "{}:3:11: schedule.trails: invalid cron expression",
            config.display()
        );
        assert!(stderr.contains(&main), "{command}: {stderr}");
    }
    // Once the main file is fixed, the policy file's problem is reported with its place.
    write(
        dir.path(),
        "trailwarden.yaml",
        "schedule:\n  trails: \"*/30 * * * * *\"\npolicies: policies.yaml\n",
    );
    let (code, stderr) = run("validate-config", &config);
    assert_eq!(code, Some(2));
    let expected = format!(
        "{}:5:15: policies[0].min_days: min_days must be from 90 to 36500, got 30",
        dir.path().join("policies.yaml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn yaml_syntax_errors_and_unknown_keys_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "a.yaml",
        "listen: [unclosed\npolicies: p.yaml\n",
    );
    let (code, stderr) = run("validate-config", &config);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!("{}:", config.display())),
        "{stderr}"
    );

    let config = write(
        dir.path(),
        "b.yaml",
        "policies: p.yaml\nlisten_on: 0.0.0.0:1\n",
    );
    let (_, stderr) = run("validate-config", &config);
    assert!(
        stderr.contains(&format!(
            "{}:2:1: unknown field `listen_on`",
            config.display()
        )),
        "{stderr}"
    );
}

#[test]
fn config_can_come_from_the_environment() {
    let out = trailwarden(None)
        .arg("validate-config")
        .env(
            "TRAILWARDEN_CONFIG",
            manifest_dir().join("config/demo.yaml"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_explains_each_command() {
    let out = trailwarden(None).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "run              Run the daemon",
        "check            Collect and evaluate once",
        "validate-config  Check the configuration and policy files without calling AWS",
    ] {
        assert!(help.contains(line), "{help}");
    }
    let out = trailwarden(None)
        .args(["check", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("1 when a policy fails"), "{help}");
    assert!(help.contains("TRAILWARDEN_CONFIG"), "{help}");
}
