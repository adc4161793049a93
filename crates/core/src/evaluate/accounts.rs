//! Evaluation over many accounts, and organization trails judged once.
//!
//! An organization trail shows in every member account (as a "shadow" of the trail in the
//! management account). Judging it in each member would repeat its findings once per member,
//! and judging its bucket and key from a member would fail for want of access. So a trail
//! is judged in one account only: its owner when the owner is watched and lists it, else the
//! lowest watched account that lists it. Members still count it where the question is about
//! the member: "is there a trail" and "are management events recorded" (what competing tools
//! get wrong: prowler#2438, steampipe-mod-aws-compliance#536).

use super::{Finding, evaluate};
use crate::config::{Check, PolicySet};
use crate::plan::shards::Placement;
use crate::posture::{Fetched, Snapshot, TrailEvidence, Unavailable};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// One watched account's collection, or why it could not be made (a role that cannot be
/// assumed, AccessDenied everywhere).
#[derive(Debug, Clone)]
pub struct AccountSnapshot {
    pub account: String,
    pub snapshot: Result<Snapshot, Unavailable>,
}

/// The accounts that could not be collected, with the reason: what `/status` and `check` show
/// beside each account.
pub fn unreachable(accounts: &[AccountSnapshot]) -> BTreeMap<&str, &str> {
    accounts
        .iter()
        .filter_map(|a| {
            Some((
                a.account.as_str(),
                a.snapshot.as_ref().err()?.reason.as_str(),
            ))
        })
        .collect()
}

/// Which account judges each trail seen in any account, and which trails another shard
/// judges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judges {
    here: BTreeMap<String, String>,
    elsewhere: std::collections::BTreeSet<String>,
}

impl Judges {
    /// The account that judges `arn` on this shard; `None` for a trail judged on another
    /// shard, or not a trail at all.
    pub fn of(&self, arn: &str) -> Option<&str> {
        self.here.get(arn).map(String::as_str)
    }

    /// Whether `arn` is a trail some account lists, judged here or not.
    pub fn knows(&self, arn: &str) -> bool {
        self.here.contains_key(arn) || self.elsewhere.contains(arn)
    }
}

/// For each trail ARN seen in any account: the account that judges it. Over several shards
/// each trail is judged on one: an organization trail on the shard of its bucket (where its
/// member folders are read, once), any other trail on the shard of its own account, the only
/// one that lists it.
pub fn judges(accounts: &[AccountSnapshot], placement: &Placement) -> Judges {
    let mut judges = Judges::default();
    let judge = &mut judges.here;
    let mut sorted: Vec<&AccountSnapshot> = accounts.iter().collect();
    sorted.sort_by(|a, b| a.account.cmp(&b.account));
    for a in sorted {
        let Ok(Ok(states)) = a.snapshot.as_ref().map(|s| s.trails.as_ref()) else {
            continue;
        };
        for s in states {
            let t = &s.trail;
            let on_this_shard = match (&t.s3_bucket_name, t.is_organization_trail) {
                (Some(bucket), true) => placement.owns_bucket(bucket),
                _ => placement.owns_account(&t.account),
            };
            if !on_this_shard {
                judges.elsewhere.insert(t.arn.clone());
                continue;
            }
            let owner_here = t.account == a.account;
            match judge.get(&t.arn) {
                // The owner wins over a member that came first.
                Some(j) if owner_here && j != &a.account => {
                    judge.insert(t.arn.clone(), a.account.clone());
                }
                Some(_) => {}
                None => {
                    judge.insert(t.arn.clone(), a.account.clone());
                }
            }
        }
    }
    judges
}

/// The bucket poller's evidence, given to the accounts that judge each trail (the others
/// would drop those findings anyway). An account judging no trail that was read gets an
/// empty map, so its trails' bucket policies are `pending` until a pass reads them.
pub fn share_evidence(
    accounts: &mut [AccountSnapshot],
    evidence: &BTreeMap<String, Fetched<TrailEvidence>>,
    placement: &Placement,
) {
    let judge = judges(accounts, placement);
    for a in accounts.iter_mut() {
        let here = a.account.as_str();
        if let Ok(snapshot) = &mut a.snapshot {
            snapshot.evidence = Some(
                evidence
                    .iter()
                    .filter(|(arn, _)| judge.of(arn) == Some(here))
                    .map(|(arn, e)| (arn.clone(), e.clone()))
                    .collect(),
            );
        }
    }
}

/// Every policy over every account. An account that could not be collected gets one `error`
/// per policy with the reason, and nothing else; the others are unaffected. A trail's own
/// findings come from the account that judges it; account-level findings (no trail,
/// management events, AWS Config recording) from each account, with resources made unique
/// across accounts.
pub fn evaluate_accounts(
    policies: &PolicySet,
    accounts: &[AccountSnapshot],
    now: DateTime<Utc>,
    placement: &Placement,
) -> Vec<Finding> {
    let judge = judges(accounts, placement);
    let mut findings = Vec::new();
    for a in accounts {
        match &a.snapshot {
            Err(why) => {
                for policy in &policies.policies {
                    let mut f = super::account_finding(policy, &a.account, Err(why.reason.clone()));
                    if let Check::ConfigRecording = policy.check {
                        f.resource = format!("account/{}/config-recording", a.account);
                    }
                    findings.push(f);
                }
            }
            Ok(snapshot) => {
                for mut f in evaluate(policies, snapshot, now) {
                    if judge.knows(&f.resource) {
                        if judge.of(&f.resource) != Some(a.account.as_str()) {
                            continue;
                        }
                    } else if !f.resource.starts_with("account/") {
                        // A regional finding (AWS Config): named by region, per account.
                        f.resource = format!("account/{}/{}", a.account, f.resource);
                        f.account = a.account.clone();
                    }
                    findings.push(f);
                }
            }
        }
    }
    findings.sort_by(|a, b| (&a.policy, &a.resource).cmp(&(&b.policy, &b.resource)));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use crate::evaluate::Status;
    use crate::evaluate::testing::{lab_now, lab_snapshot, logging_trail, unavailable};
    use crate::plan::shards::Shard;
    use crate::posture::TrailState;
    use std::path::Path;

    /// A single replica: it judges everything.
    fn one_replica() -> Placement {
        Placement::unplaced(Shard::ALONE)
    }

    const MANAGEMENT: &str = "111122223333";
    const ORG_ARN: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/org";

    fn policies() -> PolicySet {
        parse_str(
            Path::new("p.yaml"),
            include_str!("../../../../config/policies.yaml"),
        )
        .unwrap()
    }

    /// The lab's trail made the organization's, as any account sees it.
    fn org_trail(logging: bool) -> TrailState {
        let mut s = logging_trail();
        s.trail.arn = ORG_ARN.into();
        s.trail.name = "org".into();
        s.trail.account = MANAGEMENT.into();
        s.trail.is_organization_trail = true;
        s.status.as_mut().unwrap().is_logging = logging;
        s
    }

    /// The management account: the lab (bucket, key, evidence) around the organization trail.
    fn management(logging: bool) -> AccountSnapshot {
        let mut snap = lab_snapshot();
        snap.trails = Ok(vec![org_trail(logging)]);
        snap.evidence = snap
            .evidence
            .map(|e| e.into_values().map(|v| (ORG_ARN.to_string(), v)).collect());
        AccountSnapshot {
            account: MANAGEMENT.into(),
            snapshot: Ok(snap),
        }
    }

    /// A member: sees the organization trail (and maybe trails of its own); the
    /// organization's bucket and key are not in its posture.
    fn member(id: &str, own: Vec<TrailState>, org_logging: bool) -> AccountSnapshot {
        let mut snap = lab_snapshot();
        snap.account = Ok(id.into());
        let mut trails = vec![org_trail(org_logging)];
        trails.extend(own);
        snap.trails = Ok(trails);
        if let Some(p) = snap.posture.as_mut() {
            p.buckets.clear();
            p.keys.clear();
        }
        snap.evidence = Some(Default::default());
        AccountSnapshot {
            account: id.into(),
            snapshot: Ok(snap),
        }
    }

    /// A member's own trail, writing to its own bucket (collected with the lab's posture).
    fn own_trail(account: &str, name: &str, logging: bool) -> TrailState {
        let mut s = logging_trail();
        s.trail.account = account.into();
        s.trail.name = name.into();
        s.trail.arn = format!("arn:aws:cloudtrail:us-east-1:{account}:trail/{name}");
        s.status.as_mut().unwrap().is_logging = logging;
        s
    }

    fn by(findings: &[Finding], policy: &str, resource: &str) -> Vec<(String, Status)> {
        findings
            .iter()
            .filter(|f| f.policy == policy && f.resource == resource)
            .map(|f| (f.account.clone(), f.status))
            .collect()
    }

    #[test]
    fn the_owner_judges_the_organization_trail_once_and_members_are_covered() {
        let accounts = vec![
            member("444455556666", vec![], true),
            management(true),
            member("777788889999", vec![], true),
        ];
        let findings = evaluate_accounts(&policies(), &accounts, lab_now(), &one_replica());
        // One finding for the trail, from its owner.
        assert_eq!(
            by(&findings, "trail-logging", ORG_ARN),
            vec![(MANAGEMENT.to_string(), Status::Pass)]
        );
        // Members have no "no trail" failure and no bucket or key error of the org trail.
        for f in &findings {
            assert_ne!(f.status, Status::Fail, "{f:?}");
            if f.account != MANAGEMENT {
                assert!(f.resource.starts_with("account/"), "{f:?}");
            }
        }
        // Management events are judged per member, covered by the organization trail.
        assert_eq!(
            by(&findings, "management-events", "account/444455556666"),
            vec![("444455556666".to_string(), Status::Pass)]
        );
        // No two findings share a key.
        let mut keys: Vec<_> = findings.iter().map(|f| (&f.policy, &f.resource)).collect();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate findings");
    }

    #[test]
    fn a_stopped_organization_trail_fails_once_and_members_own_trails_are_judged_too() {
        let accounts = vec![
            management(false),
            member(
                "444455556666",
                vec![own_trail("444455556666", "mine", true)],
                false,
            ),
            member(
                "777788889999",
                vec![own_trail("777788889999", "stopped", false)],
                false,
            ),
        ];
        let findings = evaluate_accounts(&policies(), &accounts, lab_now(), &one_replica());
        assert_eq!(
            by(&findings, "trail-logging", ORG_ARN),
            vec![(MANAGEMENT.to_string(), Status::Fail)]
        );
        let mine = "arn:aws:cloudtrail:us-east-1:444455556666:trail/mine";
        let stopped = "arn:aws:cloudtrail:us-east-1:777788889999:trail/stopped";
        assert_eq!(
            by(&findings, "trail-logging", mine),
            vec![("444455556666".to_string(), Status::Pass)]
        );
        assert_eq!(
            by(&findings, "trail-logging", stopped),
            vec![("777788889999".to_string(), Status::Fail)]
        );
    }

    #[test]
    fn without_its_owner_a_member_judges_the_organization_trail_and_says_what_it_cannot_see() {
        let accounts = vec![
            member("777788889999", vec![], true),
            member("444455556666", vec![], true),
        ];
        let findings = evaluate_accounts(&policies(), &accounts, lab_now(), &one_replica());
        assert_eq!(
            by(&findings, "trail-logging", ORG_ARN),
            vec![(MANAGEMENT.to_string(), Status::Pass)],
            "once (from the lowest member that lists it), labelled with the owner"
        );
        for f in findings.iter().filter(|f| f.resource == ORG_ARN) {
            assert_ne!(f.status, Status::Fail, "never a false failure: {f:?}");
        }
    }

    #[test]
    fn an_account_that_cannot_be_reached_is_an_error_and_no_one_else_is_affected() {
        let alone = evaluate_accounts(&policies(), &[management(true)], lab_now(), &one_replica());
        let accounts = vec![
            management(true),
            AccountSnapshot {
                account: "444455556666".into(),
                snapshot: Err(unavailable(
                    "cannot assume arn:aws:iam::444455556666:role/audit: AccessDenied",
                )),
            },
        ];
        let findings = evaluate_accounts(&policies(), &accounts, lab_now(), &one_replica());
        let (theirs, ours): (Vec<_>, Vec<_>) = findings
            .into_iter()
            .partition(|f| f.account == "444455556666");
        assert_eq!(ours, alone, "the management account is unaffected");
        assert_eq!(theirs.len(), policies().policies.len());
        for f in &theirs {
            assert_eq!(f.status, Status::Error, "{f:?}");
            assert!(f.message.contains("cannot assume"), "{f:?}");
        }
    }

    #[test]
    fn regional_findings_are_per_account() {
        let accounts = vec![management(true), member("444455556666", vec![], true)];
        let findings = evaluate_accounts(&policies(), &accounts, lab_now(), &one_replica());
        let recording: Vec<_> = findings
            .iter()
            .filter(|f| f.policy == "config-recording")
            .map(|f| f.resource.as_str())
            .collect();
        assert_eq!(
            recording,
            vec![
                "account/111122223333/us-east-1",
                "account/444455556666/us-east-1"
            ]
        );
    }

    #[test]
    fn bucket_evidence_goes_to_the_account_that_judges_each_trail() {
        let mine = own_trail("444455556666", "mine", true);
        let mine_arn = mine.trail.arn.clone();
        let mut accounts = vec![
            member("444455556666", vec![mine], true),
            management(true),
            AccountSnapshot {
                account: "999999999999".into(),
                snapshot: Err(unavailable("cannot assume the role")),
            },
        ];
        let read = crate::evaluate::testing::healthy_bucket();
        let evidence: BTreeMap<String, Fetched<TrailEvidence>> = [
            (ORG_ARN.to_string(), Ok(read.clone())),
            (mine_arn.clone(), Err(unavailable("AccessDenied"))),
        ]
        .into();
        share_evidence(&mut accounts, &evidence, &one_replica());
        let held = |i: usize| -> Vec<String> {
            let s = accounts[i].snapshot.as_ref().unwrap();
            s.evidence.as_ref().unwrap().keys().cloned().collect()
        };
        // The organization trail's to its owner, the member's own trail's to the member.
        assert_eq!(held(0), vec![mine_arn]);
        assert_eq!(held(1), vec![ORG_ARN.to_string()]);
        assert!(
            accounts[2].snapshot.is_err(),
            "an unreachable account stays so"
        );
        assert_eq!(
            unreachable(&accounts),
            BTreeMap::from([("999999999999", "cannot assume the role")])
        );
    }

    /// An organization of a management account and members, each with a trail of its own,
    /// split over 1 to 4 shards, each shard holding only the accounts it owns.
    fn sharded(total: u32) -> Vec<Vec<Finding>> {
        let mut all = vec![management(true)];
        for i in 0..12u64 {
            let id = format!("{:012}", 200_000_000_000 + i * 7_919);
            let logging = i % 3 != 0;
            all.push(member(&id, vec![own_trail(&id, "own", logging)], true));
        }
        (0..total)
            .map(|ordinal| {
                let shard = Shard::new(ordinal, total).unwrap();
                let placement = Placement::over(shard, all.iter().map(|a| a.account.as_str()));
                let mine: Vec<AccountSnapshot> = all
                    .iter()
                    .filter(|a| placement.owns_account(&a.account))
                    .cloned()
                    .collect();
                evaluate_accounts(&policies(), &mine, lab_now(), &placement)
            })
            .collect()
    }

    #[test]
    fn over_shards_every_trail_and_account_is_judged_once_as_by_one_replica() {
        let alone = sharded(1).remove(0);
        let verdicts = |findings: &[Finding]| -> Vec<(String, String, Status)> {
            let mut v: Vec<_> = findings
                .iter()
                // The organization trail's bucket and key are the management account's:
                // a member judging it on another shard reads them through the poller, which
                // this pure test has not run.
                .filter(|f| f.resource != ORG_ARN || f.policy == "trail-logging")
                .map(|f| (f.policy.clone(), f.resource.clone(), f.status))
                .collect();
            v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            v
        };
        for total in 2..=4 {
            let shards = sharded(total);
            let together: Vec<Finding> = shards.iter().flatten().cloned().collect();
            assert_eq!(
                verdicts(&together),
                verdicts(&alone),
                "{total} shards: each finding once, with the same verdict"
            );
            let org_judged = shards
                .iter()
                .filter(|f| f.iter().any(|f| f.resource == ORG_ARN))
                .count();
            assert_eq!(org_judged, 1, "{total} shards: the organization trail once");
        }
    }
}
