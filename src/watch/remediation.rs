//! The `remediation` poller: after each evaluation and each batch of detections, the failing
//! findings of policies with `remediate: true` are put right, or in dry run only reported,
//! as `plan/remediation.rs` decides. Each decision is logged, counted and listed in
//! `/status.remediation` once until it changes; each action's request id is remembered so
//! that its own CloudTrail event is not detected as tampering.

use super::Watch;
use super::runner::Overlap;
use crate::collect::remediation::act;
use crate::config::RemediationSettings;
use crate::plan::remediation::{self, Action, ActionKind, Change, Decision, History, SeenEvent};
use crate::posture::{Fetched, KeyPosture, TrailState, Unavailable};
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const REMEDIATION: &str = "remediation";

/// How many decisions `/status.remediation` lists.
const LISTED: usize = 100;

/// How long the daemon's own request ids are kept: longer than any record takes to reach
/// event history or the bucket.
const OWN_REQUESTS_KEPT: i64 = 24;

pub(super) struct RemediationWatch {
    settings: RemediationSettings,
    writer: bool,
    history: Mutex<History>,
    /// Request ids of the actions taken, with when.
    own_requests: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// The change behind each action asked for, once seen (it may leave `/status.events`).
    changes: Mutex<BTreeMap<(ActionKind, String), Change>>,
    /// The decisions reported, newest first.
    listed: Mutex<VecDeque<Value>>,
}

impl RemediationWatch {
    pub(super) fn new(settings: RemediationSettings, writer: bool) -> RemediationWatch {
        RemediationWatch {
            settings,
            writer,
            history: Mutex::new(History::default()),
            own_requests: Mutex::new(BTreeMap::new()),
            changes: Mutex::new(BTreeMap::new()),
            listed: Mutex::new(VecDeque::new()),
        }
    }

    /// Every action at zero for every outcome, so a rate reads 0 rather than nothing.
    pub(super) fn zero_series(&self, metrics: &crate::publish::metrics::Metrics) {
        for kind in remediation::ActionKind::ALL {
            for outcome in ["done", "failed", "dry_run"] {
                metrics
                    .remediations
                    .with_label_values(&[kind.as_str(), outcome]);
            }
        }
    }

    fn status_json(&self) -> Value {
        json!({
            "dry_run": self.settings.dry_run,
            "writer": self.writer,
            "decisions": self.listed.lock().iter().collect::<Vec<_>>(),
        })
    }
}

impl Watch {
    /// The request ids of the daemon's own remediation calls (for the detections).
    pub(super) fn own_requests(&self) -> BTreeSet<String> {
        let Some(r) = &self.remediation else {
            return BTreeSet::new();
        };
        let mut own = r.own_requests.lock();
        let now = Utc::now();
        own.retain(|_, at| now - *at < Duration::hours(OWN_REQUESTS_KEPT));
        own.keys().cloned().collect()
    }

    /// One remediation run over the latest findings; re-collects what it changed.
    pub(super) async fn remediate(&self) {
        if self.remediation.is_none() {
            return;
        }
        let mut acted = false;
        self.execute(&self.pollers.remediation, Overlap::Wait, async {
            let (errors, any) = self.run_remediation().await;
            acted = any;
            errors
        })
        .await;
        if acted {
            Box::pin(self.refresh()).await;
        }
    }

    async fn run_remediation(&self) -> (Vec<Unavailable>, bool) {
        let Some(r) = &self.remediation else {
            return (Vec::new(), false);
        };
        let now = Utc::now();
        let (findings, changes) = {
            let doc = self.published.status.read();
            let Some(evaluated_at) = doc.evaluated_at else {
                return (Vec::new(), false);
            };
            let findings: Vec<_> = (doc.findings.iter())
                .map(|e| (e.finding.clone(), e.since.unwrap_or(evaluated_at)))
                .collect();
            (findings, seen_events(&doc.events))
        };
        let (trails, keys) = self.trail_states_and_keys();
        let policies = self.policies.read().clone();
        let actions = remediation::actions(&policies, &findings, &trails, &keys);
        let changes = {
            let mut known = r.changes.lock();
            remediation::newest_changes(&actions, &changes, &mut known);
            known.clone()
        };
        let decided = {
            let mut history = r.history.lock();
            history.keep_only(&actions);
            remediation::decide(&actions, &changes, &r.settings, &mut history, now)
        };
        let clients = self.account_clients();
        let mut errors = Vec::new();
        let mut acted = false;
        for (action, decision) in decided {
            let change = changes.get(&(action.kind, action.target.clone()));
            let mut outcome = decision.as_str().to_string();
            let mut entry = report(&action, &decision, change, now);
            match &decision {
                Decision::Act if !r.writer => outcome = "not_writer".into(),
                Decision::Act => {
                    let result = match clients.get(&action.account) {
                        Some(aws) => act(aws, &action).await,
                        None => Err(Unavailable::new(format!(
                            "account {}: no clients (not reached by this shard)",
                            action.account
                        ))),
                    };
                    match result {
                        Ok(request_id) => {
                            if let Some(id) = &request_id {
                                r.own_requests.lock().insert(id.clone(), now);
                            }
                            r.history.lock().record(&action, true, now);
                            entry["request_id"] = json!(request_id);
                            outcome = "done".into();
                            acted = true;
                        }
                        Err(e) => {
                            // Tried: not again before the cool-down (nor counted as taken).
                            r.history.lock().record(&action, false, now);
                            entry["error"] = json!(e.reason);
                            outcome = "failed".into();
                            errors.push(e);
                        }
                    }
                }
                _ => {}
            }
            entry["outcome"] = json!(outcome);
            let news = r.history.lock().is_news(&action, &decision);
            if news || outcome == "done" || outcome == "failed" {
                log_decision(&action, &outcome, &entry);
                self.published
                    .metrics
                    .remediations
                    .with_label_values(&[action.kind.as_str(), &outcome])
                    .inc();
                let mut listed = r.listed.lock();
                listed.push_front(entry);
                listed.truncate(LISTED);
            }
        }
        self.published.status.write().remediation = Some(r.status_json());
        (errors, acted)
    }

    /// Every trail this replica judges, with the keys the posture poll read.
    fn trail_states_and_keys(&self) -> (Vec<TrailState>, BTreeMap<String, Fetched<KeyPosture>>) {
        if let Some(a) = &self.accounts {
            return a.trail_states_and_keys();
        }
        let latest = self.latest.lock();
        let trails = (latest.trails.as_ref())
            .and_then(|t| t.trails.as_ref().ok())
            .cloned()
            .unwrap_or_default();
        let keys = (latest.posture.as_ref())
            .map(|p| p.keys.clone())
            .unwrap_or_default();
        (trails, keys)
    }
}

/// The detected events of `/status.events`, as the changes are chosen from.
fn seen_events(events: &[Value]) -> Vec<SeenEvent> {
    events
        .iter()
        .filter_map(|e| {
            let time = e["event_time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
            Some(SeenEvent {
                event_name: e["event_name"].as_str()?.to_string(),
                succeeded: e["outcome"] == "success",
                resource: e["resource"].as_str()?.to_string(),
                account: e["account"].as_str().unwrap_or_default().to_string(),
                change: Change {
                    event_name: e["event_name"].as_str()?.to_string(),
                    event_id: e["event_id"].as_str().unwrap_or_default().to_string(),
                    actor: e["actor"].as_str().map(str::to_string),
                    event_time: time.with_timezone(&Utc),
                },
            })
        })
        .collect()
}

/// The `/status.remediation` entry of a decision: what triggered it and what was decided.
fn report(
    action: &Action,
    decision: &Decision,
    change: Option<&Change>,
    now: DateTime<Utc>,
) -> Value {
    let mut entry = json!({
        "time": now,
        "action": action.kind.as_str(),
        "policy": action.policy,
        "account": action.account,
        "region": action.region,
        "target": action.target,
        "trail": action.trail,
        "trigger": {
            "finding": action.why,
            "failing_since": action.failing_since,
            "event": change.map(|c| json!({
                "event_name": c.event_name, "event_id": c.event_id,
                "actor": c.actor, "event_time": c.event_time,
            })),
        },
        "decision": decision.as_str(),
    });
    match decision {
        Decision::Allowed { principal } => entry["principal"] = json!(principal),
        Decision::WaitingForEvent { until } | Decision::CoolingDown { until } => {
            entry["until"] = json!(until)
        }
        _ => {}
    }
    entry
}

fn log_decision(action: &Action, outcome: &str, entry: &Value) {
    let actor = entry["trigger"]["event"]["actor"]
        .as_str()
        .unwrap_or("unknown");
    macro_rules! line {
        ($level:ident, $message:literal) => {
            tracing::$level!(
                action = action.kind.as_str(),
                outcome,
                policy = %action.policy,
                account = %action.account,
                target = %action.target,
                changed_by = actor,
                request_id = entry["request_id"].as_str(),
                error = entry["error"].as_str(),
                $message
            )
        };
    }
    match outcome {
        "done" => line!(warn, "remediated"),
        "failed" => line!(error, "remediation failed"),
        _ => line!(info, "remediation not taken"),
    }
}
