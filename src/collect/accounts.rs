//! Many accounts: clients per watched account (its own credentials, or the audit role), each
//! account's trails and recorders collected on its own, a bounded number at a time, then the
//! buckets and keys of the trails each account judges, read with the credentials of the
//! account that owns them (an organization trail's bucket usually sits in a log archive
//! account).
//!
//! An account that cannot be reached (the role cannot be assumed, the role answers as another
//! account) is an `error` of its own and never delays or fails another one: each account's
//! calls run under the SDK's timeouts and retries, and nothing waits for a failed account.

use super::TrailsResult;
use super::aws::Aws;
use super::{account, bucket, key, recorder, trails};
use crate::config::AccountSettings;
use crate::evaluate::accounts::{AccountSnapshot, judges};
use crate::plan::accounts::{Member, Roster};
use crate::plan::shards::Placement;
use crate::posture::{Fetched, Membership, Posture, Trail, TrailState, Unavailable, arn_account};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A watched account and the clients that reach it.
#[derive(Clone)]
pub struct Reach {
    pub member: Member,
    /// `None` for the daemon's own account.
    pub role_arn: Option<String>,
    pub aws: Arc<Aws>,
}

/// Clients for every watched account, those of `previous` kept (with their cached
/// credentials). Building them calls nothing: a role is assumed at the first call that
/// needs it.
pub async fn reach_all(
    own: &Arc<Aws>,
    settings: &AccountSettings,
    roster: &Roster,
    previous: &[Reach],
) -> Vec<Reach> {
    let mut out = Vec::with_capacity(roster.watched.len());
    for member in roster.watched.values() {
        let role_arn = (!member.own).then(|| settings.role.arn_for(&member.account.id));
        let kept = previous
            .iter()
            .find(|r| r.member.account.id == member.account.id && r.role_arn == role_arn);
        let aws = match (kept, &role_arn) {
            (Some(r), _) => r.aws.clone(),
            (None, None) => own.clone(),
            (None, Some(arn)) => Arc::new(own.assume_role(arn, &settings.role).await),
        };
        out.push(Reach {
            member: member.clone(),
            role_arn,
            aws,
        });
    }
    out
}

/// One account's trail poll: its trails with status and selectors, or why the account could
/// not be reached. GetCallerIdentity comes first: it proves the role can be assumed and that
/// it is the account meant.
pub async fn account_trails(reach: &Reach, regions: &[String]) -> Fetched<TrailsResult> {
    let account = &reach.member.account.id;
    match account::caller_account(&reach.aws).await {
        Err(e) => {
            return Err(Unavailable::api_failure(match &reach.role_arn {
                Some(arn) => format!("cannot assume {arn}: {e}"),
                None => e.reason,
            }));
        }
        Ok(answered) if &answered != account => {
            return Err(Unavailable::api_failure(format!(
                "{} answers as account {answered}, not {account}",
                reach
                    .role_arn
                    .as_deref()
                    .unwrap_or("the daemon's credentials")
            )));
        }
        Ok(_) => {}
    }
    let trails = match trails::list_trails(&reach.aws, regions).await {
        Ok(list) => {
            let mut states = Vec::with_capacity(list.len());
            for trail in list {
                states.push(trails::trail_state(&reach.aws, trail).await);
            }
            Ok(states)
        }
        Err(e) => Err(e),
    };
    Ok(TrailsResult {
        account: Ok(account.clone()),
        trails,
    })
}

/// Every account's trail poll, `concurrency` at a time, by account.
pub async fn trails_of_all(
    reach: &[Reach],
    regions: &[String],
    concurrency: usize,
) -> BTreeMap<String, Fetched<TrailsResult>> {
    // Owned inputs: a stream of borrowing futures trips the compiler's `Send` inference
    // inside the scheduler's jobs.
    let regions: Arc<[String]> = regions.into();
    futures_util::stream::iter(reach.to_vec())
        .map(move |r| {
            let regions = regions.clone();
            async move {
                let result = Box::pin(account_trails(&r, &regions)).await;
                (r.member.account.id, result)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// The snapshots evaluation works on, from the latest trail and posture polls. An account
/// whose trail poll could not reach it carries that reason.
/// `members`: when each account belonged (`plan::accounts::memberships`), for the member
/// folders of organization trails.
pub fn snapshots(
    trails: &BTreeMap<String, Fetched<TrailsResult>>,
    postures: &BTreeMap<String, Posture>,
    regions: &[String],
    members: &BTreeMap<String, Membership>,
) -> Vec<AccountSnapshot> {
    let members = Arc::new(members.clone());
    trails
        .iter()
        .map(|(account, result)| AccountSnapshot {
            account: account.clone(),
            snapshot: result.as_ref().map_err(Clone::clone).map(|r| {
                let mut s = r.snapshot(
                    regions,
                    Some(postures.get(account).cloned().unwrap_or_default()),
                );
                s.members = members.clone();
                s
            }),
        })
        .collect()
}

/// What a posture poll over every account found.
pub struct PostureOfAll {
    /// By account: its recorders, and the buckets and keys of the trails it judges.
    pub postures: BTreeMap<String, Posture>,
    /// The owner of each judged trail's bucket, where known (configured, or listed by its
    /// ListBuckets): its credentials read the bucket.
    pub bucket_readers: BTreeMap<String, String>,
}

/// Every reachable account's recorders and bucket names (`concurrency` at a time), then the
/// buckets and keys of the trails each account judges, read with their owners' credentials.
/// A bucket's owner is the configured one (`bucket_owners`), else the account whose
/// ListBuckets lists it.
pub async fn posture_of_all(
    reach: &[Reach],
    regions: &[String],
    settings: &AccountSettings,
    trails: &BTreeMap<String, Fetched<TrailsResult>>,
    placement: &Placement,
) -> PostureOfAll {
    let concurrency = settings.concurrency;
    let reachable: Vec<Reach> = reach
        .iter()
        .filter(|r| matches!(trails.get(&r.member.account.id), Some(Ok(_))))
        .cloned()
        .collect();
    let shared: Arc<[String]> = regions.into();
    let own_parts: Vec<(String, Posture, Vec<String>)> = futures_util::stream::iter(reachable)
        .map(move |r| {
            let regions = shared.clone();
            async move {
                let mut posture = Posture::default();
                for region in regions.iter() {
                    posture
                        .recorders
                        .insert(region.clone(), recorder::recorders(&r.aws, region).await);
                }
                let buckets = bucket::bucket_names(&r.aws, &regions[0])
                    .await
                    .unwrap_or_default();
                (r.member.account.id, posture, buckets)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut bucket_owner: BTreeMap<&str, &str> = own_parts
        .iter()
        .flat_map(|(a, _, buckets)| buckets.iter().map(move |b| (b.as_str(), a.as_str())))
        .collect();
    for (bucket, owner) in &settings.bucket_owners {
        bucket_owner.insert(bucket.as_str(), owner.0.as_str());
    }
    let clients: BTreeMap<&str, &Reach> = reach
        .iter()
        .map(|r| (r.member.account.id.as_str(), r))
        .collect();
    let judge = judges(
        &snapshots(trails, &BTreeMap::new(), regions, &BTreeMap::new()),
        placement,
    );
    let mut postures = BTreeMap::new();
    let mut bucket_readers = BTreeMap::new();
    for (account, mut posture, _) in own_parts.iter().cloned() {
        let judged: Vec<&Trail> = match trails.get(&account) {
            Some(Ok(TrailsResult {
                trails: Ok(states), ..
            })) => states
                .iter()
                .filter(|s| judge.of(&s.trail.arn) == Some(account.as_str()))
                .map(|s| &s.trail)
                .collect(),
            _ => Vec::new(),
        };
        for trail in judged {
            if let Some(name) = &trail.s3_bucket_name
                && !posture.buckets.contains_key(name)
            {
                let owner = bucket_owner.get(name.as_str()).copied();
                let value = match reader(owner, &account, &clients, "bucket", name) {
                    Ok((reach, reader)) => {
                        // Only a known owner reads for every trail of the bucket; else each
                        // judge reads its own trail's.
                        if owner.is_some() {
                            bucket_readers.insert(name.clone(), reader.to_string());
                        }
                        bucket::bucket_posture(&reach.aws, &trail.home_region, name, Some(reader))
                            .await
                    }
                    Err(e) => Err(e),
                };
                posture.buckets.insert(name.clone(), value);
            }
            if let Some(id) = &trail.kms_key_id
                && !posture.keys.contains_key(id)
            {
                let owner = arn_account(id);
                let value = match reader(owner, &account, &clients, "KMS key", id) {
                    Ok((reach, _)) => key::key_posture(&reach.aws, &trail.home_region, id).await,
                    Err(e) => Err(e),
                };
                posture.keys.insert(id.clone(), value);
            }
        }
        postures.insert(account, posture);
    }
    PostureOfAll {
        postures,
        bucket_readers,
    }
}

/// A trail whose bucket a bucket pass reads, by the account that judges it.
#[derive(Clone)]
pub struct BucketRead {
    pub judge: String,
    pub state: TrailState,
    /// The clients of the bucket's owner (found by the posture poll), else the judge's.
    pub aws: Arc<Aws>,
    /// `None` when the owner's clients read it; else the judge, whose clients read only its
    /// own trails' buckets (another account's trail is an `error` that says where to read).
    pub as_account: Option<String>,
}

/// The trails whose buckets a bucket pass reads: each trail once, by its judge, with the
/// clients of the account that owns the bucket (`bucket_readers`, from the posture poll).
pub fn bucket_reads(
    reach: &[Reach],
    trails: &BTreeMap<String, Fetched<TrailsResult>>,
    bucket_readers: &BTreeMap<String, String>,
    placement: &Placement,
) -> Vec<BucketRead> {
    let judge = judges(
        &snapshots(trails, &BTreeMap::new(), &[], &BTreeMap::new()),
        placement,
    );
    let clients: BTreeMap<&str, &Arc<Aws>> = reach
        .iter()
        .map(|r| (r.member.account.id.as_str(), &r.aws))
        .collect();
    let mut reads = Vec::new();
    for (account, result) in trails {
        let Ok(TrailsResult {
            trails: Ok(states), ..
        }) = result
        else {
            continue;
        };
        for state in states {
            let Some(bucket) = &state.trail.s3_bucket_name else {
                continue;
            };
            if judge.of(&state.trail.arn) != Some(account.as_str()) {
                continue;
            }
            let owner = bucket_readers
                .get(bucket)
                .and_then(|o| Some((*clients.get(o.as_str())?).clone()));
            let (aws, as_account) = match owner {
                Some(aws) => (aws, None),
                None => match clients.get(account.as_str()) {
                    Some(aws) => ((*aws).clone(), Some(account.clone())),
                    None => continue,
                },
            };
            reads.push(BucketRead {
                judge: account.clone(),
                state: state.clone(),
                aws,
                as_account,
            });
        }
    }
    reads
}

/// Whose credentials read a bucket or key: its owner's when the owner is watched; the judging
/// account's when the owner is unknown (S3 or KMS answers, or refuses with a reason). An owner
/// outside the watched accounts is an `error` that says so, never a failure.
fn reader<'a>(
    owner: Option<&'a str>,
    judge: &'a str,
    clients: &BTreeMap<&str, &'a Reach>,
    what: &str,
    name: &str,
) -> Fetched<(&'a Reach, &'a str)> {
    let account = owner.unwrap_or(judge);
    match clients.get(account) {
        Some(reach) => Ok((reach, account)),
        None => Err(Unavailable::new(format!(
            "{what} {name} belongs to account {account}, which is not watched: add it to the accounts (or its audit role) to check it"
        ))),
    }
}
