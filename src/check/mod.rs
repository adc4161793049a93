//! `trailwarden check`: one collection and evaluation, printed as text or JSON.
//! Exit 0 when every policy passes, 1 when one fails, 2 when one could not be evaluated.

use crate::collect::objects::ReadLimits;
use crate::collect::{self, aws::Aws};
use crate::config::Config;
use crate::evaluate::{self, Finding, Status, document::TrailDocument};
use crate::posture::{Fetched, Trail, TrailEvidence, Unavailable};
use crate::publish::metrics::Metrics;
use crate::publish::status;
use crate::state::{StateStore, Store};
use crate::watch::bucket::{Inputs, read_trail_bucket};
use chrono::Utc;
use serde_json::json;
use std::collections::BTreeMap;

mod accounts;

fn reads_bucket(check: &crate::config::Check) -> bool {
    use crate::config::Check;
    matches!(
        check,
        Check::DeliveryFreshness { .. } | Check::LogCoverage { .. } | Check::DigestIntegrity { .. }
    )
}

/// One pass of the bucket poller over each trail's bucket, with a fresh state store that is
/// removed afterwards: `check` remembers nothing between runs.
/// `reader` says, per trail, whose clients read its bucket and as which account (`None`: the
/// trail is judged in another account's snapshot).
async fn read_buckets<'a>(
    config: &Config,
    snapshot: &crate::posture::Snapshot,
    now: chrono::DateTime<Utc>,
    reader: impl Fn(&Trail) -> Option<(&'a Aws, Option<&'a str>)>,
) -> BTreeMap<String, Fetched<TrailEvidence>> {
    let mut evidence = BTreeMap::new();
    let Ok(states) = &snapshot.trails else {
        return evidence;
    };
    let dir = std::env::temp_dir().join(format!("trailwarden-check-{}", std::process::id()));
    let store = match StateStore::open(&dir) {
        Ok(s) => Store::new(s),
        Err(e) => {
            for s in states {
                evidence.insert(
                    s.trail.arn.clone(),
                    Err(Unavailable::new(format!("scratch state store: {e}"))),
                );
            }
            return evidence;
        }
    };
    let b = &config.daemon.bucket;
    let limits = ReadLimits::new(
        b.max_object_size.0,
        b.read_memory.0,
        config.daemon.aws.operation_timeout.0,
    );
    for state in states.iter().filter(|s| s.trail.s3_bucket_name.is_some()) {
        let Some((aws, account)) = reader(&state.trail) else {
            continue;
        };
        let inputs = Inputs {
            aws,
            store: &store,
            settings: b,
            limits: &limits,
            detections: None,
            now,
            hole_tolerance: chrono::Duration::from_std(config.policies.coverage_params().1)
                .unwrap_or(chrono::Duration::hours(6)),
            tick: &|| {},
            notified_until: None,
        };
        let read = read_trail_bucket(&inputs, state, account).await;
        evidence.insert(state.trail.arn.clone(), read.map(|pass| pass.evidence));
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    evidence
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// A JSON array of OCSF 1.8.0 Compliance Findings, one per finding.
    Ocsf,
}

/// The findings as OCSF Compliance Findings (a JSON array), each with its policy's description.
fn print_ocsf(config: &Config, findings: &[Finding], now: chrono::DateTime<Utc>) {
    let events: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let description = (config.policies.policies.iter())
                .find(|p| p.id == f.policy)
                .and_then(|p| p.description.as_deref());
            crate::ocsf::compliance_finding(f, description, None, now, env!("CARGO_PKG_VERSION"))
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&events).expect("JSON of plain values")
    );
}

/// Runs the check and returns the process exit code.
pub async fn check(config: &Config, format: Format) -> i32 {
    if let Some(settings) = &config.daemon.accounts {
        return accounts::check_accounts(config, settings, format).await;
    }
    let metrics = Metrics::new();
    let aws = Aws::connect(&config.daemon.aws, metrics.aws_api_calls.clone()).await;
    let regions = &config.daemon.aws.regions;
    let trails = collect::collect_trails(&aws, regions).await;
    let trail_list: Vec<_> = trails
        .trails
        .as_ref()
        .map(|s| s.iter().map(|s| s.trail.clone()).collect())
        .unwrap_or_default();
    let account = trails.account.as_ref().ok().cloned();
    let posture = collect::collect_posture(&aws, regions, account.as_deref(), &trail_list).await;
    let mut snapshot = trails.snapshot(regions, Some(posture));
    let now = Utc::now();
    if config
        .policies
        .policies
        .iter()
        .any(|p| reads_bucket(&p.check))
    {
        let account = account.as_deref();
        snapshot.evidence =
            Some(read_buckets(config, &snapshot, now, |_| Some((&aws, account))).await);
    }
    let findings = evaluate::evaluate(&config.policies, &snapshot, now);
    match format {
        Format::Text => print!("{}", render_text(&findings, &trails, account.as_deref())),
        Format::Ocsf => print_ocsf(config, &findings, now),
        Format::Json => {
            let documents: Vec<_> = snapshot
                .trails
                .as_ref()
                .map(|states| {
                    states
                        .iter()
                        .map(|s| {
                            json!({"trail": s.trail.arn,
                                   "document": TrailDocument::build(s, &snapshot).value})
                        })
                        .collect()
                })
                .unwrap_or_default();
            let out = json!({
                "evaluated_at": now,
                "account": account,
                "trails": status::trail_summaries(&trails),
                "findings": status::finding_entries(&findings, None),
                "documents": documents,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("JSON of plain values")
            );
        }
    }
    exit_code(&findings)
}

/// 1 if anything fails (a definite answer), else 2 if anything could not be evaluated (or
/// is pending: not evaluable yet).
pub fn exit_code(findings: &[Finding]) -> i32 {
    if findings.iter().any(|f| f.status == Status::Fail) {
        1
    } else if findings
        .iter()
        .any(|f| matches!(f.status, Status::Error | Status::Pending))
    {
        2
    } else {
        0
    }
}

fn render_text(
    findings: &[Finding],
    trails: &collect::TrailsResult,
    account: Option<&str>,
) -> String {
    let mut out = String::new();
    let n_trails = trails.trails.as_ref().map(Vec::len).unwrap_or(0);
    out.push_str(&format!(
        "trailwarden check: account {}, {} trail(s), {} finding(s)\n\n",
        account.unwrap_or("unknown"),
        n_trails,
        findings.len()
    ));
    out.push_str(&finding_table(findings, false));
    out
}

/// The findings as aligned lines (status, severity, [account,] policy, resource, message),
/// then the counts by status.
fn finding_table(findings: &[Finding], with_account: bool) -> String {
    let mut out = String::new();
    let policy_width = findings.iter().map(|f| f.policy.len()).max().unwrap_or(6);
    let resource_width = findings
        .iter()
        .map(|f| f.resource_name.len())
        .max()
        .unwrap_or(8);
    for f in findings {
        let account = if with_account {
            format!("{:<12}  ", f.account)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<5}  {:<8}  {account}{:<pw$}  {:<rw$}  {}\n",
            f.status.as_str().to_uppercase(),
            f.severity.as_str(),
            f.policy,
            f.resource_name,
            f.message,
            pw = policy_width,
            rw = resource_width,
        ));
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    out.push_str(&format!(
        "\n{} passed, {} failed, {} could not be evaluated, {} pending\n",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Error),
        count(Status::Pending)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;

    fn f(status: Status) -> Finding {
        Finding {
            policy: "p".into(),
            severity: Severity::High,
            status,
            account: String::new(),
            region: String::new(),
            resource: "r".into(),
            resource_name: "r".into(),
            message: String::new(),
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&[f(Status::Pass)]), 0);
        assert_eq!(exit_code(&[f(Status::Pass), f(Status::Error)]), 2);
        assert_eq!(exit_code(&[f(Status::Error), f(Status::Fail)]), 1);
        assert_eq!(exit_code(&[f(Status::Pass), f(Status::Pending)]), 2);
        assert_eq!(exit_code(&[]), 0);
    }
}
