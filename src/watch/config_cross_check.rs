//! AWS Config's managed CloudTrail rules, read back in each account and compared with
//! trailwarden's verdicts (`evaluate/config_rules.rs`): where they disagree, the metric
//! `trailwarden_config_rule_disagreements` and `/status.aws_config.cross_check` say so. Reads
//! only: every replica may do it.

use super::Watch;
use super::aws_config::ConfigWatch;
use crate::collect::config_rules::{managed_rules, rule_results};
use crate::evaluate::Finding;
use crate::evaluate::config_rules::{Comparison, MANAGED_RULES, RuleResults, checks_of, compare};
use crate::posture::Unavailable;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Accounts read at a time.
const CONCURRENCY: usize = 8;

#[derive(Default)]
pub(super) struct CrossCheck {
    last: Mutex<Option<DateTime<Utc>>>,
    comparisons: Mutex<Vec<Comparison>>,
    /// Accounts whose rules could not be read, and why.
    errors: Mutex<BTreeMap<String, String>>,
}

impl ConfigWatch {
    /// Whether `cross_check_interval` has passed since the last cross-check.
    pub(super) fn cross_check_due(&self, now: DateTime<Utc>) -> bool {
        let interval = chrono::Duration::from_std(self.settings.cross_check_interval.0)
            .unwrap_or(chrono::Duration::minutes(15));
        self.cross_check
            .last
            .lock()
            .is_none_or(|t| now - t >= interval)
    }

    pub(super) fn cross_check_json(&self) -> Value {
        if !self.settings.cross_check {
            return Value::Null;
        }
        json!({
            "checked_at": *self.cross_check.last.lock(),
            "comparisons": *self.cross_check.comparisons.lock(),
            "errors": *self.cross_check.errors.lock(),
        })
    }
}

impl Watch {
    pub(super) async fn cross_check(
        &self,
        c: &ConfigWatch,
        findings: &[Finding],
    ) -> Vec<Unavailable> {
        let now = Utc::now();
        let clients = self.account_clients();
        let region = c.region.clone();
        let runs = clients.into_iter().map(|(account, aws)| {
            let region = region.clone();
            async move {
                let rules = match managed_rules(&aws, &region).await {
                    Ok(r) => r,
                    Err(e) => return (account, Err(e)),
                };
                let mut read = Vec::new();
                for (rule, source) in rules.into_iter().filter(|(_, s)| checks_of(s).is_some()) {
                    match rule_results(&aws, &region, &rule).await {
                        Ok(results) => read.push(RuleResults {
                            rule,
                            source_identifier: source,
                            account: account.clone(),
                            results,
                        }),
                        Err(e) => return (account, Err(e)),
                    }
                }
                (account, Ok(read))
            }
        });
        let read: Vec<_> = futures_util::stream::iter(runs)
            .buffer_unordered(CONCURRENCY)
            // Each account done is progress: an organization-wide run is not a stall.
            .inspect(|_| self.pollers.aws_config.tick())
            .collect()
            .await;
        let mut results = Vec::new();
        let mut failed = BTreeMap::new();
        let mut errors = Vec::new();
        for (account, r) in read {
            match r {
                Ok(r) => results.extend(r),
                Err(mut e) => {
                    e.reason = format!("account {account}: {}", e.reason);
                    failed.insert(account, e.reason.clone());
                    errors.push(e);
                }
            }
        }
        let policies = self.policies.read().clone();
        let comparisons = compare(&policies, findings, &results);
        for (source, name, _, _) in MANAGED_RULES {
            let disagreeing = (comparisons.iter())
                .filter(|c| c.source_identifier == source && c.disagrees)
                .count();
            self.published
                .metrics
                .config_rule_disagreements
                .with_label_values(&[name])
                .set(disagreeing as i64);
        }
        let before: Vec<(String, String)> = (c.cross_check.comparisons.lock().iter())
            .filter(|x| x.disagrees)
            .map(|x| (x.rule.clone(), x.account.clone()))
            .collect();
        for x in comparisons.iter().filter(|x| x.disagrees) {
            if !before.contains(&(x.rule.clone(), x.account.clone())) {
                tracing::warn!(
                    rule = %x.rule, account = %x.account, config = %x.config,
                    trailwarden = x.trailwarden, failing = ?x.failing,
                    "AWS Config's rule disagrees with trailwarden"
                );
            }
        }
        *c.cross_check.comparisons.lock() = comparisons;
        *c.cross_check.errors.lock() = failed;
        *c.cross_check.last.lock() = Some(now);
        errors
    }
}
