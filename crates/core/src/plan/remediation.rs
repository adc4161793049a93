//! Remediation: which failures the daemon puts right, and when it must not.
//!
//! A failing finding of a policy with `remediate: true` becomes an action when the posture
//! shows what to undo: a trail that is not logging is started, a trail without log file
//! validation gets it back, a trail's key that is Disabled is enabled, and a multi-region
//! trail with global service events whose selectors no longer record every management event
//! gets a selector that does (its data event selectors kept). Then, in this order:
//! - a change by an allowed principal is left alone: the newest successful event on the
//!   target that could have caused the failure ([`ActionKind::causes`]: StopLogging for a
//!   stopped trail, not any call on it), and for a stopped trail one no older than the stop;
//! - a failure whose cause is not known yet waits `wait_for_event` for the event that says
//!   who caused it (event history is minutes late), so a break-glass change is not undone
//!   before its event arrives;
//! - in dry run it is only reported (once per failure);
//! - an action tried on the same target within `cool_down` (done, or failed) is not
//!   repeated: a person who stops the trail again is left to it, and the alerts go on;
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

    /// The events that cause the failure this action puts right.
    pub fn causes(self) -> &'static [&'static str] {
        match self {
            ActionKind::StartLogging => &["StopLogging"],
            ActionKind::EnableLogFileValidation => &["UpdateTrail"],
            ActionKind::EnableKey => &["DisableKey"],
            ActionKind::RestoreManagementEvents => &["PutEventSelectors"],
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
    /// When the posture says the change happened (a trail's StopLoggingTime): an event
    /// older than that is about an earlier change.
    pub changed_at: Option<DateTime<Utc>>,
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
            // Only when one trail can be meant: adding every management event to a trail kept
            // for data events would cost, and leave the trail that was cut as it is.
            if let [state] = candidates.as_slice() {
                let t = &state.trail;
                out.push(Action {
                    kind: ActionKind::RestoreManagementEvents,
                    policy: policy.id.clone(),
                    account: t.account.clone(),
                    region: t.home_region.clone(),
                    target: t.arn.clone(),
                    trail: t.arn.clone(),
                    failing_since: *since,
                    changed_at: None,
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
            changed_at: None,
            why: f.message.clone(),
        };
        match &policy.check {
            Check::TrailLogging => {
                // Only a stopped trail: a delivery error is not undone by starting it.
                if let Ok(status) = &state.status
                    && !status.is_logging
                {
                    let mut start = action(
                        ActionKind::StartLogging,
                        &trail.account,
                        &trail.home_region,
                        &trail.arn,
                    );
                    start.changed_at = status.stop_logging_time;
                    out.push(start);
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
    // Two policies over one check, or one key under several trails: one action each.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|a| seen.insert((a.kind, a.target.clone())));
    out
}

/// What was done and reported, for the rules that look back.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// When each (action, target) was last tried.
    last: BTreeMap<(ActionKind, String), DateTime<Utc>>,
    /// When actions were taken, for the hourly limit (oldest first).
    taken: VecDeque<DateTime<Utc>>,
    /// The last decision reported for each (action, target).
    reported: BTreeMap<(ActionKind, String), &'static str>,
}

impl History {
    /// Records an action tried at `now` (`acted`: AWS took it, so it counts for the hourly
    /// limit; a failed one only starts the cool-down, so it is not retried at every poll).
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

/// A detected event, as the changes are chosen from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenEvent {
    pub event_name: String,
    pub succeeded: bool,
    /// What the detection names as the resource: an ARN, or the name or id the call used.
    pub resource: String,
    pub account: String,
    pub change: Change,
}

/// Whether `resource`, as an event names it in `account`, is `target`: the ARN itself, or
/// the trail's name or the key's id in the target's account.
fn names(target: &str, resource: &str, account: &str) -> bool {
    if resource == target {
        return true;
    }
    let mut parts = target.split(':');
    let target_account = parts.nth(4).unwrap_or_default();
    let short = target.rsplit(['/']).next().unwrap_or_default();
    account == target_account && !short.is_empty() && resource == short
}

/// For each action, the newest successful event that could have caused its failure; merged
/// into `known` (what earlier runs saw, kept while the action is asked for), so an event that
/// has left the recent list still counts.
pub fn newest_changes(
    actions: &[Action],
    events: &[SeenEvent],
    known: &mut BTreeMap<(ActionKind, String), Change>,
) {
    known.retain(|(kind, target), _| {
        actions
            .iter()
            .any(|a| a.kind == *kind && a.target == *target)
    });
    for a in actions {
        let newest = events
            .iter()
            .filter(|e| e.succeeded && a.kind.causes().contains(&e.event_name.as_str()))
            .filter(|e| names(&a.target, &e.resource, &e.account))
            .max_by_key(|e| e.change.event_time);
        if let Some(e) = newest {
            let key = (a.kind, a.target.clone());
            let newer = known
                .get(&key)
                .is_none_or(|k| e.change.event_time > k.event_time);
            if newer {
                known.insert(key, e.change.clone());
            }
        }
    }
}

/// How much older than the posture's change time its event may look (clocks, rounding).
const CLOCK_SLACK_MINUTES: i64 = 5;

/// Each action with what to do about it, in order; `changes` holds, by action and target, the
/// newest successful detected event that could have caused the failure.
pub fn decide(
    actions: &[Action],
    changes: &BTreeMap<(ActionKind, String), Change>,
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
            // A change counts when it can be this failure's: for a stopped trail, not older
            // than the stop the trail reports.
            let change = changes.get(&(a.kind, a.target.clone())).filter(|c| {
                a.changed_at
                    .is_none_or(|t| c.event_time >= t - Duration::minutes(CLOCK_SLACK_MINUTES))
            });
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
            } else if settings.dry_run {
                Decision::DryRun
            } else if let Some(last) = last.filter(|l| now < **l + cool_down) {
                Decision::CoolingDown {
                    until: *last + cool_down,
                }
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
