//! Sharded replicas over one organization (issue 14), against trailsim: 30 accounts, an
//! organization trail in the management account writing to a log archive account's bucket.
//!
//! - `check` as 3 shards watches every account exactly once, judges the organization trail
//!   once (its bucket read with the log archive's role, whichever shard holds that account),
//!   and gives each account its own verdicts once.
//! - Resizing to 4 moves about a quarter of the accounts, nearly all to the new shard, and
//!   no shard holds more than 8 (an even share, 7.5, and 5 % / 3, rounded up).
//! - 3 daemons, their ordinals from StatefulSet-style hostnames, export their shard and split
//!   `trailwarden_account_up` between them without overlap.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use support::lab::{Lab, Options, check_with_args};
use support::organization::{AUDIT_ROLE, EXTERNAL_ID, Organization};
use support::{Daemon, free_port, metric_value, trailsim, trailsim_control};

const POLICIES: &str = "policies:
  - { id: trail-logging, check: trail_logging, severity: critical }
  - { id: sse-kms, check: sse_kms, severity: high }
  - { id: management-events, check: management_events, severity: high }
  - { id: retention, check: retention, severity: high, min_days: 365 }
  - { id: bucket-not-public, check: bucket_not_public, severity: critical }
";

const ACCOUNTS: usize = 30;

struct World {
    org: Organization,
    org_trail_arn: String,
    /// Every account of the organization, the management account's included.
    accounts: BTreeSet<String>,
    /// The organization trail's bucket, and the log archive account that owns it.
    bucket: String,
    archive: String,
    dir: tempfile::TempDir,
}

impl World {
    async fn build() -> World {
        let org = Organization::create(trailsim()).await;
        let archive_id = org.add_account("log-archive", None).await;
        let log_archive =
            Lab::build_in(org.enter_with_role(&archive_id).await, Options::default()).await;
        let mut members = Vec::new();
        for n in 0..ACCOUNTS - 2 {
            members.push(org.add_account(&format!("member-{n}"), None).await);
        }
        // The audit role through the AWS CLI, several at a time: each is a process.
        let entered = futures_util::future::join_all(members.iter().map(|id| org.enter(id))).await;
        std::thread::scope(|s| {
            for chunk in entered.chunks(7) {
                let org = &org;
                s.spawn(move || chunk.iter().for_each(|m| org.create_audit_role(m)));
            }
        });
        let org_trail_arn = org.start_trail_into(&log_archive).await;
        // The management account cannot read the log archive's bucket, as in most
        // organizations: whichever shard judges the organization trail must read it with the
        // log archive's role, even when another shard watches that account.
        trailsim_control(
            "/_trailsim/faults",
            &serde_json::json!({"operation": "GetBucketEncryption", "kind": "access_denied",
                                "account": org.management.id, "seconds": 900}),
        );
        let mut accounts: BTreeSet<String> = members.into_iter().collect();
        accounts.insert(archive_id.clone());
        accounts.insert(org.management.id.clone());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
        World {
            org,
            org_trail_arn,
            accounts,
            bucket: log_archive.bucket.clone(),
            archive: archive_id,
            dir,
        }
    }

    /// A configuration named `name`; each daemon has its own port and state.
    fn write_config(&self, name: &str, port: u16) -> std::path::PathBuf {
        let (bucket, archive) = (&self.bucket, &self.archive);
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{port}\n\
                 state_dir: state-{name}\n\
                 log_level: info\n\
                 aws:\n  regions: [us-east-1]\n  endpoint_url: {}\n  operation_timeout: 10s\n  max_attempts: 2\n\
                 schedule:\n  trails: \"*/3 * * * * *\"\n  posture: \"*/5 * * * * *\"\n  bucket: \"0 0 0 1 1 *\"\n\
                 accounts:\n  organization:\n    refresh: \"0 0 0 1 1 *\"\n  role:\n    arn: \"arn:aws:iam::{{account}}:role/{AUDIT_ROLE}\"\n    external_id: {EXTERNAL_ID}\n  concurrency: 4\n  bucket_owners:\n    {bucket}: '{archive}'\n\
                 policies: policies.yaml\n",
                trailsim()
            ),
        )
        .unwrap();
        path
    }

    /// `check` as each of `total` shards, at once.
    fn check_shards(&self, total: u32) -> Vec<Value> {
        let config = self.write_config("check", free_port());
        std::thread::scope(|s| {
            let runs: Vec<_> = (0..total)
                .map(|ordinal| {
                    let config = &config;
                    s.spawn(move || {
                        let (ordinal, total) = (ordinal.to_string(), total.to_string());
                        let args = [
                            "--shard",
                            ordinal.as_str(),
                            "--total-shards",
                            total.as_str(),
                        ];
                        let (code, out) = check_with_args(&self.org.management, config, &args);
                        assert_eq!(
                            code, 0,
                            "shard {ordinal} of {total}: every policy passes: {out:#}"
                        );
                        out
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        })
    }
}

fn watched(out: &Value) -> BTreeSet<String> {
    out["accounts"]["watched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// Each account's shard, checking that no account is on two.
fn placement(shards: &[Value]) -> BTreeMap<String, usize> {
    let mut placed = BTreeMap::new();
    for (ordinal, out) in shards.iter().enumerate() {
        for account in watched(out) {
            if let Some(other) = placed.insert(account.clone(), ordinal) {
                panic!("{account} watched by shards {other} and {ordinal}");
            }
        }
    }
    placed
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_watch_every_account_once_and_a_resize_moves_about_a_quarter() {
    let world = World::build().await;

    // --- 3 shards.
    let three = world.check_shards(3);
    let placed = placement(&three);
    assert_eq!(
        placed.keys().cloned().collect::<BTreeSet<_>>(),
        world.accounts,
        "every account watched"
    );
    for (ordinal, out) in three.iter().enumerate() {
        assert_eq!(out["shard"]["ordinal"], ordinal);
        assert_eq!(out["shard"]["total"], 3);
        let here = watched(out).len();
        assert!(here > 0, "shard {ordinal} watches nothing");
        assert_eq!(out["accounts"]["on_other_shards"], ACCOUNTS - here);
    }
    // Findings: the organization trail's once, on one shard, with its bucket and key read
    // (the log archive's role: the management account is denied); each account's once.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for out in &three {
        for f in out["findings"].as_array().unwrap() {
            let key = (
                f["policy"].as_str().unwrap().to_string(),
                f["resource"].as_str().unwrap().to_string(),
            );
            *seen.entry(key).or_default() += 1;
            assert_eq!(f["status"], "pass", "{f}");
        }
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "a finding on two shards: {seen:?}"
    );
    for policy in ["trail-logging", "sse-kms", "retention", "bucket-not-public"] {
        assert!(
            seen.contains_key(&(policy.to_string(), world.org_trail_arn.clone())),
            "{policy} of the organization trail judged: {seen:?}"
        );
    }
    let judged_on = three
        .iter()
        .position(|out| {
            out["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["resource"] == world.org_trail_arn.as_str())
        })
        .unwrap();
    eprintln!(
        "the organization trail judged on shard {judged_on}; its bucket's owner watched by shard {}",
        placed[&world.archive]
    );
    for account in &world.accounts {
        let key = (
            "management-events".to_string(),
            format!("account/{account}"),
        );
        assert!(
            seen.contains_key(&key),
            "management events of {account}: {seen:?}"
        );
    }

    // --- 4 shards: most of what moves goes to the new shard, and not much moves. Bounded
    // loads (at most 8 of 30 per shard) move a few between the old shards too. Simulated
    // over 10,000 organizations of 30 random ids: at most 14 moved (median 9), at most 6
    // between old shards (median 1); plain hashing, for comparison, moves a quarter.
    let four = world.check_shards(4);
    let resized = placement(&four);
    assert_eq!(resized.len(), ACCOUNTS);
    let moved: Vec<&String> = placed
        .iter()
        .filter(|(account, ordinal)| resized[*account] != **ordinal)
        .map(|(account, _)| account)
        .collect();
    let between_old = moved.iter().filter(|a| resized[**a] != 3).count();
    assert!(
        between_old <= 7,
        "{between_old} of {} moves between old shards",
        moved.len()
    );
    assert!(
        moved.len() <= ACCOUNTS / 2,
        "{} of {ACCOUNTS} moved",
        moved.len()
    );
    let mut load = [0usize; 4];
    for ordinal in resized.values() {
        load[*ordinal] += 1;
    }
    assert!(
        load.iter().all(|&l| l <= 8),
        "{load:?}: over 7.5 and 5 % / 3, rounded up"
    );

    // --- 3 daemons, each its ordinal from its hostname.
    let mut daemons = Vec::new();
    for ordinal in 0..3 {
        let port = free_port();
        let name = format!("trailwarden-{ordinal}");
        let config = world.write_config(&name, port);
        daemons.push(Daemon::start_with_env(
            &world.org.management,
            &config,
            port,
            world.dir.path().join(format!("{name}.log")),
            &[
                ("HOSTNAME", name.as_str()),
                ("TRAILWARDEN_SHARD", "hostname"),
                ("TRAILWARDEN_TOTAL_SHARDS", "3"),
            ],
        ));
    }
    let mut up: BTreeMap<String, usize> = BTreeMap::new();
    for (ordinal, d) in daemons.iter_mut().enumerate() {
        let mine: Vec<&String> = placed
            .iter()
            .filter(|(_, o)| **o == ordinal)
            .map(|(a, _)| a)
            .collect();
        d.wait_until("its accounts reached", |d| {
            let m = d.metrics();
            mine.iter()
                .all(|a| metric_value(&m, "trailwarden_account_up", &[("account", a)]) == Some(1.0))
        });
        let m = d.metrics();
        assert_eq!(
            metric_value(&m, "trailwarden_shard_ordinal", &[]),
            Some(ordinal as f64)
        );
        assert_eq!(metric_value(&m, "trailwarden_total_shards", &[]), Some(3.0));
        assert_eq!(
            metric_value(&m, "trailwarden_accounts", &[("state", "other_shards")]),
            Some((ACCOUNTS - mine.len()) as f64)
        );
        // What TrailwardenAccountWatchedTwice and TrailwardenAccountsUnwatched join on.
        for account in &mine {
            assert!(
                m.lines().any(|l| l.starts_with("trailwarden_account_info{")
                    && l.contains(&format!("account=\"{account}\""))),
                "shard {ordinal}: no trailwarden_account_info for {account}"
            );
        }
        assert_eq!(
            metric_value(&m, "trailwarden_accounts", &[("state", "watched")]),
            Some(mine.len() as f64)
        );
        for line in m
            .lines()
            .filter(|l| l.starts_with("trailwarden_account_up{"))
        {
            let account = line.split('"').nth(1).unwrap().to_string();
            assert_eq!(placed[&account], ordinal, "shard {ordinal} polls {account}");
            *up.entry(account).or_default() += 1;
        }
    }
    assert_eq!(up.len(), ACCOUNTS, "every account polled: {up:?}");
    assert!(
        up.values().all(|n| *n == 1),
        "an account polled twice: {up:?}"
    );
    for mut d in daemons {
        d.stop();
    }
}

/// A shard that owns none of the accounts still answers: it publishes an empty verdict,
/// becomes ready (a StatefulSet pod would otherwise never be), and says where the accounts
/// are.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_without_accounts_is_ready_and_says_so() {
    use trailwarden::plan::shards::{Placement, Shard};
    let account = support::lab::isolated_account_at(trailsim()).await;
    // The daemon's roster is this account and its own: over 2 shards neither fills one (at
    // most 2 each), so the placement is hashing alone, as over this account by itself.
    let ordinal = (0..2)
        .find(|o| {
            let shard = Shard::new(*o, 2).unwrap();
            !Placement::over(shard, [account.id.as_str()]).owns_account(&account.id)
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    let port = free_port();
    let config = dir.path().join("trailwarden.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\n\
             state_dir: state\n\
             aws:\n  regions: [us-east-1]\n  endpoint_url: {}\n\
             accounts:\n  list: ['{}']\n  role:\n    arn: \"arn:aws:iam::{{account}}:role/{AUDIT_ROLE}\"\n\
             policies: policies.yaml\n",
            trailsim(),
            account.id
        ),
    )
    .unwrap();
    let ordinal = ordinal.to_string();
    let mut d = Daemon::start_with_env(
        &account,
        &config,
        port,
        dir.path().join("run.log"),
        &[
            ("TRAILWARDEN_SHARD", &ordinal),
            ("TRAILWARDEN_TOTAL_SHARDS", "2"),
        ],
    );
    d.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    let m = d.metrics();
    assert_eq!(
        metric_value(&m, "trailwarden_accounts", &[("state", "watched")]),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&m, "trailwarden_accounts", &[("state", "other_shards")]),
        Some(1.0)
    );
    let status = d.status();
    assert_eq!(status["accounts"]["on_other_shards"], 1, "{status:#}");
    assert_eq!(
        status["findings"].as_array().map(Vec::len),
        Some(0),
        "{status:#}"
    );
    d.stop();
}
