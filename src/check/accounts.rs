//! `check` over many accounts (the `accounts` section): discovery, one collection per
//! account, an organization trail judged once, and the findings of every account together.

use super::{Format, exit_code, finding_table, print_ocsf, read_buckets, reads_bucket};
use crate::collect::accounts::{
    BucketRead, PostureOfAll, bucket_reads, posture_of_all, reach_all, snapshots, trails_of_all,
};
use crate::collect::{account, aws::Aws, organization};
use crate::config::{AccountSettings, Config};
use crate::evaluate::Finding;
use crate::evaluate::accounts::{evaluate_accounts, unreachable};
use crate::plan::accounts::{
    OrgAccount, Roster, memberships, next_roster, on_shard, owners_elsewhere, placement,
};
use crate::publish::metrics::Metrics;
use crate::publish::status;
use chrono::Utc;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn check_accounts(config: &Config, settings: &AccountSettings, format: Format) -> i32 {
    let metrics = Metrics::new();
    let own = Arc::new(Aws::connect(&config.daemon.aws, metrics.aws_api_calls.clone()).await);
    let own_id = account::caller_account(&own).await.ok();
    let discovered = match &settings.list {
        Some(list) => Ok(list.iter().map(|a| OrgAccount::listed(&a.0)).collect()),
        None => organization::discover(&own)
            .await
            .map_err(|e| format!("cannot list the organization's accounts: {e}")),
    };
    let now = Utc::now();
    let roster = next_roster(
        Some(settings),
        own_id.as_deref(),
        discovered,
        &Roster::default(),
        now,
    );
    let shard = config.shard;
    let placed = placement(&roster, shard);
    let mine = on_shard(&roster, &placed);
    let reach = reach_all(&own, settings, &mine, &[]).await;
    // Clients that read buckets: this shard's accounts', and bucket owners watched elsewhere.
    let mut readers = reach.clone();
    readers.extend(
        reach_all(
            &own,
            settings,
            &owners_elsewhere(settings, &roster, &placed),
            &[],
        )
        .await,
    );
    let regions = &config.daemon.aws.regions;
    let trails = trails_of_all(&reach, regions, settings.concurrency).await;
    let PostureOfAll {
        postures,
        bucket_readers,
    } = posture_of_all(&readers, regions, settings, &trails, &placed).await;
    let mut accounts = snapshots(&trails, &postures, regions, &memberships(settings, &roster));
    if config
        .policies
        .policies
        .iter()
        .any(|p| reads_bucket(&p.check))
    {
        let reads: BTreeMap<String, BucketRead> =
            bucket_reads(&readers, &trails, &bucket_readers, &placed)
                .into_iter()
                .map(|r| (r.state.trail.arn.clone(), r))
                .collect();
        for a in &mut accounts {
            let Ok(snapshot) = &a.snapshot else { continue };
            let here = a.account.as_str();
            let evidence = read_buckets(config, snapshot, now, |trail| {
                let read = reads.get(&trail.arn).filter(|r| r.judge == here)?;
                Some((read.aws.as_ref(), read.as_account.as_deref()))
            })
            .await;
            if let Ok(snapshot) = &mut a.snapshot {
                snapshot.evidence = Some(evidence);
            }
        }
    }
    let findings = evaluate_accounts(&config.policies, &accounts, now, &placed);
    let failed = unreachable(&accounts);
    match format {
        Format::Text => print!("{}", render_text(&findings, &mine, &failed)),
        Format::Ocsf => print_ocsf(config, &findings, now),
        Format::Json => {
            let out = json!({
                "evaluated_at": now,
                "account": own_id,
                "accounts": status::accounts_json(&mine, &failed),
                "shard": {"ordinal": shard.ordinal, "total": shard.total},
                "findings": status::finding_entries(&findings, None),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("JSON of plain values")
            );
        }
    }
    if roster.discovery_error.is_some() {
        // The accounts are unknown: whatever else passed, the answer is incomplete.
        return exit_code(&findings).max(2);
    }
    exit_code(&findings)
}

fn render_text(findings: &[Finding], roster: &Roster, failed: &BTreeMap<&str, &str>) -> String {
    let mut out = format!(
        "trailwarden check: {} account(s) watched, {} retired, {} finding(s)\n",
        roster.watched.len(),
        roster.retired.len(),
        findings.len()
    );
    if !roster.elsewhere.is_empty() {
        out.push_str(&format!(
            "{} more account(s) are watched by the other shards\n",
            roster.elsewhere.len()
        ));
    }
    if let Some(e) = &roster.discovery_error {
        out.push_str(&format!("discovery failed: {e}\n"));
    }
    for (id, why) in failed {
        out.push_str(&format!("account {id} could not be checked: {why}\n"));
    }
    for r in roster.retired.values() {
        out.push_str(&format!(
            "account {} retired at {} ({}): not required after it left\n",
            r.account.id,
            r.left_at.to_rfc3339(),
            r.why
        ));
    }
    out.push('\n');
    out.push_str(&finding_table(findings, true));
    out
}
