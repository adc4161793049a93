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
    // The sharded Kubernetes overlay's configuration, beside the base's policy and detection
    // files as its ConfigMap puts them.
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        (
            "deploy/kubernetes/sharded/trailwarden.yaml",
            "trailwarden.yaml",
        ),
        (
            "deploy/kubernetes/base/config/policies.yaml",
            "policies.yaml",
        ),
        (
            "deploy/kubernetes/base/config/detections.yaml",
            "detections.yaml",
        ),
    ] {
        std::fs::copy(manifest_dir().join(from), dir.path().join(to)).unwrap();
    }
    let out = trailwarden(None)
        .args(["validate-config", "--config"])
        .arg(dir.path().join("trailwarden.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sharded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn a_shard_that_cannot_be_is_refused_before_anything_is_called() {
    let config = manifest_dir().join("config/demo.yaml");
    // (arguments, environment, what stderr says)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        // One account has nothing to split.
        (
            &["--shard", "0", "--total-shards", "2"],
            &[],
            "add it, or run one replica",
        ),
        (
            &["--shard", "5", "--total-shards", "1"],
            &[],
            "shard 5 does not exist among 1",
        ),
        (
            &[],
            &[
                ("TRAILWARDEN_SHARD", "hostname"),
                ("TRAILWARDEN_TOTAL_SHARDS", "1"),
                ("HOSTNAME", "laptop"),
            ],
            "\"laptop\" does not end in -N",
        ),
    ];
    for (args, env, says) in cases {
        let out = trailwarden(None)
            .args(["check", "--config"])
            .arg(&config)
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("demo.yaml"), "names the file: {stderr}");
    }
    // Half a shard is a usage error.
    let out = trailwarden(None)
        .args(["check", "--config"])
        .arg(&config)
        .args(["--shard", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--total-shards"));
}
