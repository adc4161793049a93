//! The bucket poller: for each trail, its bucket's log and digest folders (every account
//! folder, an organization's members too, and every region), listed incrementally from the
//! cursors in the state store.
//!
//! - New log files are read once: SHA-256 kept for their digest, records run through the
//!   same detections as event history (deduplicated by event id across both sources), and
//!   logging transitions remembered to explain chain restarts.
//! - Delivery times feed the coverage of each folder (oldest, newest, holes); the whole
//!   folder is listed again every `rescan`, since deletions only show that way.
//! - New digests are validated from the last validated one (`integrity::chain`); log files
//!   they list are checked against the hash taken when read, if their ETag is unchanged,
//!   else read again.
//!
//! `check` runs the same pass once over a fresh store.

use crate::collect::aws::Aws;
use crate::collect::chain as fetch;
use crate::collect::objects::{self, Listed, Read};
use crate::collect::public_keys;
use crate::config::{BucketSettings, DetectionSet};
use crate::evaluate::detection::{Hit, Watched, detect, wants};
use crate::integrity::chain::{self, Anchor, ChainScope, LogState, Transition};
use crate::integrity::coverage::Coverage;
use crate::integrity::digest::DigestDoc;
use crate::integrity::layout::{self, AccountRoot};
use crate::integrity::verdict::{Class, Item};
use crate::posture::{RegionEvidence, TrailEvidence, TrailState, Unavailable};
use crate::state::{FolderState, LogFileRow, StateStore};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Verdicts other than valid ones stay in the evidence this long.
pub const VERDICT_MEMORY: Duration = Duration::days(30);

/// Log file hashes are kept this long after delivery: a digest lists them within the hour.
const LOG_HASH_MEMORY: Duration = Duration::days(3);

/// Events that start or stop a trail's digest chains.
const TRANSITIONS: [&str; 5] = [
    "StopLogging",
    "StartLogging",
    "UpdateTrail",
    "CreateTrail",
    "DeleteTrail",
];

pub struct Inputs<'a> {
    pub aws: &'a Aws,
    pub store: &'a StateStore,
    pub settings: &'a BucketSettings,
    /// Detections to run log records through, with the watched resources.
    pub detections: Option<(&'a DetectionSet, &'a Watched)>,
    pub now: DateTime<Utc>,
    /// Gaps between deliveries longer than this are kept as holes (the coverage policy's
    /// tolerance).
    pub hole_tolerance: Duration,
}

/// What one pass over one trail's bucket found.
#[derive(Debug, Default)]
pub struct TrailPass {
    pub evidence: TrailEvidence,
    /// Detection hits of events not processed before by either source.
    pub hits: Vec<Hit>,
    /// Verdicts found for the first time, with (account, region).
    pub new_items: Vec<(String, String, Item)>,
    /// Log files validated against their digest, per (account, region).
    pub logs_validated: BTreeMap<(String, String), u64>,
    /// Records read from log files, per (account, region) of the file.
    pub records: BTreeMap<(String, String), u64>,
    /// Records that could not be read (each logged with the file and position).
    pub unreadable_records: u64,
    pub errors: Vec<Unavailable>,
}

/// Saved state of a log folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LogFolder {
    coverage: Coverage,
}

/// Saved state of a trail's digest chain in one folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DigestFolder {
    anchor: Option<Anchor>,
    /// Start of the oldest chain when it is a starting digest; checked once.
    origin: Option<DateTime<Utc>>,
    origin_checked: bool,
}

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
            "{} belongs to account {}; its bucket is read from that account",
            trail.name, trail.account
        )));
    }
    let region = objects::bucket_region(inputs.aws, &trail.home_region, bucket).await?;
    let roots =
        objects::account_roots(inputs.aws, &region, bucket, trail.s3_key_prefix.as_deref()).await?;
    let mut pass = TrailPass::default();
    for root in &roots {
        for r in &region_folders(inputs.aws, &region, bucket, root, "CloudTrail").await? {
            let coverage = match read_log_folder(inputs, &region, bucket, root, r, &mut pass).await
            {
                Ok(c) => c,
                Err(e) => {
                    pass.errors.push(e);
                    continue;
                }
            };
            pass.evidence.regions.push(RegionEvidence {
                account: root.account.clone(),
                region: r.clone(),
                coverage,
                ..Default::default()
            });
        }
    }
    // Read after the log files: transitions they held count for this pass's digests.
    let mut transitions = inputs
        .store
        .transitions(&[trail.name.as_str(), trail.arn.as_str()])
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
    for root in &roots {
        for r in &region_folders(inputs.aws, &region, bucket, root, "CloudTrail-Digest").await? {
            let scope = ChainScope {
                bucket: bucket.to_string(),
                account: root.account.clone(),
                region: r.clone(),
            };
            match validate_folder(
                inputs,
                &region,
                state,
                root,
                &scope,
                &transitions,
                &mut pass,
            )
            .await
            {
                Ok(Some((folder, validated_until))) => {
                    pass.evidence.digests_seen = true;
                    let entry = region_entry(&mut pass.evidence, &root.account, r);
                    entry.origin = folder.origin;
                    entry.validated_until = validated_until;
                }
                Ok(None) => {}
                Err(e) => pass.errors.push(e),
            }
        }
    }
    pass.evidence.verdicts = inputs
        .store
        .integrity_items(inputs.now - VERDICT_MEMORY)
        .map_err(store_failure)?
        .into_iter()
        .filter(|v| v.trail == trail.name)
        .collect();
    if let Err(e) = inputs.store.forget_log_files(inputs.now - LOG_HASH_MEMORY) {
        pass.errors.push(store_failure(e));
    }
    Ok(pass)
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
    e.regions.last_mut().expect("just pushed")
}

/// Lists a log folder from its cursor (all of it when a rescan is due), reads the new log
/// files of the window, and returns the folder's coverage.
async fn read_log_folder(
    inputs: &Inputs<'_>,
    region: &str,
    bucket: &str,
    root: &AccountRoot,
    log_region: &str,
    pass: &mut TrailPass,
) -> Result<Coverage, Unavailable> {
    let folder = root.logs(log_region);
    let id = format!("{bucket}/{folder}");
    let saved: FolderState<LogFolder> = inputs
        .store
        .folder_state(&id)
        .map_err(store_failure)?
        .unwrap_or(FolderState {
            cursor: None,
            state: LogFolder::default(),
            scanned_at: None,
        });
    let rescan = Duration::from_std(inputs.settings.rescan.0).unwrap_or(Duration::hours(6));
    let window = Duration::from_std(inputs.settings.initial_window.0).unwrap_or(Duration::days(1));
    let full = saved.scanned_at.is_none_or(|t| inputs.now - t >= rescan);
    let tolerance = inputs.hole_tolerance;
    let mut coverage = if full {
        Coverage::default()
    } else {
        saved.state.coverage.clone()
    };
    let read_after = saved.cursor.clone();
    let start_after = if full { None } else { saved.cursor.clone() };
    let mut cursor = saved.cursor.clone();
    let mut token = None;
    let mut first = true;
    loop {
        let (page, next) = objects::list_page(
            inputs.aws,
            region,
            bucket,
            &folder,
            if first { start_after.as_deref() } else { None },
            token,
        )
        .await?;
        first = false;
        let mut to_read: Vec<(Listed, DateTime<Utc>)> = Vec::new();
        for o in page {
            let Some(k) = layout::parse_log_key(&o.key) else {
                continue;
            };
            coverage.add(k.delivered, tolerance);
            if let Some(at) = o.last_modified {
                coverage.written(at);
            }
            let unread = read_after.as_deref().is_none_or(|c| o.key.as_str() > c);
            if unread && k.delivered >= inputs.now - window {
                to_read.push((o, k.delivered));
            }
        }
        if let Some(last) = to_read.last() {
            let last_key = last.0.key.clone();
            read_logs(
                inputs,
                region,
                bucket,
                &root.account,
                log_region,
                to_read,
                pass,
            )
            .await?;
            // Past what was read: a crash before this re-reads (and dedupes), never skips.
            if cursor.as_deref().is_none_or(|c| last_key.as_str() > c) {
                cursor = Some(last_key);
            }
        }
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    // Keys older than the window are never read: the cursor may pass them.
    if cursor.is_none() {
        cursor = Some(layout::start_after_for(&folder, inputs.now - window));
    }
    inputs
        .store
        .save_folder(
            &id,
            &FolderState {
                cursor,
                state: LogFolder {
                    coverage: coverage.clone(),
                },
                scanned_at: if full {
                    Some(inputs.now)
                } else {
                    saved.scanned_at
                },
            },
        )
        .map_err(store_failure)?;
    Ok(coverage)
}

/// Reads log files: hash for their digest, records through the detections.
async fn read_logs(
    inputs: &Inputs<'_>,
    region: &str,
    bucket: &str,
    account: &str,
    log_region: &str,
    files: Vec<(Listed, DateTime<Utc>)>,
    pass: &mut TrailPass,
) -> Result<(), Unavailable> {
    let meta: HashMap<String, (String, DateTime<Utc>)> = files
        .iter()
        .map(|(o, t)| (o.key.clone(), (o.etag.clone(), *t)))
        .collect();
    let mut rows = Vec::new();
    let mut hits = Vec::new();
    let mut transitions = Vec::new();
    let mut buf = Vec::new();
    let mut records = 0u64;
    let mut unreadable = 0u64;
    let keys = futures_util::stream::iter(files.into_iter().map(|(o, _)| o.key));
    fetch::for_each_object(
        inputs.aws,
        region,
        bucket,
        keys,
        inputs.settings.concurrency,
        |key, read| {
            let (etag, delivered) = meta[&key].clone();
            let Read::Object { body, .. } = read else {
                // Gone or unreadable since the listing: its digest check will say which.
                return;
            };
            let summary = crate::logfile::read(&body, &mut buf, |r| {
            let r = match r {
                Ok(r) => r,
                Err((i, e)) => {
                    unreadable += 1;
                    tracing::warn!(object = %key, record = i, error = %e, "unreadable log record");
                    return;
                }
            };
            records += 1;
            let transition = r.event_source == "cloudtrail.amazonaws.com"
                && TRANSITIONS.contains(&r.event_name.as_ref());
            let wanted = inputs
                .detections
                .is_some_and(|(d, _)| wants(d, &r.event_source, &r.event_name));
            // Most records match nothing: only these are parsed whole.
            if !(transition || wanted) {
                return;
            }
            let record = match r.record() {
                Ok(record) => record,
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(object = %key, event_name = %r.event_name, error = %e, "unreadable log record");
                    return;
                }
            };
            if transition
                && !record.failed()
                && let Some(name) = record.raw["requestParameters"]["name"].as_str()
            {
                transitions.push((name.to_string(), record.event_time, record.event_name.clone()));
            }
            if let Some((detections, watched)) = inputs.detections {
                hits.extend(detect(detections, &record, watched, inputs.now));
            }
        });
        match summary {
                Ok(s) => rows.push(LogFileRow {
                    object: format!("{bucket}/{key}"),
                    etag,
                    sha256: Some(s.sha256),
                    trailing: s.trailing_data,
                    delivered,
                }),
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(object = %key, error = %e, "unreadable log file");
                    // Its hash still tells its digest whether it was altered.
                    let state = fetch::log_state(
                        Read::Object {
                            body,
                            metadata: HashMap::new(),
                        },
                        &mut buf,
                    );
                    rows.push(LogFileRow {
                        object: format!("{bucket}/{key}"),
                        etag,
                        sha256: match &state {
                            LogState::Hash(h) => Some(h.clone()),
                            _ => None,
                        },
                        trailing: state == LogState::TrailingData,
                        delivered,
                    });
                }
            }
        },
    )
    .await;
    *pass
        .records
        .entry((account.to_string(), log_region.to_string()))
        .or_default() += records;
    pass.unreadable_records += unreadable;
    let store = inputs.store;
    store
        .record_transitions(&transitions)
        .map_err(store_failure)?;
    if !hits.is_empty() {
        let ids: Vec<(String, DateTime<Utc>)> = hits
            .iter()
            .map(|h| (h.event_id.clone(), h.event_time))
            .collect();
        let fresh = store.claim_events(&ids).map_err(store_failure)?;
        pass.hits.extend(
            hits.into_iter()
                .zip(fresh)
                .filter_map(|(h, f)| f.then_some(h)),
        );
    }
    store.save_log_files(&rows).map_err(store_failure)
}

/// Validates a trail's new digests in one digest folder. Returns the folder state and the
/// end of the last digest validated, or `None` when the trail has no digest there.
async fn validate_folder(
    inputs: &Inputs<'_>,
    region: &str,
    state: &TrailState,
    root: &AccountRoot,
    scope: &ChainScope,
    transitions: &[Transition],
    pass: &mut TrailPass,
) -> Result<Option<(DigestFolder, Option<DateTime<Utc>>)>, Unavailable> {
    let trail = &state.trail;
    let folder = root.digests(&scope.region);
    let id = format!("{}/{folder}#{}", scope.bucket, trail.name);
    let saved: FolderState<DigestFolder> = inputs
        .store
        .folder_state(&id)
        .map_err(store_failure)?
        .unwrap_or(FolderState {
            cursor: None,
            state: DigestFolder::default(),
            scanned_at: None,
        });
    let window = Duration::from_std(inputs.settings.initial_window.0).unwrap_or(Duration::days(1));
    let start_after = saved
        .cursor
        .clone()
        .unwrap_or_else(|| layout::start_after_for(&folder, inputs.now - window));
    let mine = |key: &str| {
        layout::parse_digest_key(key).is_some_and(|k| {
            !k.backfill && k.trail == trail.name && k.home_region == trail.home_region
        })
    };
    let mut keys = Vec::new();
    objects::list(
        inputs.aws,
        region,
        &scope.bucket,
        &folder,
        Some(&start_after),
        |page| {
            keys.extend(page.into_iter().map(|o| o.key).filter(|k| mine(k)));
            true
        },
    )
    .await?;
    let mut st = saved.state.clone();
    if !st.origin_checked {
        st.origin = chain_origin(inputs, region, &scope.bucket, &folder, &mine).await?;
        st.origin_checked = true;
    }
    if keys.is_empty() {
        let seen = st.anchor.is_some();
        let until = st.anchor.as_ref().map(|a| a.end);
        inputs
            .store
            .save_folder(
                &id,
                &FolderState {
                    cursor: saved.cursor,
                    state: st.clone(),
                    scanned_at: saved.scanned_at,
                },
            )
            .map_err(store_failure)?;
        return Ok(seen.then_some((st, until)));
    }
    let first_end = layout::parse_digest_key(&keys[0]).map_or(inputs.now, |k| k.end);
    let (public, rejected) = public_keys::public_keys(
        inputs.aws,
        &scope.region,
        first_end - Duration::hours(1),
        inputs.now + Duration::hours(2),
    )
    .await?;
    for r in rejected {
        tracing::warn!(region = %scope.region, "public key rejected: {r}");
    }
    let digests = fetch::fetch_digests(
        inputs.aws,
        region,
        &scope.bucket,
        &keys,
        inputs.settings.concurrency,
    )
    .await;
    let docs: Vec<DigestDoc> = digests
        .iter()
        .filter_map(|d| match &d.fetched {
            chain::Fetched::Object { bytes, .. } => DigestDoc::parse(bytes).ok(),
            _ => None,
        })
        .collect();
    // The log folder as it is now, over the interval the digests cover.
    let from = docs.iter().filter_map(|d| d.start()).min();
    let to = docs.iter().filter_map(|d| d.end()).max();
    let mut current: HashMap<String, (String, DateTime<Utc>)> = HashMap::new();
    if let (Some(from), Some(to)) = (from, to) {
        let log_folder = root.logs(&scope.region);
        let found = objects::keys_between(
            inputs.aws,
            region,
            &scope.bucket,
            &log_folder,
            from - Duration::hours(1),
            to + Duration::minutes(1),
            |key| layout::parse_log_key(key).map(|k| k.delivered),
        )
        .await?;
        current.extend(found.into_iter().map(|(o, t)| (o.key, (o.etag, t))));
    }
    let listed: Vec<String> = docs
        .iter()
        .flat_map(|d| d.log_files.iter())
        .filter(|f| f.s3_bucket == scope.bucket)
        .map(|f| f.s3_object.clone())
        .collect();
    let objects_of: Vec<String> = listed
        .iter()
        .map(|k| format!("{}/{k}", scope.bucket))
        .collect();
    let stored = inputs.store.log_files(&objects_of).map_err(store_failure)?;
    let mut logs: HashMap<String, LogState> = HashMap::new();
    let mut to_read = Vec::new();
    for key in &listed {
        let row = stored.get(&format!("{}/{key}", scope.bucket));
        let unchanged = match (row, current.get(key)) {
            (Some(row), Some((etag, _))) => row.etag == *etag,
            _ => false,
        };
        match row {
            Some(row) if unchanged && row.trailing => {
                logs.insert(key.clone(), LogState::TrailingData);
            }
            Some(LogFileRow {
                sha256: Some(h), ..
            }) if unchanged => {
                logs.insert(key.clone(), LogState::Hash(h.clone()));
            }
            _ => to_read.push(key.clone()),
        }
    }
    logs.extend(
        fetch::hash_logs(
            inputs.aws,
            region,
            &scope.bucket,
            futures_util::stream::iter(to_read),
            inputs.settings.concurrency,
        )
        .await,
    );
    let report = chain::judge(
        scope,
        st.anchor.as_ref(),
        &digests,
        &public,
        &logs,
        transitions,
    );
    let mut items: Vec<Item> = report.items;
    if let Some(covered) = report.covered {
        items.extend(chain::unlisted_logs(
            current.iter().map(|(k, (_, t))| (k.as_str(), *t)),
            &report.listed_logs,
            covered,
        ));
    }
    let validated = items.iter().filter(|i| i.class == Class::ValidLog).count() as u64;
    *pass
        .logs_validated
        .entry((scope.account.clone(), scope.region.clone()))
        .or_default() += validated;
    let kept: Vec<Item> = items
        .into_iter()
        .filter(|i| !matches!(i.class, Class::ValidDigest | Class::ValidLog))
        .collect();
    let new = inputs
        .store
        .record_items(
            &trail.name,
            &scope.account,
            &scope.region,
            &kept,
            inputs.now,
        )
        .map_err(store_failure)?;
    for i in new {
        if let Some(kind) = i.class.failure() {
            tracing::warn!(
                trail = %trail.name, account = %scope.account, region = %scope.region,
                kind = kind.as_str(), object = %i.object, time = ?i.time, "log integrity: {}", i.detail
            );
        } else {
            tracing::info!(trail = %trail.name, region = %scope.region, object = %i.object, "{}", i.detail);
        }
        pass.new_items
            .push((scope.account.clone(), scope.region.clone(), i));
    }
    st.anchor = report.anchor;
    let until = st.anchor.as_ref().map(|a| a.end);
    inputs
        .store
        .save_folder(
            &id,
            &FolderState {
                cursor: keys.last().cloned(),
                state: st.clone(),
                scanned_at: Some(inputs.now),
            },
        )
        .map_err(store_failure)?;
    Ok(Some((st, until)))
}

/// Where the trail's oldest chain starts, if its oldest digest is a starting digest:
/// nothing was logged before (unless digests were deleted too, which validation reports).
async fn chain_origin(
    inputs: &Inputs<'_>,
    region: &str,
    bucket: &str,
    folder: &str,
    mine: &impl Fn(&str) -> bool,
) -> Result<Option<DateTime<Utc>>, Unavailable> {
    let mut oldest = None;
    objects::list(inputs.aws, region, bucket, folder, None, |page| {
        oldest = page.into_iter().map(|o| o.key).find(|k| mine(k));
        oldest.is_none()
    })
    .await?;
    let Some(key) = oldest else {
        return Ok(None);
    };
    let fetched = fetch::fetch_digests(inputs.aws, region, bucket, &[key], 1).await;
    Ok(match &fetched[0].fetched {
        chain::Fetched::Object { bytes, .. } => DigestDoc::parse(bytes)
            .ok()
            .filter(|d| matches!(d.previous(), Ok(None)))
            .and_then(|d| d.start()),
        _ => None,
    })
}

fn store_failure(e: crate::state::StateError) -> Unavailable {
    Unavailable::api_failure(format!("state store: {e}"))
}
