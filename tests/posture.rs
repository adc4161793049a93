//! `trailwarden check` against real moto worlds: the compliant lab passes, and each way of
//! breaking it fails the policy that guards it, with exit code 1; what cannot be read is an
//! error with exit code 2, never a pass.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use support::lab::{Lab, Options, check_with, finding};

fn statuses(out: &serde_json::Value) -> Vec<(String, String)> {
    out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["policy"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The lab through trailsim, with its log files and a digest delivered: the bucket policies
/// have evidence to pass on.
async fn delivered_lab() -> Lab {
    let lab = Lab::build_at(support::trailsim(), Options::default()).await;
    support::trailsim_control("/_trailsim/deliver", &serde_json::json!({}));
    support::trailsim_control("/_trailsim/digest", &serde_json::json!({}));
    lab
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lab_passes_every_policy() {
    let lab = delivered_lab().await;
    let (code, out) = lab.check();
    for (policy, status) in statuses(&out) {
        assert_eq!(status, "pass", "{policy}: {:#}", finding(&out, &policy));
    }
    assert_eq!(code, 0, "{out:#}");
    assert_eq!(out["account"], lab.account.id.as_str());
    let trail = &out["trails"][0];
    assert_eq!(trail["arn"], lab.trail_arn.as_str());
    assert_eq!(trail["is_logging"], true);
    assert_eq!(trail["log_file_validation"], true);
    assert_eq!(trail["bucket"], lab.bucket.as_str());
    // The document custom policies query is part of the JSON output.
    let doc = &out["documents"][0]["document"];
    assert_eq!(doc["key"]["state"], "Enabled");
    assert_eq!(doc["key"]["aliases"][0], "alias/cloudtrail");
    assert_eq!(doc["bucket"]["lifecycle_rules"][0]["expiration_days"], 400);
    assert_eq!(
        doc["bucket"]["public_access_block"]["block_public_policy"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trail_without_kms_fails_sse_kms() {
    let lab = Lab::build(Options {
        kms: false,
        ..Options::default()
    })
    .await;
    let (code, out) = lab.check();
    let f = finding(&out, "sse-kms");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(f["message"].as_str().unwrap().contains("no KmsKeyId"));
    assert_eq!(f["resource"], lab.trail_arn.as_str());
    assert_eq!(code, 1);
    // Nothing else is affected.
    assert_eq!(finding(&out, "trail-logging")["status"], "pass");
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_off_fails_log_file_validation() {
    let lab = Lab::build(Options {
        validation: false,
        ..Options::default()
    })
    .await;
    let (code, out) = lab.check();
    assert_eq!(finding(&out, "log-file-validation")["status"], "fail");
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_key_fails_sse_kms() {
    let lab = Lab::build(Options::default()).await;
    lab.kms()
        .disable_key()
        .key_id(&lab.key_id)
        .send()
        .await
        .unwrap();
    let (code, out) = lab.check();
    let f = finding(&out, "sse-kms");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["message"].as_str().unwrap().contains("is Disabled"),
        "{f:#}"
    );
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_scheduled_for_deletion_fails_sse_kms() {
    let lab = Lab::build(Options::default()).await;
    lab.kms()
        .schedule_key_deletion()
        .key_id(&lab.key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let (code, out) = lab.check();
    let f = finding(&out, "sse-kms");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("is PendingDeletion"),
        "{f:#}"
    );
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_day_lifecycle_fails_retention() {
    let lab = Lab::build(Options {
        lifecycle_days: Some(30),
        ..Options::default()
    })
    .await;
    let (code, out) = lab.check();
    let f = finding(&out, "retention");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["message"].as_str().unwrap().contains("after 30 days"),
        "{f:#}"
    );
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn advanced_selectors_without_management_events_fail() {
    let lab = Lab::build(Options {
        data_events_only: true,
        ..Options::default()
    })
    .await;
    let (code, out) = lab.check();
    let f = finding(&out, "management-events");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert_eq!(
        f["message"],
        "trail lab: management events are not recorded"
    );
    // An account-level promise: one finding for the account.
    assert_eq!(f["resource"], format!("account/{}", lab.account.id));
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_recorder_fails_config_recording() {
    let lab = Lab::build(Options::default()).await;
    aws_sdk_config::Client::new(&lab.sdk)
        .stop_configuration_recorder()
        .configuration_recorder_name("default")
        .send()
        .await
        .unwrap();
    let (_, out) = lab.check();
    let f = finding(&out, "config-recording");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert_eq!(f["resource"], "us-east-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_logging_fails_trail_logging() {
    let lab = delivered_lab().await;
    let (code, _) = lab.check();
    assert_eq!(code, 0);
    lab.stop_logging().await;
    let (code, out) = lab.check();
    let f = finding(&out, "trail-logging");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(f["message"].as_str().unwrap().contains("not logging"));
    assert_eq!(out["trails"][0]["is_logging"], false);
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_trails_fails_rather_than_passes() {
    let lab = Lab::build(Options::default()).await;
    lab.cloudtrail()
        .delete_trail()
        .name(&lab.trail_name)
        .send()
        .await
        .unwrap();
    let (code, out) = lab.check();
    let f = finding(&out, "trail-logging");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert_eq!(f["resource"], format!("account/{}", lab.account.id));
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_is_an_error_not_a_pass() {
    let lab = Lab::build(Options::default()).await;
    // A port nobody listens on.
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let config = lab.write_config(support::free_port(), &closed);
    let (code, out) = check_with(&lab.account, &config);
    let all = statuses(&out);
    assert!(!all.is_empty());
    for (policy, status) in &all {
        assert_eq!(status, "error", "{policy}: {:#}", finding(&out, policy));
    }
    let message = finding(&out, "trail-logging")["message"].as_str().unwrap();
    assert!(message.contains("cannot reach the endpoint"), "{message}");
    assert_eq!(code, 2);
}
