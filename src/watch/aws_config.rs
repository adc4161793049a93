//! The `aws_config` poller: each account's verdicts sent to the conformance pack's process
//! checks (`plan/config_evaluations.rs` decides what is due), and `/status.aws_config` saying
//! what was sent, which policies have no rule in the pack, and what failed.

use super::Watch;
use crate::collect::aws::Aws;
use crate::collect::config_rules;
use crate::config::AwsConfigSettings;
use crate::evaluate::Finding;
use crate::plan::config_evaluations::{self, AccountVerdict, Key, Sent};
use crate::posture::Unavailable;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const AWS_CONFIG: &str = "aws_config";

/// How long an account's pack rules are used before they are read again (a rule added to
/// the pack is found within this).
const PACK_RULES_KEPT_MINUTES: i64 = 15;

/// Accounts whose evaluations are sent at a time.
const CONCURRENCY: usize = 8;

/// A pack's rules as deployed in an account, and when they were read.
type PackRules = (DateTime<Utc>, Vec<String>);

pub(super) struct ConfigWatch {
    pub(super) settings: AwsConfigSettings,
    pub(super) region: String,
    /// Only the writer of the shard sends (README "One writer").
    writer: bool,
    /// What Config last accepted, by (policy, account). Kept in memory: after a restart every
    /// verdict is sent once more, which Config takes as the same evaluation.
    sent: Mutex<BTreeMap<Key, Sent>>,
    /// Per account: the policies without a rule in the pack, or why the pack could not be read.
    accounts: Mutex<BTreeMap<String, Value>>,
    /// Each account's pack rules as deployed, with when they were read: kept
    /// `PACK_RULES_KEPT`, so a policy without a rule (always due) costs no call per run.
    pack_rules: Mutex<BTreeMap<String, PackRules>>,
    /// The managed rules compared with trailwarden's verdicts (`config_cross_check.rs`).
    pub(super) cross_check: super::config_cross_check::CrossCheck,
}

impl ConfigWatch {
    pub(super) fn new(
        settings: AwsConfigSettings,
        regions: &[String],
        writer: bool,
    ) -> ConfigWatch {
        let region = settings
            .region
            .clone()
            .or_else(|| regions.first().cloned())
            .unwrap_or_else(|| "us-east-1".into());
        ConfigWatch {
            settings,
            region,
            writer,
            sent: Mutex::new(BTreeMap::new()),
            accounts: Mutex::new(BTreeMap::new()),
            pack_rules: Mutex::new(BTreeMap::new()),
            cross_check: Default::default(),
        }
    }
}

impl Watch {
    pub async fn poll_aws_config(&self) {
        if self.aws_config.is_none() {
            return;
        }
        self.execute(
            &self.pollers.aws_config,
            super::runner::Overlap::Skip,
            self.run_aws_config(),
        )
        .await;
    }

    async fn run_aws_config(&self) -> Vec<Unavailable> {
        let Some(c) = &self.aws_config else {
            return Vec::new();
        };
        let findings: Vec<Finding> = {
            let doc = self.published.status.read();
            if doc.evaluated_at.is_none() {
                return Vec::new();
            }
            doc.findings.iter().map(|e| e.finding.clone()).collect()
        };
        let mut errors = Vec::new();
        if let Some(pack) = &c.settings.conformance_pack
            && c.writer
        {
            errors.extend(self.publish_verdicts(c, pack, &findings).await);
        }
        if c.settings.cross_check && c.cross_check_due(Utc::now()) {
            errors.extend(self.cross_check(c, &findings).await);
        }
        self.published.status.write().aws_config = Some(c.status_json());
        errors
    }

    /// The due verdicts sent to each account's pack.
    async fn publish_verdicts(
        &self,
        c: &ConfigWatch,
        pack: &str,
        findings: &[Finding],
    ) -> Vec<Unavailable> {
        let now = Utc::now();
        let verdicts = config_evaluations::account_verdicts(findings);
        let refresh =
            chrono::Duration::from_std(c.settings.refresh.0).unwrap_or(chrono::Duration::hours(24));
        let due = config_evaluations::due(&verdicts, &c.sent.lock(), now, refresh);
        let mut by_account: BTreeMap<String, Vec<(Key, AccountVerdict)>> = BTreeMap::new();
        for (key, verdict) in due {
            by_account
                .entry(key.1.clone())
                .or_default()
                .push((key, verdict));
        }
        let clients = self.account_clients();
        let policies: Vec<String> = self
            .policies
            .read()
            .policies
            .iter()
            .map(|p| p.id.clone())
            .collect();
        let runs = by_account.into_iter().map(|(account, due)| {
            let aws = clients.get(&account).cloned();
            let (policies, region) = (&policies, &c.region);
            let cached = (c.pack_rules.lock().get(&account))
                .filter(|(at, _)| now - *at < chrono::Duration::minutes(PACK_RULES_KEPT_MINUTES))
                .map(|(_, rules)| rules.clone());
            async move {
                let Some(aws) = aws else {
                    let e =
                        Unavailable::new(format!("account {account}: no clients (not reached)"));
                    return (account, Err(e), Vec::new());
                };
                let deployed = match cached {
                    Some(rules) => rules,
                    None => match config_rules::pack_rules(&aws, region, pack).await {
                        Ok(rules) => rules,
                        Err(mut e) => {
                            e.reason =
                                format!("account {account}: conformance pack {pack}: {}", e.reason);
                            return (account, Err(e), Vec::new());
                        }
                    },
                };
                send_account(&aws, region, &deployed, policies, &account, due, now).await
            }
        });
        let results: Vec<_> = futures_util::stream::iter(runs)
            .buffer_unordered(CONCURRENCY)
            // Each account done is progress: an organization-wide run is not a stall.
            .inspect(|_| self.pollers.aws_config.tick())
            .collect()
            .await;
        let mut errors = Vec::new();
        for (account, rules, sent) in results {
            let mut record = c.sent.lock();
            for (key, verdict, result) in sent {
                match result {
                    Ok(()) => {
                        self.published
                            .metrics
                            .config_evaluations
                            .with_label_values(&[verdict.compliance.as_str()])
                            .inc();
                        tracing::info!(
                            policy = %key.0, account = %key.1,
                            compliance = verdict.compliance.as_str(),
                            annotation = %verdict.annotation,
                            "verdict sent to AWS Config"
                        );
                        record.insert(key, Sent { verdict, at: now });
                    }
                    Err(e) => errors.push(e),
                }
            }
            let entry = match rules {
                Ok((deployed, unmapped)) => {
                    // A fresh entry was what this run used; a stale or missing one was just
                    // read again.
                    let kept = chrono::Duration::minutes(PACK_RULES_KEPT_MINUTES);
                    let mut cache = c.pack_rules.lock();
                    let fresh = cache.get(&account).is_some_and(|(at, _)| now - *at < kept);
                    if !fresh {
                        cache.insert(account.clone(), (now, deployed));
                    }
                    json!({"without_rule": unmapped, "error": null})
                }
                Err(e) => {
                    let entry = json!({"without_rule": null, "error": e.reason});
                    errors.push(e);
                    entry
                }
            };
            c.accounts.lock().insert(account, entry);
        }
        errors
    }
}

type Outcome = (Key, AccountVerdict, Result<(), Unavailable>);

/// One account: each due verdict sent to its policy's rule among the pack's `deployed` rules.
/// Returns the pack's rules and the policies without one, and each send.
async fn send_account(
    aws: &Aws,
    region: &str,
    deployed: &[String],
    policies: &[String],
    account: &str,
    due: Vec<(Key, AccountVerdict)>,
    now: DateTime<Utc>,
) -> (
    String,
    Result<(Vec<String>, Vec<String>), Unavailable>,
    Vec<Outcome>,
) {
    let rules = config_evaluations::deployed_rules(policies.iter().map(String::as_str), deployed);
    let mut sent = Vec::new();
    for (key, verdict) in due {
        let Some(Some(rule)) = rules.get(&key.0) else {
            continue;
        };
        let result = config_rules::put_evaluation(aws, region, rule, account, &verdict, now)
            .await
            .map_err(|mut e| {
                e.reason = format!("account {account}: rule {rule}: {}", e.reason);
                e
            });
        sent.push((key, verdict, result));
    }
    let without_rule = rules
        .into_iter()
        .filter(|(_, rule)| rule.is_none())
        .map(|(policy, _)| policy)
        .collect();
    (
        account.to_string(),
        Ok((deployed.to_vec(), without_rule)),
        sent,
    )
}

impl ConfigWatch {
    pub(super) fn status_json(&self) -> Value {
        let sent: Vec<Value> = self
            .sent
            .lock()
            .iter()
            .map(|((policy, account), s)| {
                json!({
                    "policy": policy,
                    "account": account,
                    "compliance": s.verdict.compliance.as_str(),
                    "annotation": s.verdict.annotation,
                    "sent_at": s.at,
                })
            })
            .collect();
        json!({
            "conformance_pack": self.settings.conformance_pack,
            "region": self.region,
            "writer": self.writer,
            "accounts": *self.accounts.lock(),
            "sent": sent,
            "cross_check": self.cross_check_json(),
        })
    }
}
