//! The whole organization from one deployment, against trailsim: 22 members, an organization
//! trail whose bucket and key sit in a log archive account, members with trails of their own
//! (one compliant, one stopped), one without the audit role, one suspended. `check` and the
//! daemon give each account its verdicts, the organization trail is judged once and raises
//! no false failure, the role-less account is an `error` that affects no one else, StopLogging
//! of the organization trail shows in every member within one trail poll, and an account that
//! joins is watched after the next discovery. The bucket and event history pollers read every
//! member folder with the log archive's role and every member's history with its own.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use std::collections::BTreeSet;
use support::lab::{Lab, Options, check_with};
use support::organization::{AUDIT_ROLE, EXTERNAL_ID, Organization, sdk_of};
use support::{Daemon, free_port, metric_value, trailsim, trailsim_control};

const POLICIES: &str = "policies:
  - { id: trail-logging, check: trail_logging, severity: critical }
  - { id: sse-kms, check: sse_kms, severity: high }
  - { id: log-file-validation, check: log_file_validation, severity: high }
  - { id: management-events, check: management_events, severity: high }
  - { id: retention, check: retention, severity: high, min_days: 365 }
  - { id: bucket-not-public, check: bucket_not_public, severity: critical }
";

struct World {
    org: Organization,
    org_trail_arn: String,
    log_archive: Lab,
    stopped: Lab,
    roleless: String,
    suspended: String,
    /// Every ACTIVE member with the audit role.
    members: Vec<String>,
    dir: tempfile::TempDir,
}

impl World {
    async fn build() -> World {
        let org = Organization::create(trailsim()).await;
        let unit = org.add_unit("Workloads").await;
        let archive_id = org.add_account("log-archive", None).await;
        let log_archive =
            Lab::build_in(org.enter_with_role(&archive_id).await, Options::default()).await;
        let stopped_id = org.add_account("stopped", Some(&unit)).await;
        let stopped =
            Lab::build_in(org.enter_with_role(&stopped_id).await, Options::default()).await;
        stopped.stop_logging().await;
        let roleless = org.add_account("no-role", Some(&unit)).await;
        let suspended = org.add_account("closed", None).await;
        org.enter_with_role(&suspended).await;
        org.close(&suspended).await;
        let mut members = vec![archive_id, stopped_id];
        for n in 0..18 {
            let unit = (n % 2 == 0).then_some(unit.as_str());
            let id = org.add_account(&format!("member-{n}"), unit).await;
            org.enter_with_role(&id).await;
            members.push(id);
        }
        members.sort();

        let org_trail_arn = org.start_trail_into(&log_archive).await;
        World {
            org,
            org_trail_arn,
            log_archive,
            stopped,
            roleless,
            suspended,
            members,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, port: u16) -> std::path::PathBuf {
        self.config_with(
            port,
            "*/2 * * * * *",
            "*/5 * * * * *",
            "*/3 * * * * *",
            "state",
        )
    }

    fn config_with(
        &self,
        port: u16,
        trails: &str,
        posture: &str,
        refresh: &str,
        state: &str,
    ) -> std::path::PathBuf {
        let dir = self.dir.path();
        std::fs::write(dir.join("policies.yaml"), POLICIES).unwrap();
        let path = dir.join("trailwarden.yaml");
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{port}\n\
                 state_dir: {state}\n\
                 log_level: info\n\
                 aws:\n  regions: [us-east-1]\n  endpoint_url: {}\n  operation_timeout: 10s\n  max_attempts: 2\n\
                 schedule:\n  trails: \"{trails}\"\n  posture: \"{posture}\"\n  bucket: \"0 0 0 1 1 *\"\n\
                 accounts:\n  organization:\n    refresh: \"{refresh}\"\n  role:\n    arn: \"arn:aws:iam::{{account}}:role/{AUDIT_ROLE}\"\n    external_id: {EXTERNAL_ID}\n  concurrency: 4\n\
                 policies: policies.yaml\n",
                trailsim()
            ),
        )
        .unwrap();
        path
    }
}

fn findings(out: &serde_json::Value) -> Vec<(String, String, String, String)> {
    out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("policy"), s("account"), s("resource"), s("status"))
        })
        .collect()
}

fn logging(metrics: &str, account: &str, trail: &str) -> Option<f64> {
    metric_value(
        metrics,
        "trailwarden_trail_logging",
        &[("account", account), ("trail", trail)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_from_one_deployment() {
    let world = World::build().await;
    let management = world.org.management.id.clone();
    let config = world.config(free_port());

    // The management account cannot read the log archive's bucket: the owner (found by its
    // ListBuckets) must read it.
    trailsim_control(
        "/_trailsim/faults",
        &serde_json::json!({"operation": "GetBucketEncryption", "kind": "access_denied",
                            "account": management, "seconds": 900}),
    );

    // --- check: every account once, the organization trail judged once.
    let (code, out) = check_with(&world.org.management, &config);
    let watched: BTreeSet<&str> = out["accounts"]["watched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let mut expected: BTreeSet<&str> = world.members.iter().map(String::as_str).collect();
    expected.insert(&management);
    expected.insert(&world.roleless);
    assert_eq!(watched, expected, "every ACTIVE account and ours: {out:#}");
    let retired = &out["accounts"]["retired"][0];
    assert_eq!(retired["id"], world.suspended.as_str(), "{out:#}");
    assert_eq!(retired["why"], "account is SUSPENDED");
    let in_unit = out["accounts"]["watched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == world.stopped.account.id.as_str())
        .unwrap();
    assert_eq!(in_unit["ou_path"], "Root/Workloads");
    assert_eq!(in_unit["name"], "stopped");

    let all = findings(&out);
    let org_logging: Vec<_> = all
        .iter()
        .filter(|f| f.2 == world.org_trail_arn)
        .filter(|f| f.0 == "trail-logging")
        .collect();
    assert_eq!(org_logging.len(), 1, "judged once: {org_logging:?}");
    assert_eq!(org_logging[0].1, management);
    assert_eq!(org_logging[0].3, "pass");
    let failing: Vec<_> = all.iter().filter(|f| f.3 == "fail").collect();
    assert_eq!(
        failing,
        vec![&(
            "trail-logging".to_string(),
            world.stopped.account.id.clone(),
            world.stopped.trail_arn.clone(),
            "fail".to_string()
        )],
        "the stopped member's own trail, and nothing from the organization trail"
    );
    for f in all.iter().filter(|f| f.3 == "error") {
        assert_eq!(
            f.1, world.roleless,
            "only the role-less account errs: {f:?}"
        );
    }
    let roleless: Vec<_> = out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["account"] == world.roleless.as_str())
        .collect();
    assert_eq!(roleless.len(), 6, "one error per policy");
    for f in &roleless {
        assert_eq!(f["status"], "error");
        assert!(
            f["message"].as_str().unwrap().contains("cannot assume"),
            "{f}"
        );
    }
    // The organization trail's bucket and key were read in the log archive account.
    for policy in ["sse-kms", "retention", "bucket-not-public"] {
        let f = all
            .iter()
            .find(|f| f.0 == policy && f.2 == world.org_trail_arn)
            .unwrap();
        assert_eq!(f.3, "pass", "{policy} of the organization trail: {out:#}");
    }
    assert_eq!(code, 1, "a stopped trail fails the check");
    let _ = &world.log_archive;

    // --- the daemon: a series per member, StopLogging within one trail poll, a new account.
    let port = free_port();
    let config = world.config(port);
    let mut daemon = Daemon::start(
        &world.org.management,
        &config,
        port,
        world.dir.path().join("run.log"),
    );
    daemon.wait_until("every member sees the organization trail logging", |d| {
        let m = d.metrics();
        world
            .members
            .iter()
            .all(|a| logging(&m, a, "org") == Some(1.0))
    });
    let m = daemon.metrics();
    assert_eq!(
        metric_value(
            &m,
            "trailwarden_account_up",
            &[("account", &world.roleless)]
        ),
        Some(0.0)
    );
    for a in &world.members {
        assert_eq!(
            metric_value(&m, "trailwarden_account_up", &[("account", a)]),
            Some(1.0),
            "{a}"
        );
    }
    assert_eq!(
        metric_value(&m, "trailwarden_accounts", &[("state", "retired")]),
        Some(1.0)
    );
    daemon.wait_until("the first evaluation over every account", |d| {
        d.status()["accounts"]["watched"].is_array()
    });
    let status = daemon.status();
    let unreachable: Vec<_> = status["accounts"]["watched"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["error"].is_null())
        .collect();
    assert_eq!(unreachable.len(), 1, "{status:#}");
    assert!(
        unreachable[0]["error"]
            .as_str()
            .unwrap()
            .contains(AUDIT_ROLE)
    );

    let polls = |d: &Daemon| {
        metric_value(
            &d.metrics(),
            "trailwarden_poll_duration_seconds_count",
            &[("poller", "trails")],
        )
        .unwrap_or(0.0)
    };
    aws_sdk_cloudtrail::Client::new(&world.org.sdk)
        .stop_logging()
        .name(&world.org_trail_arn)
        .send()
        .await
        .unwrap();
    let before = polls(&daemon);
    // The first poll that starts after StopLogging ends by `before + 2` at the latest.
    daemon.wait_until("two more trail polls", |d| polls(d) >= before + 2.0);
    let m = daemon.metrics();
    for a in world.members.iter().chain([&management]) {
        assert_eq!(
            logging(&m, a, "org"),
            Some(0.0),
            "{a} within one trail poll"
        );
    }

    let late = world.org.add_account("late", None).await;
    let entered = world.org.enter(&late).await;
    world.org.create_audit_role(&entered);
    daemon.wait_until("the new account is watched", |d| {
        let m = d.metrics();
        metric_value(&m, "trailwarden_account_up", &[("account", &late)]) == Some(1.0)
            && logging(&m, &late, "org") == Some(0.0)
    });
    daemon.stop();

    // --- API calls per poll, against the README's formula: a daemon whose pollers run once
    // at start only (discovery, one trail poll, one posture poll).
    let port = free_port();
    let never = "0 0 0 1 1 *";
    let config = world.config_with(port, never, never, never, "state-calls");
    // Two regions: listing trails costs the same in each account whatever their number.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("regions: [us-east-1]", "regions: [us-east-1, eu-west-1]"),
    )
    .unwrap();
    let mut daemon = Daemon::start(
        &world.org.management,
        &config,
        port,
        world.dir.path().join("calls.log"),
    );
    daemon.wait_until("one discovery, trail and posture poll", |d| {
        let m = d.metrics();
        ["accounts", "trails", "posture"].iter().all(|p| {
            metric_value(
                &m,
                "trailwarden_poll_duration_seconds_count",
                &[("poller", p)],
            ) == Some(1.0)
        }) && d.status()["accounts"]["watched"].is_array()
    });
    let m = daemon.metrics();
    let calls = |operation: &str| {
        metric_value(
            &m,
            "trailwarden_aws_api_calls_total",
            &[("operation", operation), ("outcome", "success")],
        )
        .unwrap_or(0.0)
    };
    // The world: A reachable accounts (the members with the role, the late one, ours), two
    // regions, every account lists the organization trail and two list a trail of their own;
    // the root and one unit; N accounts in the organization (the role-less and the closed
    // ones too); three judged trails, each with its bucket and key (the organization trail's
    // and the log archive's own trail share a bucket, judged by two accounts).
    let a = (world.members.len() + 2) as f64;
    let r = 2.0;
    let trails = a + 2.0;
    let (units, n, b, k) = (2.0, a + 2.0, 3.0, 3.0);
    let expected = [
        // Our account needs no role; the role-less account's AssumeRole fails.
        ("AssumeRole", a - 1.0),
        ("ListTrails", a),
        ("DescribeTrails", a),
        ("GetTrailStatus", trails),
        ("GetEventSelectors", trails),
        ("DescribeConfigurationRecorderStatus", a * r),
        ("ListBuckets", a),
        ("ListRoots", 1.0),
        ("ListAccountsForParent", units),
        ("ListOrganizationalUnitsForParent", units),
        ("ListTagsForResource", n),
        ("GetBucketEncryption", b),
        ("GetBucketAcl", b),
        ("DescribeKey", k),
        ("GetKeyRotationStatus", k),
        ("ListAliases", k),
    ];
    for (operation, count) in expected {
        assert_eq!(calls(operation), count, "{operation}: {m}");
    }
    daemon.stop();

    // What the daemon calls beyond one account's permissions (deploy/iam-policy.json, kept
    // equal to the calls by tests/daemon.rs) is what deploy/aws/daemon-role.yaml adds for
    // organizations; .ci/deploy_checks.py keeps the templates to these sets.
    let one_account = support::granted_actions("deploy/iam-policy.json");
    let extra_called: BTreeSet<String> = support::called_actions(&m)
        .difference(&one_account)
        .cloned()
        .collect();
    let template =
        std::fs::read_to_string(support::manifest_dir().join("deploy/aws/daemon-role.yaml"))
            .unwrap();
    let extra_granted: BTreeSet<String> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|a| {
            a.starts_with("organizations:") || ["s3:ListAllMyBuckets", "sts:AssumeRole"].contains(a)
        })
        .map(str::to_string)
        .collect();
    assert_eq!(
        extra_called, extra_granted,
        "deploy/aws/daemon-role.yaml must grant the organization calls made"
    );
}

const BUCKET_POLICIES: &str = "policies:
  - { id: trail-logging, check: trail_logging, severity: critical }
  - { id: log-delivery-fresh, check: delivery_freshness, severity: high, max_age: 30m }
  - { id: log-integrity, check: digest_integrity, severity: critical, window: 7d }
";

/// `trailwarden hunt --trail` over the organization trail, run in the bucket's account with
/// a detection of DescribeTrails: a hit from each account in `members`, each in that
/// account's folder.
fn hunt_finds_every_member(log_archive: &Lab, trail_arn: &str, members: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let detections = dir.path().join("detections.yaml");
    std::fs::write(
        &detections,
        "detections:\n  - id: trails_described\n    severity: info\n    \
         source: cloudtrail.amazonaws.com\n    events: [DescribeTrails]\n",
    )
    .unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let out = support::trailwarden(Some(&log_archive.account))
        .env("AWS_ENDPOINT_URL", trailsim())
        .args(["hunt", "--trail", trail_arn, "--start-time", &start])
        .args(["--format", "json", "--detections"])
        .arg(&detections)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(1), "{doc}");
    let found: BTreeSet<(String, bool)> = doc["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let account = h["account"].as_str().unwrap().to_string();
            let in_own_folder = h["file"]
                .as_str()
                .unwrap()
                .contains(&format!("/{account}/"));
            (account, in_own_folder)
        })
        .collect();
    for member in members {
        assert!(
            found.contains(&(member.to_string(), true)),
            "{member}: {doc}"
        );
    }
}

/// The bucket and event history pollers over an organization: the organization trail's
/// bucket, in the log archive account, read with the log archive's role, every member's
/// folder judged; each member's event history read with its own role.
#[tokio::test(flavor = "multi_thread")]
async fn every_member_folder_and_every_event_history_from_one_deployment() {
    let org = Organization::create(trailsim()).await;
    let archive_id = org.add_account("log-archive", None).await;
    let log_archive =
        Lab::build_in(org.enter_with_role(&archive_id).await, Options::default()).await;
    let own_id = org.add_account("with-own-trail", None).await;
    let with_own = Lab::build_in(org.enter_with_role(&own_id).await, Options::default()).await;
    let plain = org.add_account("plain", None).await;
    let plain_account = org.enter_with_role(&plain).await;
    let org_trail_arn = org.start_trail_into(&log_archive).await;
    // A call in every account while the organization trail logs: one delivery puts a log
    // file in each member's folder, and the digest run signs them.
    for account in [
        &org.management,
        &log_archive.account,
        &with_own.account,
        &plain_account,
    ] {
        aws_sdk_cloudtrail::Client::new(&sdk_of(account).await)
            .describe_trails()
            .send()
            .await
            .expect("DescribeTrails");
    }
    trailsim_control("/_trailsim/deliver", &serde_json::json!({}));
    trailsim_control("/_trailsim/digest", &serde_json::json!({}));

    // `hunt` over the organization trail's bucket, as the log archive: every member's
    // folder is read, so each account's DescribeTrails is found.
    hunt_finds_every_member(
        &log_archive,
        &org_trail_arn,
        &[&org.management.id, &archive_id, &own_id, &plain],
    );

    // As in most organizations, the management account cannot read the log archive's
    // bucket: the daemon must read it with the log archive's audit role. That role may not
    // list buckets either: the bucket's owner is then configured (`bucket_owners`).
    for (operation, account) in [
        ("ListObjectsV2", &org.management.id),
        ("GetObject", &org.management.id),
        ("ListBuckets", &archive_id),
    ] {
        trailsim_control(
            "/_trailsim/faults",
            &serde_json::json!({"operation": operation, "kind": "access_denied",
                                "account": account, "seconds": 600}),
        );
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yaml"), BUCKET_POLICIES).unwrap();
    std::fs::copy(
        support::manifest_dir().join("config/detections.yaml"),
        dir.path().join("detections.yaml"),
    )
    .unwrap();
    let port = free_port();
    let config = dir.path().join("trailwarden.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\n\
             state_dir: state\n\
             log_level: info\n\
             aws:\n  regions: [us-east-1]\n  endpoint_url: {}\n  operation_timeout: 10s\n  max_attempts: 2\n\
             schedule:\n  trails: \"*/2 * * * * *\"\n  posture: \"*/3 * * * * *\"\n  events: \"*/2 * * * * *\"\n  bucket: \"*/3 * * * * *\"\n\
             accounts:\n  organization:\n    refresh: \"0 0 0 1 1 *\"\n  role:\n    arn: \"arn:aws:iam::{{account}}:role/{AUDIT_ROLE}\"\n    external_id: {EXTERNAL_ID}\n  concurrency: 2\n  bucket_owners:\n    {}: '{archive_id}'\n\
             policies: policies.yaml\n\
             detections: detections.yaml\n",
            trailsim(),
            log_archive.bucket
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&org.management, &config, port, dir.path().join("run.log"));
    let management = org.management.id.clone();
    let members = [
        management.clone(),
        archive_id.clone(),
        own_id.clone(),
        plain.clone(),
    ];
    let latest = |m: &str, account: &str, trail: &str| {
        metric_value(
            m,
            "trailwarden_trail_latest_log_timestamp_seconds",
            &[
                ("account", account),
                ("region", "us-east-1"),
                ("trail", trail),
            ],
        )
    };
    daemon.wait_until(
        "every member's folder of the organization trail read",
        |d| {
            let m = d.metrics();
            members.iter().all(|a| latest(&m, a, "org").is_some())
        },
    );
    let status_of = |d: &Daemon, policy: &str, resource: &str| {
        d.status()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["policy"] == policy && f["resource"] == resource)
            .map(|f| {
                (
                    f["account"].clone(),
                    f["status"].clone(),
                    f["message"].clone(),
                )
            })
    };
    daemon.wait_until("the organization trail's bucket judged", |d| {
        ["log-delivery-fresh", "log-integrity"]
            .iter()
            .all(|p| status_of(d, p, &org_trail_arn).is_some_and(|f| f.1 != "pending"))
    });
    for policy in ["log-delivery-fresh", "log-integrity"] {
        let (account, status, message) = status_of(&daemon, policy, &org_trail_arn).unwrap();
        assert_eq!(
            (account.as_str().unwrap(), status.as_str().unwrap()),
            (management.as_str(), "pass"),
            "{policy}, judged once by the owner over every member folder: {message}"
        );
        // A member's own trail is judged from its own bucket, read with its own role.
        daemon.wait_until("the member's own trail judged", |d| {
            status_of(d, policy, &with_own.trail_arn).is_some_and(|f| f.1 == "pass")
        });
    }
    // StopLogging in a member is read from that member's own event history.
    with_own.stop_logging().await;
    daemon.wait_until(
        "the member's StopLogging detected from its event history",
        |d| {
            metric_value(
                &d.metrics(),
                "trailwarden_tamper_events_total",
                &[
                    ("detection", "cloudtrail_stop_logging"),
                    ("account", &own_id),
                ],
            )
            .is_some_and(|n| n >= 1.0)
        },
    );
    daemon.wait_until("and its trail fails", |d| {
        status_of(d, "trail-logging", &with_own.trail_arn).is_some_and(|f| f.1 == "fail")
    });

    // SIGHUP with an account excluded: discovery runs at once and the account goes.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "accounts:\n",
            &format!("accounts:\n  exclude: ['{plain}']\n"),
        ),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    daemon.wait_until("the excluded account no longer watched", |d| {
        let m = d.metrics();
        metric_value(&m, "trailwarden_account_up", &[("account", &plain)]).is_none()
            && metric_value(&m, "trailwarden_account_up", &[("account", &own_id)]) == Some(1.0)
    });
    assert_eq!(
        metric_value(
            &daemon.metrics(),
            "trailwarden_config_last_reload_successful",
            &[]
        ),
        Some(1.0)
    );
    daemon.stop();
}
