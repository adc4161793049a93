//! The remediation rules against the faults that would break them: a person fighting the
//! daemon, an allowed principal whose event arrives late, a delivery error that starting the
//! trail would not mend, a burst of failures.

use super::*;
use crate::config::{Severity, yaml::Pattern};
use crate::posture::{Trail, TrailStatus, Unavailable};

const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:111111111111:trail/main";
const KEY: &str = "arn:aws:kms:eu-west-1:222222222222:key/k1";

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
}

fn policies() -> PolicySet {
    serde_yaml::from_str(
        "policies:\n\
         - {id: logging, check: trail_logging, severity: critical, remediate: true}\n\
         - {id: validation, check: log_file_validation, severity: high, remediate: true}\n\
         - {id: key, check: sse_kms, severity: high, remediate: true}\n\
         - {id: management, check: management_events, severity: high, remediate: true}\n\
         - {id: logging-watch-only, check: trail_logging, severity: low}\n",
    )
    .unwrap()
}

fn failing(policy: &str) -> (Finding, DateTime<Utc>) {
    let f = Finding {
        policy: policy.into(),
        severity: Severity::High,
        status: Status::Fail,
        account: "111111111111".into(),
        region: "us-east-1".into(),
        resource: TRAIL.into(),
        resource_name: "main".into(),
        message: "broken".into(),
    };
    (f, t(0))
}

fn state(logging: Fetched<bool>, validation: bool) -> TrailState {
    TrailState {
        trail: Trail {
            arn: TRAIL.into(),
            name: "main".into(),
            account: "111111111111".into(),
            home_region: "us-east-1".into(),
            log_file_validation_enabled: validation,
            kms_key_id: Some(KEY.into()),
            ..Trail::default()
        },
        status: logging.map(|is_logging| TrailStatus {
            is_logging,
            ..TrailStatus::default()
        }),
        selectors: Ok(crate::posture::EventSelectors::Basic(vec![])),
    }
}

fn keys(state: &str) -> BTreeMap<String, Fetched<KeyPosture>> {
    BTreeMap::from([(
        KEY.to_string(),
        Ok(KeyPosture {
            key_id: "k1".into(),
            arn: KEY.into(),
            account: "222222222222".into(),
            state: state.into(),
            rotation_enabled: Ok(true),
            aliases: Ok(vec![]),
        }),
    )])
}

#[test]
fn what_each_failure_asks_for() {
    let p = policies();
    let stopped = [state(Ok(false), false)];
    let kinds = |findings: &[(Finding, DateTime<Utc>)], trails: &[TrailState], k: &str| {
        actions(&p, findings, trails, &keys(k))
            .into_iter()
            .map(|a| (a.kind, a.account, a.region, a.target))
            .collect::<Vec<_>>()
    };
    let on_trail = |kind| {
        (
            kind,
            "111111111111".into(),
            "us-east-1".into(),
            TRAIL.into(),
        )
    };
    assert_eq!(
        kinds(&[failing("logging")], &stopped, "Enabled"),
        [on_trail(ActionKind::StartLogging)]
    );
    assert_eq!(
        kinds(&[failing("validation")], &stopped, "Enabled"),
        [on_trail(ActionKind::EnableLogFileValidation)]
    );
    // The key is enabled where it lives: its own account and region.
    assert_eq!(
        kinds(&[failing("key")], &stopped, "Disabled"),
        [(
            ActionKind::EnableKey,
            "222222222222".to_string(),
            "eu-west-1".to_string(),
            KEY.to_string()
        )]
    );
    // Nothing to undo: a logging trail with a delivery error, a key pending deletion (that is
    // no toggle to flip back), a status that could not be read, a policy without remediate.
    let logging = [state(Ok(true), true)];
    assert!(kinds(&[failing("logging")], &logging, "Enabled").is_empty());
    assert!(kinds(&[failing("key")], &stopped, "PendingDeletion").is_empty());
    let unknown = [state(Err(Unavailable::new("throttled")), true)];
    assert!(kinds(&[failing("logging")], &unknown, "Enabled").is_empty());
    assert!(kinds(&[failing("logging-watch-only")], &stopped, "Enabled").is_empty());
    // Only failures: an error is never acted on.
    let mut error = failing("logging");
    error.0.status = Status::Error;
    assert!(kinds(&[error], &stopped, "Enabled").is_empty());
}

#[test]
fn management_events_are_restored_on_a_trail_that_only_its_selectors_hold_back() {
    let p = policies();
    let mut account_finding = failing("management");
    account_finding.0.resource = "account/111111111111".into();
    let mut whole = state(Ok(true), true);
    whole.trail.is_multi_region_trail = true;
    whole.trail.include_global_service_events = true;
    let found = actions(
        &p,
        std::slice::from_ref(&account_finding),
        &[whole.clone()],
        &keys("Enabled"),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ActionKind::RestoreManagementEvents);
    assert_eq!(found[0].target, TRAIL);
    // A single-region trail, or one without global service events, needs more than its
    // selectors: nothing is done.
    let mut single = whole.clone();
    single.trail.is_multi_region_trail = false;
    assert!(
        actions(
            &p,
            std::slice::from_ref(&account_finding),
            &[single],
            &keys("Enabled")
        )
        .is_empty()
    );
    let mut no_global = whole.clone();
    no_global.trail.include_global_service_events = false;
    assert!(
        actions(
            &p,
            std::slice::from_ref(&account_finding),
            &[no_global],
            &keys("Enabled")
        )
        .is_empty()
    );
    // Another account's trail is not this finding's.
    let mut other = whole;
    other.trail.account = "999999999999".into();
    assert!(actions(&p, &[account_finding], &[other], &keys("Enabled")).is_empty());
}

fn settings(dry_run: bool) -> RemediationSettings {
    RemediationSettings {
        dry_run,
        cool_down: crate::config::HumanDuration(std::time::Duration::from_secs(30 * 60)),
        max_actions_per_hour: 2,
        allow_principals: vec![Pattern(
            regex::Regex::new("arn:aws:iam::\\d+:role/BreakGlass").unwrap(),
        )],
        wait_for_event: crate::config::HumanDuration(std::time::Duration::from_secs(15 * 60)),
    }
}

fn start(target: &str) -> Action {
    Action {
        kind: ActionKind::StartLogging,
        policy: "logging".into(),
        account: "111111111111".into(),
        region: "us-east-1".into(),
        target: target.into(),
        trail: target.into(),
        failing_since: t(0),
        changed_at: Some(t(0)),
        why: "stopped".into(),
    }
}

fn change(actor: &str, minutes: i64) -> Change {
    Change {
        event_name: "StopLogging".into(),
        event_id: "e".into(),
        actor: Some(actor.into()),
        event_time: t(minutes),
    }
}

const PERSON: &str = "arn:aws:sts::111111111111:assumed-role/Admin/alice";
const BREAK_GLASS: &str = "arn:aws:iam::111111111111:role/BreakGlass";

#[test]
fn the_decision_table() {
    // (dry run, newest change on the trail, last action minutes ago, now in minutes, decision)
    type Case = (bool, Option<Change>, Option<i64>, i64, &'static str);
    let cases: &[Case] = &[
        (false, Some(change(PERSON, 0)), None, 1, "act"),
        (true, Some(change(PERSON, 0)), None, 1, "dry_run"),
        // An allowed principal's change is left alone, dry run or not, however late.
        (
            false,
            Some(change(BREAK_GLASS, 0)),
            None,
            1,
            "allowed_principal",
        ),
        (
            false,
            Some(change(BREAK_GLASS, 0)),
            None,
            600,
            "allowed_principal",
        ),
        // Who stopped it is not known yet: wait for the event, then act without it.
        (false, None, None, 1, "waiting_for_event"),
        (false, None, None, 15, "act"),
        // An allowed stop older than the stop the trail reports does not excuse this one.
        (
            false,
            Some(change(BREAK_GLASS, -60)),
            None,
            1,
            "waiting_for_event",
        ),
        // The same stop seen late: its event came in long after the daemon saw the stop.
        (
            false,
            Some(change(BREAK_GLASS, -3)),
            None,
            20,
            "allowed_principal",
        ),
        // The person stops it again after the daemon started it: left to them for cool_down.
        (false, Some(change(PERSON, 0)), Some(5), 1, "cooling_down"),
        (false, Some(change(PERSON, 0)), Some(30), 1, "act"),
        // A dry run is a dry run however recent the last one: it is reported once per
        // failure by `is_news`, not alternated with a cool-down.
        (true, Some(change(PERSON, 0)), Some(5), 1, "dry_run"),
    ];
    for (dry_run, newest, last, now, expected) in cases {
        let mut history = History::default();
        let now = t(*now);
        if let Some(ago) = last {
            history.record(&start(TRAIL), true, now - Duration::minutes(*ago));
        }
        let changes: BTreeMap<(ActionKind, String), Change> = newest
            .iter()
            .map(|c| ((ActionKind::StartLogging, TRAIL.to_string()), c.clone()))
            .collect();
        let decided = decide(
            &[start(TRAIL)],
            &changes,
            &settings(*dry_run),
            &mut history,
            now,
        );
        assert_eq!(
            decided[0].1.as_str(),
            *expected,
            "dry run {dry_run}, change {newest:?}, last {last:?}, now {now}"
        );
    }
}

#[test]
fn at_most_so_many_actions_an_hour() {
    let mut history = History::default();
    let trails: Vec<Action> = (0..3).map(|i| start(&format!("{TRAIL}-{i}"))).collect();
    let changes: BTreeMap<(ActionKind, String), Change> = trails
        .iter()
        .map(|a| ((a.kind, a.target.clone()), change(PERSON, 0)))
        .collect();
    let s = settings(false);
    let decided = decide(&trails, &changes, &s, &mut history, t(1));
    let names: Vec<&str> = decided.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(names, ["act", "act", "rate_limited"]);
    for (a, d) in &decided {
        if *d == Decision::Act {
            history.record(a, true, t(1));
        }
    }
    // Still limited within the hour; an hour after the first two, the third goes.
    let later = decide(&trails[2..], &changes, &s, &mut history, t(30));
    assert_eq!(later[0].1, Decision::RateLimited);
    let after = decide(&trails[2..], &changes, &s, &mut history, t(61));
    assert_eq!(after[0].1, Decision::Act);
}

#[test]
fn a_decision_is_news_once_until_it_changes_or_the_failure_heals() {
    let mut history = History::default();
    let a = start(TRAIL);
    let cooling = Decision::CoolingDown { until: t(30) };
    assert!(history.is_news(&a, &Decision::Act));
    assert!(history.is_news(&a, &cooling));
    assert!(!history.is_news(&a, &cooling), "the same again is not news");
    history.keep_only(&[]);
    assert!(history.is_news(&a, &cooling), "after healing, news again");
}

fn seen(name: &str, succeeded: bool, resource: &str, actor: &str, minute: i64) -> SeenEvent {
    SeenEvent {
        event_name: name.into(),
        succeeded,
        resource: resource.into(),
        account: "111111111111".into(),
        change: change(actor, minute),
    }
}

#[test]
fn the_change_behind_a_failure_is_its_cause_not_any_call() {
    let actions = [start(TRAIL)];
    let newest = |events: &[SeenEvent]| {
        let mut known = BTreeMap::new();
        newest_changes(&actions, events, &mut known);
        known
            .get(&(ActionKind::StartLogging, TRAIL.to_string()))
            .and_then(|c| c.actor.clone())
    };
    // The break-glass stop, then a later failed stop and an unrelated call by others.
    let events = [
        seen("StopLogging", true, TRAIL, BREAK_GLASS, 0),
        seen("StopLogging", false, TRAIL, PERSON, 2),
        seen("DescribeTrails", true, TRAIL, PERSON, 3),
        seen("UpdateTrail", true, TRAIL, PERSON, 4),
    ];
    assert_eq!(newest(&events).as_deref(), Some(BREAK_GLASS));
    // `stop-logging --name main`: the trail by name, in its account.
    assert_eq!(
        newest(&[seen("StopLogging", true, "main", PERSON, 0)]).as_deref(),
        Some(PERSON)
    );
    let mut elsewhere = seen("StopLogging", true, "main", PERSON, 0);
    elsewhere.account = "999999999999".into();
    assert_eq!(
        newest(&[elsewhere]),
        None,
        "another account's trail of that name"
    );
}

#[test]
fn a_change_seen_once_is_kept_while_its_failure_lasts() {
    let actions = [start(TRAIL)];
    let mut known = BTreeMap::new();
    newest_changes(
        &actions,
        &[seen("StopLogging", true, TRAIL, BREAK_GLASS, 0)],
        &mut known,
    );
    // The event left the recent list: still known.
    newest_changes(&actions, &[], &mut known);
    assert_eq!(known.len(), 1);
    // An older event does not replace it; the failure healing forgets it.
    newest_changes(
        &actions,
        &[seen("StopLogging", true, TRAIL, PERSON, -10)],
        &mut known,
    );
    assert_eq!(
        known.values().next().unwrap().actor.as_deref(),
        Some(BREAK_GLASS)
    );
    newest_changes(&[], &[], &mut known);
    assert!(known.is_empty());
}

#[test]
fn one_action_per_target_however_many_policies_ask() {
    let p: PolicySet = serde_yaml::from_str(
        "policies:\n\
         - {id: a, check: trail_logging, severity: critical, remediate: true}\n\
         - {id: b, check: trail_logging, severity: low, remediate: true}\n",
    )
    .unwrap();
    let findings = [failing("a"), failing("b")];
    let found = actions(&p, &findings, &[state(Ok(false), true)], &keys("Enabled"));
    assert_eq!(found.len(), 1);
}
