//! Security Hub, opt-in: the daemon's findings imported as ASFF through trailsim (which
//! refuses what ASFF does not allow), one finding per policy and trail under the same id as
//! the trail breaks and heals, resolved when it passes again.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use support::lab::{Lab, Options};
use support::{Daemon, called_actions, metric_value, trailsim};

/// The trail-logging findings Security Hub holds: (compliance, workflow, id).
async fn logging_findings(hub: &aws_sdk_securityhub::Client) -> Vec<(String, String, String)> {
    let filter = aws_sdk_securityhub::types::StringFilter::builder()
        .value("trailwarden/trail-logging")
        .comparison(aws_sdk_securityhub::types::StringFilterComparison::Equals)
        .build();
    let out = hub
        .get_findings()
        .filters(
            aws_sdk_securityhub::types::AwsSecurityFindingFilters::builder()
                .generator_id(filter)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.findings()
        .iter()
        .map(|f| {
            (
                f.compliance()
                    .unwrap()
                    .status()
                    .unwrap()
                    .as_str()
                    .to_string(),
                f.workflow().unwrap().status().unwrap().as_str().to_string(),
                f.id().unwrap().to_string(),
            )
        })
        .collect()
}

async fn wait_for(hub: &aws_sdk_securityhub::Client, compliance: &str) -> (String, String) {
    for _ in 0..120 {
        let found = logging_findings(hub).await;
        assert!(
            found.len() <= 1,
            "one finding per policy and trail: {found:?}"
        );
        if let Some((c, workflow, id)) = found.first()
            && c == compliance
        {
            return (workflow.clone(), id.clone());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("never {compliance}: {:?}", logging_findings(hub).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn findings_are_imported_updated_and_resolved_under_one_id() {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let hub = aws_sdk_securityhub::Client::new(&lab.sdk);
    let port = support::free_port();
    let schedule = "  trails: \"* * * * * *\"\n  posture: \"*/2 * * * * *\"\n  events: \"*/2 * * * * *\"\n  security_hub: \"* * * * * *\"\n";
    let path = lab.write_detecting_config(
        port,
        trailsim(),
        schedule,
        "10s",
        "security_hub:\n  refresh: 1h\n",
    );
    let mut daemon = Daemon::start(&lab.account, &path, port, lab.dir.path().join("run.log"));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));

    let (workflow, id) = wait_for(&hub, "PASSED").await;
    assert_eq!(workflow, "RESOLVED");
    assert!(
        id.starts_with(&format!("trailwarden/{}/trail-logging/", lab.account.id)),
        "{id}"
    );

    lab.stop_logging().await;
    let (workflow, failed_id) = wait_for(&hub, "FAILED").await;
    assert_eq!(
        (workflow.as_str(), &failed_id),
        ("NEW", &id),
        "the same finding, open again"
    );
    lab.cloudtrail()
        .start_logging()
        .name(&lab.trail_arn)
        .send()
        .await
        .unwrap();
    let (workflow, _) = wait_for(&hub, "PASSED").await;
    assert_eq!(workflow, "RESOLVED");

    // Nothing was refused by the format check, and no error or pending finding was imported.
    let status = daemon.status();
    assert_eq!(
        status["security_hub"]["failed"],
        serde_json::json!([]),
        "{status}"
    );
    let undecided: Vec<&str> = status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "error" || f["status"] == "pending")
        .map(|f| f["policy"].as_str().unwrap())
        .collect();
    for imported in status["security_hub"]["imported"].as_array().unwrap() {
        let id = imported["id"].as_str().unwrap();
        assert!(
            !undecided.iter().any(|p| id.contains(&format!("/{p}/"))),
            "{id} imported while {undecided:?} are undecided"
        );
    }
    let m = daemon.metrics();
    let imported = |c| {
        metric_value(
            &m,
            "trailwarden_security_hub_imports_total",
            &[("compliance", c)],
        )
        .unwrap()
    };
    assert!(
        imported("FAILED") >= 1.0 && imported("PASSED") >= 2.0,
        "{m}"
    );

    // Its calls are what deploy/iam-policy-security-hub.json grants.
    let granted = support::granted_actions("deploy/iam-policy-security-hub.json");
    let called: std::collections::BTreeSet<String> = called_actions(&m)
        .into_iter()
        .filter(|a| a.starts_with("securityhub:"))
        .collect();
    assert_eq!(called, granted);
    daemon.stop();
}
