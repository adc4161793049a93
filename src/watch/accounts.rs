//! Many accounts in the daemon (the `accounts` section): the discovery poller, and the trail
//! and posture polls over every watched account.
//!
//! Discovery keeps the roster (plan/accounts.rs decides it) and the clients of each account.
//! The trail poll reaches every account, `concurrency` at a time; an account that cannot be
//! reached is an `error` of its own (`trailwarden_account_up` 0, the reason in `/status`) and
//! holds no one else up. The posture poll reads each judged trail's bucket and key with the
//! owner's credentials. The bucket poller reads each judged trail's bucket with the owner's
//! clients (an organization trail's every member folder), and the event history poller reads
//! every reached account's history.

use super::events::watched_of;
use super::runner::Overlap;
use super::{Watch, posture_errors, trails_errors};
use crate::collect::TrailsResult;
use crate::collect::accounts::{
    BucketRead, Reach, bucket_reads, posture_of_all, reach_all, snapshots, trails_of_all,
};
use crate::collect::{account, organization};
use crate::config::AccountSettings;
use crate::evaluate::Finding;
use crate::evaluate::accounts::{AccountSnapshot, evaluate_accounts, share_evidence, unreachable};
use crate::evaluate::detection::Watched;
use crate::plan::accounts::{
    OrgAccount, Roster, memberships, next_roster, on_shard, owners_elsewhere, placement,
};
use crate::plan::shards::{Placement, Shard};
use crate::posture::{Fetched, Posture, Unavailable};
use crate::publish::status::{self, TrailSummary};
use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const ACCOUNTS: &str = "accounts";

/// What the daemon keeps about the watched accounts.
pub struct AccountsWatch {
    /// Replaced on SIGHUP (`Watch::set_accounts`).
    settings: RwLock<Arc<AccountSettings>>,
    own_id: Mutex<Option<String>>,
    /// Every account in scope, whichever shard watches it: the next discovery starts from
    /// it, and an organization trail's member folders are judged against it.
    roster: Mutex<Roster>,
    shard: Shard,
    /// Where each account of the roster is watched, placed at each discovery.
    placement: Mutex<Placement>,
    /// The clients of this shard's accounts.
    reach: Mutex<Arc<Vec<Reach>>>,
    /// The clients of configured bucket owners that another shard watches: they read the
    /// buckets of trails judged here (an organization trail's, in a log archive account).
    owners_elsewhere: Mutex<Arc<Vec<Reach>>>,
    trails: Mutex<Option<BTreeMap<String, Fetched<TrailsResult>>>>,
    postures: Mutex<Option<BTreeMap<String, Posture>>>,
    /// Which account's clients read each judged trail's bucket (from the posture poll).
    bucket_readers: Mutex<Option<BTreeMap<String, String>>>,
}

impl AccountsWatch {
    pub fn new(settings: AccountSettings, shard: Shard) -> AccountsWatch {
        AccountsWatch {
            settings: RwLock::new(Arc::new(settings)),
            own_id: Mutex::new(None),
            roster: Mutex::new(Roster::default()),
            shard,
            placement: Mutex::new(Placement::unplaced(shard)),
            reach: Mutex::new(Arc::new(Vec::new())),
            owners_elsewhere: Mutex::new(Arc::new(Vec::new())),
            trails: Mutex::new(None),
            postures: Mutex::new(None),
            bucket_readers: Mutex::new(None),
        }
    }

    pub(super) fn settings(&self) -> Arc<AccountSettings> {
        self.settings.read().clone()
    }

    /// The accounts the last trail poll reached, with their clients.
    pub(super) fn reached(&self) -> Vec<Reach> {
        let trails = self.trails.lock();
        let Some(trails) = trails.as_ref() else {
            return Vec::new();
        };
        self.reach
            .lock()
            .iter()
            .filter(|r| matches!(trails.get(&r.member.account.id), Some(Ok(_))))
            .cloned()
            .collect()
    }

    /// Every account's trails, and the keys the posture polls read.
    pub(super) fn trail_states_and_keys(
        &self,
    ) -> (
        Vec<crate::posture::TrailState>,
        BTreeMap<String, crate::posture::Fetched<crate::posture::KeyPosture>>,
    ) {
        let trails = (self.trails.lock().iter())
            .flat_map(|m| m.values())
            .flatten()
            .flat_map(|r| r.trails.iter().flatten().cloned())
            .collect();
        let keys = (self.postures.lock().iter())
            .flat_map(|m| m.values())
            .flat_map(|p| p.keys.clone())
            .collect();
        (trails, keys)
    }

    /// The resources every account's trails use; `None` before the first trail poll.
    pub(super) fn watched(&self) -> Option<Watched> {
        let trails = self.trails.lock();
        let postures = self.postures.lock();
        let states = trails
            .as_ref()?
            .values()
            .flatten()
            .flat_map(|r| r.trails.iter().flatten());
        Some(watched_of(states, postures.iter().flat_map(|p| p.values())))
    }

    /// The trails whose buckets the bucket poller reads, each by its judge with the bucket
    /// owner's clients; `None` until a posture poll has found the owners.
    pub(super) fn bucket_reads(&self) -> Option<Vec<BucketRead>> {
        let trails = self.trails.lock().clone()?;
        let readers = self.bucket_readers.lock().clone()?;
        Some(bucket_reads(
            &self.readers(),
            &trails,
            &readers,
            &self.placement.lock().clone(),
        ))
    }

    /// The clients that may read a bucket: this shard's accounts', and the bucket owners'
    /// watched elsewhere.
    fn readers(&self) -> Vec<Reach> {
        let mut all = self.reach.lock().to_vec();
        all.extend(self.owners_elsewhere.lock().iter().cloned());
        all
    }
}

/// What evaluation publishes for many accounts.
pub(super) struct Evaluated {
    pub findings: Vec<Finding>,
    pub trails: Vec<TrailSummary>,
    pub accounts: serde_json::Value,
    pub own: Option<String>,
}

impl Watch {
    /// Discovery: who is watched. When that changes, a trail poll follows at once, so a new
    /// account is checked without waiting for the next tick. Returns whether it did.
    pub async fn poll_accounts(&self) -> bool {
        let Some(a) = &self.accounts else {
            return false;
        };
        let mut changed = false;
        self.execute(&self.pollers.accounts, Overlap::Skip, async {
            let (errors, c) = self.run_accounts(a).await;
            changed = c;
            errors
        })
        .await;
        if changed {
            // Boxed, as the polls below: their futures hold the SDK's, and nested unboxed
            // they overflowed a runtime thread's stack in debug builds.
            Box::pin(self.poll_trails()).await;
        }
        changed
    }

    /// A reloaded `accounts` section: the next discovery, at once, follows it. Clients are
    /// made anew when the role changes (its ARN template, external ID, session or duration).
    /// Returns false when the daemon must restart instead: accounts added or removed as a
    /// whole, or the discovery schedule changed.
    pub async fn set_accounts(&self, new: Option<&AccountSettings>) -> bool {
        let (Some(a), Some(new)) = (&self.accounts, new) else {
            return self.accounts.is_none() && new.is_none();
        };
        let old = a.settings();
        if old.as_ref() == new {
            return true;
        }
        let refresh = |s: &AccountSettings| s.organization.as_ref().map(|o| o.refresh.clone());
        let restart = refresh(&old) != refresh(new);
        if old.role != new.role {
            *a.reach.lock() = Arc::new(Vec::new());
            *a.owners_elsewhere.lock() = Arc::new(Vec::new());
        }
        *a.settings.write() = Arc::new(new.clone());
        tracing::info!("accounts section reloaded: discovering again");
        Box::pin(self.poll_accounts()).await;
        !restart
    }

    async fn run_accounts(&self, a: &AccountsWatch) -> (Vec<Unavailable>, bool) {
        let mut errors = Vec::new();
        let own_id = match account::caller_account(&self.aws).await {
            Ok(id) => {
                *a.own_id.lock() = Some(id.clone());
                Some(id)
            }
            Err(e) => {
                errors.push(e);
                a.own_id.lock().clone()
            }
        };
        let settings = a.settings();
        let discovered = match &settings.list {
            Some(list) => Ok(list.iter().map(|id| OrgAccount::listed(&id.0)).collect()),
            None => organization::discover(&self.aws).await.map_err(|e| {
                let why = format!("cannot list the organization's accounts: {e}");
                errors.push(e);
                why
            }),
        };
        let previous = a.roster.lock().clone();
        let roster = next_roster(
            Some(&settings),
            own_id.as_deref(),
            discovered,
            &previous,
            Utc::now(),
        );
        let placed = placement(&roster, a.shard);
        let mine = on_shard(&roster, &placed);
        let changed = !mine
            .watched
            .keys()
            .eq(on_shard(&previous, &placement(&previous, a.shard))
                .watched
                .keys());
        let kept = a.reach.lock().clone();
        let reach = reach_all(&self.aws, &settings, &mine, &kept).await;
        let kept = a.owners_elsewhere.lock().clone();
        let owners = owners_elsewhere(&settings, &roster, &placed);
        let owners_reach = reach_all(&self.aws, &settings, &owners, &kept).await;
        for r in roster.retired.keys() {
            tracing::debug!(account = %r, "retired account");
        }
        if changed {
            tracing::info!(
                watched = mine.watched.len(),
                other_shards = mine.elsewhere.len(),
                retired = mine.retired.len(),
                "watched accounts changed"
            );
        }
        self.published.metrics.publish_accounts(&mine);
        *a.reach.lock() = Arc::new(reach);
        *a.owners_elsewhere.lock() = Arc::new(owners_reach);
        *a.placement.lock() = placed;
        *a.roster.lock() = roster;
        (errors, changed)
    }

    /// The trail poll over every watched account. Returns the errors and whether a bucket or
    /// key is new to the posture poll.
    pub(super) async fn run_trails_of_accounts(
        &self,
        a: &AccountsWatch,
    ) -> (Vec<Unavailable>, bool) {
        let reach = a.reach.lock().clone();
        // No account yet because no discovery answered: wait for one. A shard that
        // discovered and owns none goes on, and publishes its empty verdict (so it is
        // ready, and says what it watches).
        if reach.is_empty() && a.roster.lock().discovered_at.is_none() {
            tracing::debug!("trail poll before the first discovery: skipped");
            return (Vec::new(), false);
        }
        let results = Box::pin(trails_of_all(
            &reach,
            &self.regions,
            a.settings().concurrency,
        ))
        .await;
        let mut errors = Vec::new();
        for result in results.values() {
            match result {
                Ok(r) => errors.extend(trails_errors(r)),
                Err(e) => errors.push(e.clone()),
            }
        }
        let m = &self.published.metrics;
        m.publish_account_up(&results);
        let mut arns = BTreeSet::new();
        let seen = results.iter().flat_map(|(account, r)| {
            r.iter()
                .flat_map(|r| r.trails.iter().flatten())
                .map(move |s| (account.as_str(), s))
        });
        m.publish_trail_logging(seen.inspect(|(_, s)| {
            arns.insert(s.trail.arn.clone());
        }));
        m.trails.set(arns.len() as i64);
        let unseen = {
            let postures = a.postures.lock();
            postures.as_ref().is_none_or(|p| has_unseen(&results, p))
        };
        *a.trails.lock() = Some(results);
        self.evaluate_and_publish().await;
        (errors, unseen)
    }

    /// The posture poll over every reachable account.
    pub(super) async fn run_posture_of_accounts(&self, a: &AccountsWatch) -> Vec<Unavailable> {
        let Some(trails) = a.trails.lock().clone() else {
            tracing::debug!("posture poll before the first trail poll: skipped");
            return Vec::new();
        };
        let placement = a.placement.lock().clone();
        let all = Box::pin(posture_of_all(
            &a.readers(),
            &self.regions,
            &a.settings(),
            &trails,
            &placement,
        ))
        .await;
        let errors: Vec<Unavailable> = all.postures.values().flat_map(posture_errors).collect();
        *a.postures.lock() = Some(all.postures);
        *a.bucket_readers.lock() = Some(all.bucket_readers);
        self.evaluate_and_publish().await;
        errors
    }

    /// Evaluation over every account, once both polls have run. The bucket poller's evidence
    /// goes to the account that judges each trail.
    pub(super) fn evaluate_accounts(
        &self,
        a: &AccountsWatch,
        now: chrono::DateTime<Utc>,
    ) -> Option<Evaluated> {
        let trails = a.trails.lock().clone()?;
        let postures = a.postures.lock().clone()?;
        let own = a.own_id.lock().clone();
        let roster = a.roster.lock().clone();
        let placement = a.placement.lock().clone();
        let mut accounts: Vec<AccountSnapshot> = snapshots(
            &trails,
            &postures,
            &self.regions,
            &memberships(&a.settings(), &roster),
        );
        if let Some(evidence) = &self.latest.lock().evidence {
            share_evidence(&mut accounts, evidence, &placement);
        }
        let policies = self.policies.read().clone();
        let findings = evaluate_accounts(&policies, &accounts, now, &placement);
        let mut summaries: Vec<TrailSummary> = Vec::new();
        let mut listed = BTreeSet::new();
        for r in trails.values().flatten() {
            for s in status::trail_summaries(r) {
                if listed.insert(s.arn.clone()) {
                    summaries.push(s);
                }
            }
        }
        Some(Evaluated {
            findings,
            trails: summaries,
            accounts: status::accounts_json(
                &on_shard(&roster, &placement),
                &unreachable(&accounts),
            ),
            own,
        })
    }
}

/// Whether a trail poll found a bucket or key that no posture holds yet.
fn has_unseen(
    results: &BTreeMap<String, Fetched<TrailsResult>>,
    postures: &BTreeMap<String, Posture>,
) -> bool {
    let held = |f: &dyn Fn(&Posture) -> bool| postures.values().any(f);
    results.values().flatten().any(|r| {
        r.trails.iter().flatten().any(|s| {
            let t = &s.trail;
            t.s3_bucket_name
                .as_ref()
                .is_some_and(|b| !held(&|p| p.buckets.contains_key(b)))
                || t.kms_key_id
                    .as_ref()
                    .is_some_and(|k| !held(&|p| p.keys.contains_key(k)))
        })
    })
}
