//! Which accounts are watched, from one discovery to the next.
//!
//! The faults this guards against: a discovery that fails (or answers an empty organization
//! because of a permission problem) must not retire every account and drop its alarms; an
//! account that is suspended, closed or leaves must stop being required from then on, and
//! say so, instead of turning into a false "not logging"; an account that comes back is
//! watched again.

use crate::config::AccountSettings;
use crate::plan::shards::{Placement, Shard};
use crate::posture::Membership;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// How long a retired account stays listed in `/status` (with when and why it left).
pub const RETIRED_KEPT: Duration = Duration::days(90);

/// An account as Organizations describes it (or as the configured list names it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrgAccount {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, `CLOSED`, ...
    pub status: String,
    /// The ids of the root and units above the account, root first.
    pub parents: Vec<String>,
    /// The same path by name, `Root/Workloads/Prod`.
    pub ou_path: String,
    pub tags: BTreeMap<String, String>,
    /// When it joined the organization (Organizations `JoinedTimestamp`), when known.
    pub joined: Option<DateTime<Utc>>,
}

impl OrgAccount {
    /// An account named in the configured list: nothing known but its id.
    pub fn listed(id: &str) -> OrgAccount {
        OrgAccount {
            id: id.to_string(),
            name: String::new(),
            status: ACTIVE.to_string(),
            parents: Vec::new(),
            ou_path: String::new(),
            tags: BTreeMap::new(),
            joined: None,
        }
    }
}

/// The configured bucket owners (`bucket_owners`) that another shard watches, as a roster:
/// a trail judged on this shard may keep its bucket there (an organization trail's, in a log
/// archive account), and only the owner's credentials read it.
pub fn owners_elsewhere(
    settings: &AccountSettings,
    roster: &Roster,
    placement: &Placement,
) -> Roster {
    let owner = |id: &String| settings.bucket_owners.values().any(|o| &o.0 == id);
    Roster {
        watched: roster
            .watched
            .iter()
            .filter(|(id, _)| !placement.owns_account(id) && owner(id))
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect(),
        ..Roster::default()
    }
}

/// When each account of the roster belonged: what an organization trail's member folders
/// are judged against (watched: from joining; retired: until it left). Only for a discovered
/// organization: a configured list may name accounts outside it, whose folders no
/// organization trail fills.
pub fn memberships(settings: &AccountSettings, roster: &Roster) -> BTreeMap<String, Membership> {
    if settings.organization.is_none() {
        return BTreeMap::new();
    }
    let watched = roster.watched.values().map(|m| {
        (
            m.account.id.clone(),
            Membership {
                joined: m.account.joined,
                left: None,
            },
        )
    });
    let retired = roster.retired.values().map(|r| {
        (
            r.account.id.clone(),
            Membership {
                joined: r.account.joined,
                left: Some(r.left_at),
            },
        )
    });
    watched.chain(retired).collect()
}

pub const ACTIVE: &str = "ACTIVE";

/// A watched account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub account: OrgAccount,
    /// The daemon's own account: its own credentials, no role.
    pub own: bool,
    pub since: DateTime<Utc>,
}

/// An account no longer watched: not required from `left_at` on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retired {
    pub account: OrgAccount,
    pub left_at: DateTime<Utc>,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Roster {
    pub watched: BTreeMap<String, Member>,
    pub retired: BTreeMap<String, Retired>,
    /// The last discovery that answered.
    pub discovered_at: Option<DateTime<Utc>>,
    /// Why the last discovery did not answer; the roster before it stays in force.
    pub discovery_error: Option<String>,
    /// Accounts in scope that another shard watches, with its ordinal (`on_shard`).
    pub elsewhere: BTreeMap<String, u32>,
}

/// Where the accounts of a full roster (every account in scope) are watched, seen from
/// `shard`. Every replica holding the same roster places them alike.
pub fn placement(roster: &Roster, shard: Shard) -> Placement {
    Placement::over(shard, roster.watched.keys().map(String::as_str))
}

/// This shard's part of a roster: it watches the accounts it owns; the others in scope go
/// to `elsewhere`, with the shard that watches them. An account moved away by a resize is
/// not retired: it did not leave, another shard has it. Retired accounts stay listed on
/// every shard: when an organization trail's member folders were required is the same
/// question on all of them.
pub fn on_shard(roster: &Roster, placement: &Placement) -> Roster {
    let (watched, elsewhere): (BTreeMap<_, _>, BTreeMap<_, _>) = roster
        .watched
        .iter()
        .map(|(id, m)| (id.clone(), m.clone()))
        .partition(|(id, _)| placement.owns_account(id));
    Roster {
        watched,
        elsewhere: elsewhere
            .into_keys()
            .map(|id| {
                let owner = placement.owner_of_account(&id);
                (id, owner)
            })
            .collect(),
        ..roster.clone()
    }
}

/// The roster after a discovery. `discovered` is the accounts listed (all of the
/// organization's, or the configured list), or why they could not be. `own` is the daemon's
/// own account, when known: always watched unless excluded, even outside the listed units.
pub fn next_roster(
    settings: Option<&AccountSettings>,
    own: Option<&str>,
    discovered: Result<Vec<OrgAccount>, String>,
    previous: &Roster,
    now: DateTime<Utc>,
) -> Roster {
    let discovered = match discovered {
        Ok(list) => list,
        Err(why) => {
            // Keep every account: a failed listing says nothing about them.
            let mut kept = previous.clone();
            kept.discovery_error = Some(why);
            add_own(&mut kept, settings, own, now);
            return kept;
        }
    };
    let mut next = Roster {
        discovered_at: Some(now),
        ..Roster::default()
    };
    let units: &[crate::config::accounts::OrganizationalUnitId] = settings
        .and_then(|s| s.organization.as_ref())
        .map_or(&[], |o| &o.organizational_units);
    for account in discovered {
        let in_scope = settings.is_none_or(|s| s.selects(&account.id))
            && (units.is_empty() || units.iter().any(|u| account.parents.contains(&u.0)));
        if !in_scope {
            continue;
        }
        if account.status == ACTIVE {
            let since = previous.watched.get(&account.id).map_or(now, |m| m.since);
            next.watched.insert(
                account.id.clone(),
                Member {
                    account,
                    own: false,
                    since,
                },
            );
        } else {
            let why = format!("account is {}", account.status);
            retire(&mut next, previous, account, why, now);
        }
    }
    add_own(&mut next, settings, own, now);
    for (id, member) in &previous.watched {
        if !next.watched.contains_key(id) && !next.retired.contains_key(id) {
            let why = if settings.is_some_and(|s| !s.selects(id)) {
                "excluded by the configuration"
            } else {
                "no longer listed (left the organization or its units)"
            };
            retire(&mut next, previous, member.account.clone(), why.into(), now);
        }
    }
    for (id, r) in &previous.retired {
        let back = next.watched.contains_key(id);
        if !back && !next.retired.contains_key(id) && now - r.left_at < RETIRED_KEPT {
            next.retired.insert(id.clone(), r.clone());
        }
    }
    next
}

/// Retired as of when it first left: a second discovery does not move `left_at`.
fn retire(
    next: &mut Roster,
    previous: &Roster,
    account: OrgAccount,
    why: String,
    now: DateTime<Utc>,
) {
    let left_at = previous
        .retired
        .get(&account.id)
        .filter(|_| !previous.watched.contains_key(&account.id))
        .map_or(now, |r| r.left_at);
    next.retired.insert(
        account.id.clone(),
        Retired {
            account,
            left_at,
            why,
        },
    );
}

fn add_own(
    roster: &mut Roster,
    settings: Option<&AccountSettings>,
    own: Option<&str>,
    now: DateTime<Utc>,
) {
    let Some(own) = own else { return };
    if settings.is_some_and(|s| s.exclude.iter().any(|a| a.0 == own)) {
        return;
    }
    roster.retired.remove(own);
    let member = roster.watched.entry(own.to_string()).or_insert(Member {
        account: OrgAccount::listed(own),
        own: true,
        since: now,
    });
    member.own = true;
    member.account.status = ACTIVE.to_string();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use chrono::TimeZone;
    use std::path::Path;

    const OWN: &str = "000000000000";

    fn t(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    fn settings(extra: &str) -> AccountSettings {
        settings_in("{}", extra)
    }

    fn settings_in(organization: &str, extra: &str) -> AccountSettings {
        parse_str(
            Path::new("a.yaml"),
            &format!(
                "organization: {organization}\nrole: {{ arn: 'arn:aws:iam::{{account}}:role/a' }}\n{extra}"
            ),
        )
        .unwrap()
    }

    fn acct(id: &str, status: &str, ou: &str) -> OrgAccount {
        OrgAccount {
            id: id.into(),
            name: format!("n{id}"),
            status: status.into(),
            parents: vec!["r-root".into(), ou.into()],
            ou_path: format!("Root/{ou}"),
            tags: BTreeMap::new(),
            joined: None,
        }
    }

    fn watched(r: &Roster) -> Vec<&str> {
        r.watched.keys().map(String::as_str).collect()
    }

    fn retired(r: &Roster) -> Vec<(&str, DateTime<Utc>)> {
        r.retired
            .iter()
            .map(|(k, v)| (k.as_str(), v.left_at))
            .collect()
    }

    #[test]
    fn discoveries_over_time() {
        let s = settings("exclude: ['999999999999']");
        let a = "111111111111";
        let b = "222222222222";
        let c = "333333333333";
        let x = "999999999999";
        // (hour, discovery, watched after, retired after with left_at hour)
        type Step<'a> = (
            u32,
            Result<Vec<OrgAccount>, String>,
            Vec<&'a str>,
            Vec<(&'a str, u32)>,
        );
        let steps: Vec<Step> = vec![
            // First discovery: active accounts and our own; the excluded one never appears.
            (
                1,
                Ok(vec![
                    acct(a, ACTIVE, "ou-p"),
                    acct(b, ACTIVE, "ou-p"),
                    acct(x, ACTIVE, "ou-p"),
                ]),
                vec![OWN, a, b],
                vec![],
            ),
            // A failed discovery keeps everyone watched.
            (2, Err("AccessDenied".into()), vec![OWN, a, b], vec![]),
            // b is suspended: retired at 3; c joins.
            (
                3,
                Ok(vec![
                    acct(a, ACTIVE, "ou-p"),
                    acct(b, "SUSPENDED", "ou-p"),
                    acct(c, ACTIVE, "ou-p"),
                ]),
                vec![OWN, a, c],
                vec![(b, 3)],
            ),
            // b still suspended: left_at does not move. a leaves the organization.
            (
                4,
                Ok(vec![acct(b, "SUSPENDED", "ou-p"), acct(c, ACTIVE, "ou-p")]),
                vec![OWN, c],
                vec![(a, 4), (b, 3)],
            ),
            // a comes back: watched again, no longer retired.
            (
                5,
                Ok(vec![
                    acct(a, ACTIVE, "ou-p"),
                    acct(b, "CLOSED", "ou-p"),
                    acct(c, ACTIVE, "ou-p"),
                ]),
                vec![OWN, a, c],
                vec![(b, 3)],
            ),
        ];
        let mut roster = Roster::default();
        for (hour, discovery, want_watched, want_retired) in steps {
            roster = next_roster(Some(&s), Some(OWN), discovery, &roster, t(hour));
            assert_eq!(watched(&roster), want_watched, "hour {hour}");
            let want: Vec<(&str, DateTime<Utc>)> =
                want_retired.iter().map(|(id, h)| (*id, t(*h))).collect();
            assert_eq!(retired(&roster), want, "hour {hour}");
        }
        assert!(roster.watched[OWN].own);
        assert!(!roster.watched[a].own);
        assert_eq!(
            roster.watched[c].since,
            t(3),
            "since the first discovery that found it"
        );
    }

    #[test]
    fn a_failed_discovery_is_reported_and_changes_nothing_else() {
        let s = settings("");
        let first = next_roster(
            Some(&s),
            Some(OWN),
            Ok(vec![acct("111111111111", ACTIVE, "ou-p")]),
            &Roster::default(),
            t(1),
        );
        let after = next_roster(Some(&s), Some(OWN), Err("throttled".into()), &first, t(2));
        assert_eq!(after.watched, first.watched);
        assert_eq!(after.discovered_at, Some(t(1)));
        assert_eq!(after.discovery_error.as_deref(), Some("throttled"));
        let again = next_roster(
            Some(&s),
            Some(OWN),
            Ok(vec![acct("111111111111", ACTIVE, "ou-p")]),
            &after,
            t(3),
        );
        assert_eq!(again.discovery_error, None);
    }

    #[test]
    fn an_empty_organization_retires_members_but_not_our_own_account() {
        let s = settings("");
        let first = next_roster(
            Some(&s),
            Some(OWN),
            Ok(vec![acct("111111111111", ACTIVE, "ou-p")]),
            &Roster::default(),
            t(1),
        );
        let empty = next_roster(Some(&s), Some(OWN), Ok(vec![]), &first, t(2));
        assert_eq!(watched(&empty), vec![OWN]);
        assert_eq!(retired(&empty), vec![("111111111111", t(2))]);
    }

    #[test]
    fn units_select_accounts_at_any_depth_and_our_own_account_regardless() {
        let s = settings_in("{ organizational_units: [ou-ab-prod1] }", "");
        let mut deep = acct("222222222222", ACTIVE, "ou-ab-prod1");
        deep.parents.push("ou-ab-apps1".into());
        let r = next_roster(
            Some(&s),
            Some(OWN),
            Ok(vec![
                acct("111111111111", ACTIVE, "ou-ab-dev1"),
                deep,
                acct(OWN, ACTIVE, "ou-ab-dev1"),
            ]),
            &Roster::default(),
            t(1),
        );
        assert_eq!(watched(&r), vec![OWN, "222222222222"]);
    }

    #[test]
    fn our_own_account_can_be_excluded_and_is_watched_without_a_role() {
        let s = settings(&format!("exclude: ['{OWN}']"));
        let r = next_roster(
            Some(&s),
            Some(OWN),
            Ok(vec![acct(OWN, ACTIVE, "ou-p")]),
            &Roster::default(),
            t(1),
        );
        assert!(r.watched.is_empty());
        // Without an accounts section: our own account only, as before organizations.
        let r = next_roster(None, Some(OWN), Ok(vec![]), &Roster::default(), t(1));
        assert_eq!(watched(&r), vec![OWN]);
        assert!(r.watched[OWN].own);
    }

    #[test]
    fn memberships_run_from_joining_until_leaving_for_a_discovered_organization_only() {
        let s = settings("");
        let mut joined = acct("111111111111", ACTIVE, "ou-p");
        joined.joined = Some(t(0));
        let first = next_roster(
            Some(&s),
            None,
            Ok(vec![joined.clone()]),
            &Roster::default(),
            t(1),
        );
        let mut closed = joined;
        closed.status = "CLOSED".into();
        let r = next_roster(Some(&s), None, Ok(vec![closed]), &first, t(2));
        let m = memberships(&s, &first);
        assert_eq!(
            m["111111111111"],
            Membership {
                joined: Some(t(0)),
                left: None
            }
        );
        let m = memberships(&s, &r);
        assert_eq!(
            m["111111111111"],
            Membership {
                joined: Some(t(0)),
                left: Some(t(2))
            }
        );
        let listed: AccountSettings = parse_str(
            Path::new("a.yaml"),
            "list: ['111111111111']\nrole: { arn: 'arn:aws:iam::{account}:role/a' }\n",
        )
        .unwrap();
        assert!(memberships(&listed, &r).is_empty());
    }

    #[test]
    fn excluding_a_watched_account_says_so_and_old_retirements_expire() {
        let first = next_roster(
            Some(&settings("")),
            None,
            Ok(vec![acct("111111111111", ACTIVE, "ou-p")]),
            &Roster::default(),
            t(1),
        );
        let s = settings("exclude: ['111111111111']");
        let r = next_roster(
            Some(&s),
            None,
            Ok(vec![acct("111111111111", ACTIVE, "ou-p")]),
            &first,
            t(2),
        );
        assert_eq!(
            r.retired["111111111111"].why,
            "excluded by the configuration"
        );
        let later = t(2) + RETIRED_KEPT;
        let r = next_roster(Some(&s), None, Ok(vec![]), &r, later);
        assert!(r.retired.is_empty(), "kept {RETIRED_KEPT} only");
    }

    #[test]
    fn shards_split_the_watched_accounts_and_a_resize_retires_none() {
        let s = settings("");
        let ids: Vec<String> = (0..30u64)
            .map(|i| format!("{:012}", 300_000_000_000 + i * 104_729))
            .collect();
        let mut discovered: Vec<OrgAccount> =
            ids.iter().map(|id| acct(id, ACTIVE, "ou-p")).collect();
        discovered.push(acct("999999999999", "SUSPENDED", "ou-p"));
        let full = next_roster(
            Some(&s),
            Some(OWN),
            Ok(discovered),
            &Roster::default(),
            t(1),
        );
        assert_eq!(
            on_shard(&full, &placement(&full, Shard::ALONE)),
            full,
            "one replica watches all"
        );

        let views = |total: u32| -> Vec<Roster> {
            (0..total)
                .map(|o| on_shard(&full, &placement(&full, Shard::new(o, total).unwrap())))
                .collect()
        };
        let three = views(3);
        let mut all: Vec<&String> = three.iter().flat_map(|r| r.watched.keys()).collect();
        all.sort();
        let expected: Vec<&String> = full.watched.keys().collect();
        assert_eq!(
            all, expected,
            "every account on exactly one of 3 shards, own included"
        );
        for (ordinal, view) in three.iter().enumerate() {
            assert_eq!(
                view.watched.len() + view.elsewhere.len(),
                full.watched.len()
            );
            for (id, other) in &view.elsewhere {
                assert_ne!(*other, ordinal as u32);
                assert!(
                    three[*other as usize].watched.contains_key(id),
                    "{id} is where it says"
                );
            }
            assert_eq!(
                view.retired, full.retired,
                "the suspended account listed on every shard"
            );
        }

        // 3 to 4 shards: the new shard takes about a quarter, a few more move between the old
        // ones (bounded loads: a shard that was full has room again), and none is retired:
        // the next discovery's roster is the same whatever the shards.
        let four = views(4);
        let four = &four;
        let moved: Vec<&String> = three
            .iter()
            .enumerate()
            .flat_map(|(o, r)| {
                r.watched
                    .keys()
                    .filter(move |id| !four[o].watched.contains_key(*id))
            })
            .collect();
        let to_new = moved
            .iter()
            .filter(|id| four[3].watched.contains_key(**id))
            .count();
        assert!(
            to_new * 4 >= moved.len() * 3,
            "most moves go to the new shard: {to_new} of {}",
            moved.len()
        );
        assert!(
            moved.len() <= full.watched.len() / 2,
            "{} of {} moved",
            moved.len(),
            full.watched.len()
        );
        let again = next_roster(
            Some(&s),
            Some(OWN),
            Ok(ids.iter().map(|id| acct(id, ACTIVE, "ou-p")).collect()),
            &full,
            t(2),
        );
        assert_eq!(again.watched.keys().collect::<Vec<_>>(), expected);
    }
}
