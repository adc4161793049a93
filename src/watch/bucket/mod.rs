//! One pass over one trail's bucket: every account folder (an organization's members too) and
//! every delivering region.
//!
//! - `log_files.rs`: each log folder from its cursor (`plan::log_folder`); new log files read
//!   once (hash for their digest, records through the detections, logging transitions), the
//!   claims, hashes, retries and cursor of each page stored in one transaction.
//! - `digests.rs`: each digest chain from the last digest judged (`plan::digest_folder`,
//!   `integrity::chain`), held at what it cannot read yet.
//!
//! A region whose folder cannot be read is marked (`log_error`, `digest_error`): its policies
//! say `error`, the other regions are judged. `check` runs the same pass once over a fresh
//! store.

mod digests;
mod log_files;

pub use log_files::{Folder, read_announced};

use crate::collect::aws::Aws;
use crate::collect::objects::{self, ReadLimits};
use crate::config::{BucketSettings, DetectionSet};
use crate::evaluate::detection::Watched;
use crate::integrity::chain::{ChainScope, Transition};
use crate::integrity::layout::AccountRoot;
use crate::integrity::verdict::Item;
use crate::posture::{RegionEvidence, TrailEvidence, TrailState, Unavailable, UnreadObject};
use crate::state::{StateError, Store, StoredDetection, UnreadRow};
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Verdicts other than valid ones stay in the evidence this long.
pub const VERDICT_MEMORY: Duration = Duration::days(30);

pub struct Inputs<'a> {
    pub aws: &'a Aws,
    pub store: &'a Store,
    pub settings: &'a BucketSettings,
    pub limits: &'a ReadLimits,
    /// Detections to run log records through, with the watched resources; `None` in `check`
    /// (log files are hashed, their records not counted).
    pub detections: Option<(Arc<DetectionSet>, Arc<Watched>)>,
    pub now: DateTime<Utc>,
    /// Gaps between deliveries longer than this are kept as holes (the coverage policy's
    /// tolerance).
    pub hole_tolerance: Duration,
    /// A sign of progress: a page listed, objects read.
    pub tick: &'a (dyn Fn() + Sync),
    /// When the notification queues (`bucket.queues`) were last all found empty: a log file
    /// written well before that and found by the listing was missed by them. `None` without
    /// queues.
    pub notified_until: Option<DateTime<Utc>>,
}

/// What one pass over one trail's bucket found.
#[derive(Debug, Default)]
pub struct TrailPass {
    pub evidence: TrailEvidence,
    /// Detections of events this pass claimed first, to publish, with whether they ask for a
    /// re-collection of what they touched.
    pub detections: Vec<(StoredDetection, bool)>,
    /// Verdicts found for the first time, with (account, region).
    pub new_items: Vec<(String, String, Item)>,
    /// Log files validated against their digest, per (account, region).
    pub logs_validated: BTreeMap<(String, String), u64>,
    /// Records read from log files, per (account, region) of the file.
    pub records: BTreeMap<(String, String), u64>,
    /// Records that could not be read (each logged with the file and position).
    pub unreadable_records: u64,
    /// Log files not read because they are older than the read window, per (account, region).
    pub missed: BTreeMap<(String, String), u64>,
    /// Reads that failed: (kind, class of reason).
    pub read_failures: Vec<(&'static str, &'static str)>,
    /// Events claimed first by this pass.
    pub claims: u64,
    /// Log files the listing found that the notification queues had not announced.
    pub found_by_listing: u64,
    /// Log files read because a notification announced them.
    pub announced: u64,
    pub errors: Vec<Unavailable>,
}

impl TrailPass {
    /// Adds what another read of the same trail found (folders, and announced log files, are
    /// read side by side, each into a pass of its own).
    pub(in crate::watch) fn absorb(&mut self, other: TrailPass) {
        let TrailPass {
            evidence,
            detections,
            new_items,
            logs_validated,
            records,
            unreadable_records,
            missed,
            read_failures,
            claims,
            found_by_listing,
            announced,
            errors,
        } = other;
        self.evidence.regions.extend(evidence.regions);
        self.evidence.digests_seen |= evidence.digests_seen;
        self.detections.extend(detections);
        self.new_items.extend(new_items);
        for (counts, more) in [
            (&mut self.logs_validated, logs_validated),
            (&mut self.records, records),
            (&mut self.missed, missed),
        ] {
            for (k, n) in more {
                *counts.entry(k).or_default() += n;
            }
        }
        self.unreadable_records += unreadable_records;
        self.read_failures.extend(read_failures);
        self.claims += claims;
        self.found_by_listing += found_by_listing;
        self.announced += announced;
        self.errors.extend(errors);
    }
}

/// Account folders read at once in one trail's pass (an organization trail has one per
/// member); each reads its log files `bucket.concurrency` at a time.
const FOLDERS_AT_ONCE: usize = 8;

/// Reads one trail's bucket.
pub async fn read_trail_bucket(
    inputs: &Inputs<'_>,
    state: &TrailState,
    own_account: Option<&str>,
) -> Result<TrailPass, Unavailable> {
    let trail = &state.trail;
    let bucket = trail
        .s3_bucket_name
        .as_deref()
        .ok_or_else(|| Unavailable::new("trail names no S3 bucket"))?;
    if let Some(own) = own_account
        && !trail.account.is_empty()
        && trail.account != own
    {
        return Err(Unavailable::new(format!(
            "{} belongs to account {}, whose credentials read its bucket, and this replica \
             holds none for it (with shards, name the bucket's owner in accounts.bucket_owners)",
            trail.name, trail.account
        )));
    }
    let region = objects::bucket_region(inputs.aws, &trail.home_region, bucket).await?;
    let roots =
        objects::account_roots(inputs.aws, &region, bucket, trail.s3_key_prefix.as_deref()).await?;
    (inputs.tick)();
    let retries = inputs
        .store
        .run(|s| s.unread_objects(None))
        .await
        .map_err(store_failure)?;
    let mut pass = TrailPass::default();
    // By index: a stream of borrowing closures trips the compiler's `Send` inference inside
    // the scheduler's jobs.
    let (roots_ref, retries_ref, region_ref) = (&roots, &retries, &region);
    let read: Vec<Result<TrailPass, Unavailable>> = futures_util::stream::iter(0..roots.len())
        .map(move |i| async move {
            let root = &roots_ref[i];
            let mut pass = TrailPass::default();
            for r in &region_folders(inputs.aws, region_ref, bucket, root, "CloudTrail").await? {
                let folder = log_files::Folder {
                    bucket_region: region_ref,
                    bucket,
                    root,
                    region: r,
                    trail: &trail.name,
                };
                let mut evidence = RegionEvidence {
                    account: root.account.clone(),
                    region: r.clone(),
                    ..Default::default()
                };
                match log_files::read_folder(inputs, &folder, retries_ref, &mut pass).await {
                    Ok(coverage) => evidence.coverage = coverage,
                    Err(e) => {
                        evidence.log_error = Some(e.reason.clone());
                        pass.errors.push(e);
                    }
                }
                pass.evidence.regions.push(evidence);
            }
            Ok(pass)
        })
        .buffered(FOLDERS_AT_ONCE)
        .collect()
        .await;
    for folder_pass in read {
        pass.absorb(folder_pass?);
    }
    // Read after the log files: transitions they held count for this pass's digests.
    let names = [trail.name.clone(), trail.arn.clone()];
    let mut transitions = inputs
        .store
        .run(move |s| s.transitions(&[names[0].as_str(), names[1].as_str()]))
        .await
        .map_err(store_failure)?;
    // GetTrailStatus keeps the latest start and stop too.
    if let Ok(status) = &state.status {
        for (t, name) in [
            (status.start_logging_time, "StartLogging"),
            (status.stop_logging_time, "StopLogging"),
        ] {
            if let Some(time) = t {
                transitions.push(Transition {
                    time,
                    event_name: name.to_string(),
                });
            }
        }
    }
    transitions.sort_by_key(|t| t.time);
    let latest = |names: &[&str]| {
        transitions
            .iter()
            .filter(|t| names.contains(&t.event_name.as_str()))
            .map(|t| t.time)
            .max()
    };
    pass.evidence.created = latest(&["CreateTrail"]);
    pass.evidence.changed = latest(&["CreateTrail", "UpdateTrail", "StartLogging"]);
    let transitions_ref = &transitions;
    type Validated = (
        String,
        String,
        Result<Option<crate::plan::digest_folder::DigestFolder>, Unavailable>,
    );
    let validated: Vec<Result<(Vec<Validated>, TrailPass), Unavailable>> =
        futures_util::stream::iter(0..roots.len())
            .map(move |i| async move {
                let root = &roots_ref[i];
                let mut pass = TrailPass::default();
                let mut chains = Vec::new();
                let kind = "CloudTrail-Digest";
                for r in &region_folders(inputs.aws, region_ref, bucket, root, kind).await? {
                    let scope = ChainScope {
                        bucket: bucket.to_string(),
                        account: root.account.clone(),
                        region: r.clone(),
                    };
                    let chain = digests::Chain {
                        bucket_region: region_ref,
                        state,
                        root,
                        scope: &scope,
                        transitions: transitions_ref,
                    };
                    let result =
                        digests::validate_folder(inputs, &chain, retries_ref, &mut pass).await;
                    chains.push((root.account.clone(), r.clone(), result));
                    (inputs.tick)();
                }
                Ok((chains, pass))
            })
            .buffered(FOLDERS_AT_ONCE)
            .collect()
            .await;
    for found in validated {
        let (chains, folder_pass) = found?;
        pass.absorb(folder_pass);
        for (account, r, result) in chains {
            let entry = region_entry(&mut pass.evidence, &account, &r);
            match result {
                Ok(Some(folder)) => {
                    entry.origin = folder.origin;
                    entry.validated_until = folder.validated_until;
                    pass.evidence.digests_seen = true;
                }
                Ok(None) => {}
                Err(e) => {
                    entry.digest_error = Some(e.reason.clone());
                    pass.errors.push(e);
                }
            }
        }
    }
    let (name, now) = (trail.name.clone(), inputs.now);
    let read_window =
        Duration::from_std(inputs.settings.read_window.0).unwrap_or(Duration::days(3));
    let (verdicts, waiting) = inputs
        .store
        .run(move |s| {
            let verdicts = s.integrity_items(now - VERDICT_MEMORY)?;
            // Hashes and listings older than the read window are never needed again.
            s.forget_log_files(now - read_window - Duration::hours(1))?;
            Ok::<_, StateError>((verdicts, s.unread_objects(None)?))
        })
        .await
        .map_err(store_failure)?;
    pass.evidence.verdicts = verdicts.into_iter().filter(|v| v.trail == name).collect();
    pass.evidence.unread = waiting
        .into_iter()
        .filter(|u| belongs(u, bucket, &roots, &trail.name))
        .map(|u| UnreadObject {
            object: u.object,
            kind: u.kind,
            account: u.account,
            region: u.region,
            reason: u.retry.reason,
            first_failed: u.retry.first_failed,
            attempts: u.retry.attempts,
            next_attempt: u.retry.next_attempt,
        })
        .collect();
    Ok(pass)
}

/// Whether a waiting retry is this trail's: a log file in one of its account folders, or a
/// digest chain of the trail.
fn belongs(u: &UnreadRow, bucket: &str, roots: &[AccountRoot], trail: &str) -> bool {
    match u.kind.as_str() {
        "digest" => u.trail == trail && u.object.starts_with(&format!("{bucket}/")),
        _ => roots
            .iter()
            .any(|r| u.object.starts_with(&format!("{bucket}/{}", r.path()))),
    }
}

/// The region folders of `root`'s `CloudTrail` or `CloudTrail-Digest` folder.
async fn region_folders(
    aws: &Aws,
    region: &str,
    bucket: &str,
    root: &AccountRoot,
    kind: &str,
) -> Result<Vec<String>, Unavailable> {
    objects::folders(aws, region, bucket, &format!("{}{kind}/", root.path())).await
}

fn region_entry<'a>(
    e: &'a mut TrailEvidence,
    account: &str,
    region: &str,
) -> &'a mut RegionEvidence {
    if let Some(i) = e
        .regions
        .iter()
        .position(|r| r.account == account && r.region == region)
    {
        return &mut e.regions[i];
    }
    e.regions.push(RegionEvidence {
        account: account.to_string(),
        region: region.to_string(),
        ..Default::default()
    });
    let last = e.regions.len() - 1;
    &mut e.regions[last]
}

fn store_failure(e: StateError) -> Unavailable {
    Unavailable::api_failure(format!("state store: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folders read side by side, each into a pass of its own: the trail's pass counts what
    /// each found, once, and keeps every region in the order read.
    #[test]
    fn a_trail_pass_adds_up_its_folders_passes() {
        let key = |a: &str| (a.to_string(), "us-east-1".to_string());
        let region = |a: &str| RegionEvidence {
            account: a.to_string(),
            region: "us-east-1".to_string(),
            ..Default::default()
        };
        let folder = |a: &str, records: u64, validated: u64| {
            let mut p = TrailPass::default();
            p.evidence.regions.push(region(a));
            p.records.insert(key(a), records);
            p.records.insert(key("shared"), 1);
            p.logs_validated.insert(key(a), validated);
            p.unreadable_records = 1;
            p.claims = records;
            p.read_failures.push(("log", "timeout"));
            p.errors.push(Unavailable::new(format!("{a} failed once")));
            p
        };
        let mut pass = TrailPass::default();
        pass.absorb(folder("111111111111", 5, 2));
        pass.absorb(folder("222222222222", 7, 0));
        let accounts: Vec<&str> = pass
            .evidence
            .regions
            .iter()
            .map(|r| r.account.as_str())
            .collect();
        assert_eq!(accounts, ["111111111111", "222222222222"]);
        assert_eq!(pass.records[&key("111111111111")], 5);
        assert_eq!(pass.records[&key("shared")], 2);
        assert_eq!(pass.logs_validated[&key("222222222222")], 0);
        assert_eq!(pass.unreadable_records, 2);
        assert_eq!(pass.claims, 12);
        assert_eq!(pass.read_failures.len(), 2);
        assert_eq!(pass.errors.len(), 2);
        assert!(!pass.evidence.digests_seen);
    }
}
