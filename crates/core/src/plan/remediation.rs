//! Remediation: which failures the daemon puts right, and when it must not.
//!
//! A failing finding of a policy with `remediate: true` becomes an action when the posture
//! shows what to undo: a trail that is not logging is started, a trail without log file
//! validation gets it back, a trail's key that is Disabled is enabled, and a multi-region
//! trail with global service events whose selectors no longer record every management event
//! gets a selector that does (its data event selectors kept). Then, in this order:
//! - a change by an allowed principal (the newest detected event on the target) is left alone;
//! - a failure whose cause is not known yet waits `wait_for_event` for the event that says
//!   who caused it (event history is minutes late), so a break-glass change is not undone
//!   before its event arrives;
//! - an action taken (or reported in dry run) on the same target within `cool_down` is not
//!   repeated: a person who stops the trail again is left to it, and the alerts go on;
//! - in dry run it is only reported;
//! - beyond `max_actions_per_hour` it waits.
//!
//! The caller records what it did ([`History::record`]); a decision is reported once until it
//! changes ([`History::is_news`]), so a trail that stays stopped is not a line per poll.

use crate::config::{Check, PolicySet, RemediationSettings};
use crate::evaluate::{Finding, Status};
use crate::posture::{Fetched, KeyPosture, TrailState};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionKind {
    StartLogging,
    EnableLogFileValidation,
    EnableKey,
    RestoreManagementEvents,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::StartLogging => "start_logging",
            ActionKind::EnableLogFileValidation => "enable_log_file_validation",
            ActionKind::EnableKey => "enable_key",
            ActionKind::RestoreManagementEvents => "restore_management_events",
        }
    }

    pub const ALL: [ActionKind; 4] = [
        ActionKind::StartLogging,
        ActionKind::EnableLogFileValidation,
        ActionKind::EnableKey,
        ActionKind::RestoreManagementEvents,
    ];
}

/// One thing to put right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    pub policy: String,
    /// The account whose clients act (the trail's or the key's owner).
    pub account: String,
    /// Where the call goes: the trail's home region, the key's region.
    pub region: String,
    /// The trail ARN, or the key ARN for [`ActionKind::EnableKey`].
    pub target: String,
    /// The trail whose finding asked for it.
    pub trail: String,
    /// Since when the finding has failed.
    pub failing_since: DateTime<Utc>,
    /// The finding's message.
    pub why: String,
}

/// The newest detected change on a target: who made it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub event_name: String,
    pub event_id: String,
    pub actor: Option<String>,
    pub event_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Act,
    DryRun,
    /// The change was made by an allowed principal.
    Allowed {
        principal: String,
    },
    /// Who caused it is not known yet.
    WaitingForEvent {
        until: DateTime<Utc>,
    },
    CoolingDown {
        until: DateTime<Utc>,
    },
    RateLimited,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Act => "act",
            Decision::DryRun => "dry_run",
            Decision::Allowed { .. } => "allowed_principal",
            Decision::WaitingForEvent { .. } => "waiting_for_event",
            Decision::CoolingDown { .. } => "cooling_down",
            Decision::RateLimited => "rate_limited",
        }
    }
}

/// The actions the failing findings ask for. `findings` carry since when they failed.
pub fn actions(
    policies: &PolicySet,
    findings: &[(Finding, DateTime<Utc>)],
    trails: &[TrailState],
    keys: &BTreeMap<String, Fetched<KeyPosture>>,
) -> Vec<Action> {
    let mut out = Vec::new();
    for (f, since) in findings.iter().filter(|(f, _)| f.status == Status::Fail) {
        let Some(policy) = policies
            .policies
            .iter()
            .find(|p| p.id == f.policy && p.remediate)
        else {
            continue;
        };
        if let Check::ManagementEvents = policy.check {
            // An account's finding: the trail to mend is one that only its selectors keep
            // from recording every management event.
            let mut candidates: Vec<&TrailState> = trails
                .iter()
                .filter(|s| s.trail.account == f.account)
                .filter(|s| policy.applies_to(&s.trail.name, &s.trail.arn))
                .filter(|s| s.trail.is_multi_region_trail && s.trail.include_global_service_events)
                .filter(|s| s.selectors.is_ok())
                .collect();
            candidates.sort_by(|a, b| a.trail.arn.cmp(&b.trail.arn));
            if let Some(state) = candidates.first() {
                let t = &state.trail;
                out.push(Action {
                    kind: ActionKind::RestoreManagementEvents,
                    policy: policy.id.clone(),
                    account: t.account.clone(),
                    region: t.home_region.clone(),
                    target: t.arn.clone(),
                    trail: t.arn.clone(),
                    failing_since: *since,
                    why: f.message.clone(),
                });
            }
            continue;
        }
        let Some(state) = trails.iter().find(|s| s.trail.arn == f.resource) else {
            continue;
        };
        let trail = &state.trail;
        let action = |kind, account: &str, region: &str, target: &str| Action {
            kind,
            policy: policy.id.clone(),
            account: account.to_string(),
            region: region.to_string(),
            target: target.to_string(),
            trail: trail.arn.clone(),
            failing_since: *since,
            why: f.message.clone(),
        };
        match &policy.check {
            Check::TrailLogging => {
                // Only a stopped trail: a delivery error is not undone by starting it.
                if matches!(&state.status, Ok(s) if !s.is_logging) {
                    out.push(action(
                        ActionKind::StartLogging,
                        &trail.account,
                        &trail.home_region,
                        &trail.arn,
                    ));
                }
            }
            Check::LogFileValidation if !trail.log_file_validation_enabled => {
                out.push(action(
                    ActionKind::EnableLogFileValidation,
                    &trail.account,
                    &trail.home_region,
                    &trail.arn,
                ));
            }
            Check::SseKms { .. } => {
                let key = trail
                    .kms_key_id
                    .as_ref()
                    .and_then(|id| keys.get(id))
                    .and_then(|k| k.as_ref().ok());
                if let Some(key) = key.filter(|k| k.state == "Disabled") {
                    let region = key.arn.split(':').nth(3).unwrap_or(&trail.home_region);
                    out.push(action(
                        ActionKind::EnableKey,
                        &key.account,
                        region,
                        &key.arn,
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// What was done and reported, for the rules that look back.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// When each (action, target) was last taken or reported in dry run.
    last: BTreeMap<(ActionKind, String), DateTime<Utc>>,
    /// When actions were taken, for the hourly limit (oldest first).
    taken: VecDeque<DateTime<Utc>>,
    /// The last decision reported for each (action, target).
    reported: BTreeMap<(ActionKind, String), &'static str>,
}

impl History {
    /// Records an action taken (`acted`) or reported in dry run at `now`.
    pub fn record(&mut self, action: &Action, acted: bool, now: DateTime<Utc>) {
        self.last.insert((action.kind, action.target.clone()), now);
        if acted {
            self.taken.push_back(now);
        }
    }

    /// Whether `decision` differs from the last one reported for the action (and notes it).
    pub fn is_news(&mut self, action: &Action, decision: &Decision) -> bool {
        let key = (action.kind, action.target.clone());
        self.reported.insert(key, decision.as_str()) != Some(decision.as_str())
    }

    /// Forgets the reports of actions no longer asked for: a trail healed, and a later
    /// failure is news again.
    pub fn keep_only(&mut self, asked: &[Action]) {
        self.reported.retain(|(kind, target), _| {
            asked.iter().any(|a| a.kind == *kind && a.target == *target)
        });
    }
}

/// Each action with what to do about it, in order; `changes` holds the newest detected change
/// by target (trail ARN, key ARN or key id).
pub fn decide(
    actions: &[Action],
    changes: &BTreeMap<String, Change>,
    settings: &RemediationSettings,
    history: &mut History,
    now: DateTime<Utc>,
) -> Vec<(Action, Decision)> {
    let cool_down = Duration::from_std(settings.cool_down.0).unwrap_or(Duration::minutes(30));
    let wait = Duration::from_std(settings.wait_for_event.0).unwrap_or(Duration::minutes(15));
    while history
        .taken
        .front()
        .is_some_and(|t| now - *t >= Duration::hours(1))
    {
        history.taken.pop_front();
    }
    let mut taken_this_hour = history.taken.len();
    actions
        .iter()
        .map(|a| {
            // A change counts when it is about this failure: not older than it by more than
            // the time event history may lag behind the posture.
            let change = changes
                .get(&a.target)
                .filter(|c| c.event_time >= a.failing_since - wait);
            let last = history.last.get(&(a.kind, a.target.clone()));
            let decision = if let Some(principal) = change
                .and_then(|c| c.actor.as_deref())
                .filter(|p| settings.allows(p))
            {
                Decision::Allowed {
                    principal: principal.to_string(),
                }
            } else if change.is_none() && now < a.failing_since + wait {
                Decision::WaitingForEvent {
                    until: a.failing_since + wait,
                }
            } else if let Some(last) = last.filter(|l| now < **l + cool_down) {
                Decision::CoolingDown {
                    until: *last + cool_down,
                }
            } else if settings.dry_run {
                Decision::DryRun
            } else if taken_this_hour >= settings.max_actions_per_hour as usize {
                Decision::RateLimited
            } else {
                taken_this_hour += 1;
                Decision::Act
            };
            (a.clone(), decision)
        })
        .collect()
}

#[cfg(test)]
#[path = "remediation_cases.rs"]
mod cases;
