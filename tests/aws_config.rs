//! AWS Config, published: the conformance pack of deploy/aws/ deployed in trailsim, and the
//! daemon's verdicts reaching its process checks; a trail that breaks and heals changes them,
//! and the daemon's own calls are recorded, allowed by their IAM policy, and never detected.
//! Cross-checked: Config's managed `cloudtrail-enabled` rule saying COMPLIANT while the trail
//! is stopped is reported as a disagreement, and no longer once they agree.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use support::lab::{Lab, Options};
use support::{Daemon, called_actions, metric_value, trailsim, trailsim_control, trailsim_request};

/// Config's managed `cloudtrail-enabled` rule, deployed in the lab's account, with the result
/// AWS's evaluator would give it (trailsim's control API): COMPLIANT.
async fn managed_rule_says_compliant(lab: &Lab, config: &aws_sdk_config::Client) {
    use aws_sdk_config::types::{ConfigRule, Owner, Source};
    let rule = ConfigRule::builder()
        .config_rule_name("cloudtrail-enabled")
        .source(
            Source::builder()
                .owner(Owner::Aws)
                .source_identifier("CLOUD_TRAIL_ENABLED")
                .build()
                .unwrap(),
        )
        .build();
    config
        .put_config_rule()
        .config_rule(rule)
        .send()
        .await
        .expect("PutConfigRule");
    trailsim_control(
        "/_trailsim/config/evaluations",
        &serde_json::json!({
            "account": lab.account.id, "region": "us-east-1", "rule": "cloudtrail-enabled",
            "source_identifier": "CLOUD_TRAIL_ENABLED", "resource_type": "AWS::::Account",
            "resource_id": lab.account.id, "compliance": "COMPLIANT",
        }),
    );
}

fn disagreements(daemon: &Daemon) -> f64 {
    metric_value(
        &daemon.metrics(),
        "trailwarden_config_rule_disagreements",
        &[("rule", "cloudtrail-enabled")],
    )
    .unwrap_or(-1.0)
}

async fn deploy_pack(lab: &Lab) -> aws_sdk_config::Client {
    let config = aws_sdk_config::Client::new(&lab.sdk);
    let template =
        std::fs::read_to_string(support::manifest_dir().join("deploy/aws/conformance-pack.yaml"))
            .unwrap();
    config
        .put_conformance_pack()
        .conformance_pack_name("trailwarden")
        .template_body(template)
        .send()
        .await
        .expect("PutConformancePack");
    config
}

/// The pack rule's evaluations for the account: (compliance, annotation).
async fn evaluations(config: &aws_sdk_config::Client, policy: &str) -> Vec<(String, String)> {
    let pack = config
        .describe_conformance_pack_compliance()
        .conformance_pack_name("trailwarden")
        .send()
        .await
        .unwrap();
    let wanted = format!("trailwarden-{policy}-conformance-pack-");
    let rule = pack
        .conformance_pack_rule_compliance_list()
        .iter()
        .filter_map(|r| r.config_rule_name())
        .find(|n| n.starts_with(&wanted))
        .unwrap_or_else(|| panic!("no rule for {policy}"))
        .to_string();
    let out = config
        .get_compliance_details_by_config_rule()
        .config_rule_name(rule)
        .send()
        .await
        .unwrap();
    out.evaluation_results()
        .iter()
        .map(|r| {
            let q = r
                .evaluation_result_identifier()
                .and_then(|i| i.evaluation_result_qualifier())
                .unwrap();
            assert_eq!(q.resource_type(), Some("AWS::::Account"));
            (
                r.compliance_type().unwrap().as_str().to_string(),
                r.annotation().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn wait_for(config: &aws_sdk_config::Client, policy: &str, compliance: &str) -> String {
    for _ in 0..120 {
        let found = evaluations(config, policy).await;
        assert!(found.len() <= 1, "one evaluation per account: {found:?}");
        if let Some((c, annotation)) = found.first()
            && c == compliance
        {
            return annotation.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!(
        "{policy} never became {compliance}: {:?}",
        evaluations(config, policy).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_conformance_pack_follows_a_trail_that_breaks_and_heals() {
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let config = deploy_pack(&lab).await;
    managed_rule_says_compliant(&lab, &config).await;
    let port = support::free_port();
    let schedule = "  trails: \"* * * * * *\"\n  posture: \"*/2 * * * * *\"\n  events: \"*/2 * * * * *\"\n  aws_config: \"* * * * * *\"\n";
    let path = lab.write_detecting_config(
        port,
        trailsim(),
        schedule,
        "10s",
        "aws_config:\n  conformance_pack: trailwarden\n  refresh: 1h\n  cross_check: true\n  cross_check_interval: 1s\n",
    );
    let mut daemon = Daemon::start(&lab.account, &path, port, lab.dir.path().join("run.log"));
    daemon.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));

    let annotation = wait_for(&config, "trail-logging", "COMPLIANT").await;
    assert!(annotation.contains("lab"), "{annotation}");
    // The series starts at 0: wait for a cross-check to have run, and to have compared it.
    daemon.wait_until("the managed rule compared", |d| {
        d.status()["aws_config"]["cross_check"]["comparisons"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["rule"] == "cloudtrail-enabled"))
    });
    assert_eq!(disagreements(&daemon), 0.0, "both pass: they agree");

    // Every policy Config heard about was decided in /status: never an error or pending one.
    daemon.wait_until("the first evaluations sent", |d| {
        d.status()["aws_config"]["sent"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    });
    let status = daemon.status();
    let undecided: Vec<&str> = status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "error" || f["status"] == "pending")
        .map(|f| f["policy"].as_str().unwrap())
        .collect();
    for sent in status["aws_config"]["sent"].as_array().unwrap() {
        let policy = sent["policy"].as_str().unwrap();
        assert_eq!(sent["account"], lab.account.id.as_str());
        if undecided.contains(&policy) {
            // Only if it was decided before: then it is still what was sent.
            let finding = status["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["policy"] == policy)
                .unwrap();
            panic!(
                "{policy} is {} but Config was told {sent}",
                finding["status"]
            );
        }
    }
    assert_eq!(
        status["aws_config"]["accounts"][lab.account.id.as_str()]["without_rule"],
        serde_json::json!([]),
        "every shipped policy has its rule in the shipped pack"
    );

    lab.stop_logging().await;
    let annotation = wait_for(&config, "trail-logging", "NON_COMPLIANT").await;
    assert!(
        annotation.starts_with("lab: "),
        "names the trail: {annotation}"
    );
    lab.cloudtrail()
        .start_logging()
        .name(&lab.trail_arn)
        .send()
        .await
        .unwrap();
    wait_for(&config, "trail-logging", "COMPLIANT").await;
    daemon.wait_until("the two agree again", |d| disagreements(d) == 0.0);

    let m = daemon.metrics();
    let sent = |c| {
        metric_value(
            &m,
            "trailwarden_config_evaluations_total",
            &[("compliance", c)],
        )
        .unwrap()
    };
    assert!(
        sent("NON_COMPLIANT") >= 1.0 && sent("COMPLIANT") >= 2.0,
        "{m}"
    );

    // The calls are CloudTrail events like any other, and none of them is a tamper event.
    let records = trailsim_request("GET", "/_trailsim/records", &serde_json::json!({}));
    let puts = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["eventName"] == "PutExternalEvaluation")
        .filter(|r| r["recipientAccountId"] == lab.account.id.as_str())
        .count();
    assert!(puts >= 3, "recorded as CloudTrail events");
    for e in daemon.status()["events"].as_array().unwrap() {
        assert_ne!(e["event_source"], "config.amazonaws.com", "{e}");
    }

    // Its calls are the ones deploy/iam-policy-aws-config.json grants.
    let granted = support::granted_actions("deploy/iam-policy-aws-config.json");
    let called: std::collections::BTreeSet<String> = called_actions(&m)
        .into_iter()
        .filter(|a| a.starts_with("config:") && a != "config:DescribeConfigurationRecorderStatus")
        .collect();
    assert_eq!(called, granted, "deploy/iam-policy-aws-config.json");
    daemon.stop();
}
