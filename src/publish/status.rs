//! The `/status` JSON document: per-resource detail that does not belong in metric labels.

use crate::collect::TrailsResult;
use crate::evaluate::Finding;
use crate::plan::accounts::Roster;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct StatusDocument {
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// When the findings below were evaluated; null before the first evaluation.
    pub evaluated_at: Option<DateTime<Utc>>,
    pub account: Option<String>,
    /// With an `accounts` section: each watched account (name, OU path, tags, whether it
    /// could be reached and why not) and the retired ones (when and why they left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<serde_json::Value>,
    pub trails: Vec<TrailSummary>,
    pub findings: Vec<FindingEntry>,
    /// Tamper detections from event history (newest first).
    pub events: Vec<serde_json::Value>,
    /// What each trail's bucket shows: per region newest and oldest log, holes, digest
    /// validation progress, and integrity verdicts (newest first).
    pub buckets: Vec<serde_json::Value>,
    pub pollers: Vec<PollerEntry>,
    /// With `sigma:` files: the rules loaded (id, title, level, author, file) and those that
    /// could not be, with their file and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma: Option<serde_json::Value>,
    /// With `aws_config.conformance_pack`: the verdicts Config last accepted (policy, account,
    /// compliance, annotation, when), and per account the policies without a rule in the pack
    /// or why the pack could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_config: Option<serde_json::Value>,
    /// With a `remediation` section: dry run or not, whether this replica writes, and the
    /// decisions (newest first): action, target, trigger (the finding, the event and its
    /// actor), decision, outcome, request id or error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<serde_json::Value>,
    /// With a `security_hub` section: the findings Security Hub accepted (id, compliance,
    /// when) and those it did not (id, why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_hub: Option<serde_json::Value>,
    /// The detections of `events` as OCSF Detection Findings, one per detection
    /// (`GET /findings?format=ocsf`; not part of `/status`).
    #[serde(skip)]
    pub ocsf_events: Vec<serde_json::Value>,
    /// Each policy's description, for the OCSF findings' titles (not part of `/status`).
    #[serde(skip)]
    pub descriptions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrailSummary {
    pub arn: String,
    pub name: String,
    pub account: String,
    pub home_region: String,
    /// Null when GetTrailStatus failed (see `status_error`).
    pub is_logging: Option<bool>,
    pub multi_region: bool,
    pub organization_trail: bool,
    pub kms_key_id: Option<String>,
    pub log_file_validation: bool,
    pub bucket: Option<String>,
    pub latest_delivery_time: Option<DateTime<Utc>>,
    pub latest_delivery_error: Option<String>,
    pub start_logging_time: Option<DateTime<Utc>>,
    pub stop_logging_time: Option<DateTime<Utc>>,
    pub status_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingEntry {
    #[serde(flatten)]
    pub finding: Finding,
    /// Since when the finding has had this status (kept across restarts).
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollerEntry {
    pub name: String,
    pub last_success: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_time: Option<DateTime<Utc>>,
    pub last_duration_seconds: Option<f64>,
}

impl PollerEntry {
    pub fn new(name: &str) -> PollerEntry {
        PollerEntry {
            name: name.to_string(),
            last_success: None,
            last_run: None,
            last_error: None,
            last_error_time: None,
            last_duration_seconds: None,
        }
    }
}

impl StatusDocument {
    pub fn new(started_at: DateTime<Utc>) -> StatusDocument {
        StatusDocument {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            evaluated_at: None,
            account: None,
            accounts: None,
            trails: Vec::new(),
            findings: Vec::new(),
            events: Vec::new(),
            buckets: Vec::new(),
            pollers: Vec::new(),
            sigma: None,
            aws_config: None,
            remediation: None,
            security_hub: None,
            ocsf_events: Vec::new(),
            descriptions: BTreeMap::new(),
        }
    }
}

pub fn trail_summaries(result: &TrailsResult) -> Vec<TrailSummary> {
    let Ok(states) = &result.trails else {
        return Vec::new();
    };
    states
        .iter()
        .map(|s| {
            let t = &s.trail;
            let status = s.status.as_ref().ok();
            TrailSummary {
                arn: t.arn.clone(),
                name: t.name.clone(),
                account: t.account.clone(),
                home_region: t.home_region.clone(),
                is_logging: status.map(|s| s.is_logging),
                multi_region: t.is_multi_region_trail,
                organization_trail: t.is_organization_trail,
                kms_key_id: t.kms_key_id.clone(),
                log_file_validation: t.log_file_validation_enabled,
                bucket: t.s3_bucket_name.clone(),
                latest_delivery_time: status.and_then(|s| s.latest_delivery_time),
                latest_delivery_error: status.and_then(|s| s.latest_delivery_error.clone()),
                start_logging_time: status.and_then(|s| s.start_logging_time),
                stop_logging_time: status.and_then(|s| s.stop_logging_time),
                status_error: s.status.as_ref().err().map(|e| e.reason.clone()),
            }
        })
        .collect()
}

/// Findings with their `since`; `since` is `None` where no state store is used (`check`).
pub fn finding_entries(findings: &[Finding], since: Option<&[DateTime<Utc>]>) -> Vec<FindingEntry> {
    findings
        .iter()
        .enumerate()
        .map(|(i, f)| FindingEntry {
            finding: f.clone(),
            since: since.and_then(|s| s.get(i).copied()),
        })
        .collect()
}

/// Each watched account with its name, OU path, tags and, when it could not be reached, why;
/// the retired ones with when and why they left (not required after that).
pub fn accounts_json(roster: &Roster, unreachable: &BTreeMap<&str, &str>) -> serde_json::Value {
    let watched: Vec<_> = roster
        .watched
        .values()
        .map(|m| {
            let a = &m.account;
            json!({
                "id": a.id,
                "name": a.name,
                "ou_path": a.ou_path,
                "tags": a.tags,
                "own": m.own,
                "watched_since": m.since,
                "error": unreachable.get(a.id.as_str()),
            })
        })
        .collect();
    let retired: Vec<_> = roster
        .retired
        .values()
        .map(|r| {
            json!({
                "id": r.account.id,
                "name": r.account.name,
                "ou_path": r.account.ou_path,
                "left_at": r.left_at,
                "why": r.why,
                "required": format!("not after {}", r.left_at.to_rfc3339()),
            })
        })
        .collect();
    json!({
        "watched": watched,
        "retired": retired,
        "on_other_shards": roster.elsewhere.len(),
        "discovered_at": roster.discovered_at,
        "discovery_error": roster.discovery_error,
    })
}
