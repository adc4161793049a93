//! One log folder's pass: list from the cursor (`plan::log_folder`), read every key not read
//! before, and store each page's work (claims with their detections, hashes, failed reads,
//! verdicts, transitions) together with the cursor it moves, in one transaction. Then the
//! folder's failed reads whose retry is due are read again.

use super::{Inputs, TrailPass, store_failure};
use crate::collect::aws::reason_class;
use crate::collect::chain::{Wanted, read_objects};
use crate::collect::objects::{self, Listed, Read};
use crate::evaluate::log_records::{LogScan, scan};
use crate::integrity::coverage::Coverage;
use crate::integrity::layout::{self, AccountRoot};
use crate::integrity::verdict::{Item, Kind};
use crate::plan::log_folder::{self, Decision, Handled, Known, LogFolder, Rules};
use crate::plan::queue::{Outcome, missed_by_notifications};
use crate::plan::retry::{self, Retry};
use crate::state::{Claim, LogBatch, LogFileRow, Source, UnreadRow};
use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};

/// The folder a pass reads.
pub struct Folder<'a> {
    /// The region the bucket answers in.
    pub bucket_region: &'a str,
    pub bucket: &'a str,
    pub root: &'a AccountRoot,
    /// The delivering region whose folder this is.
    pub region: &'a str,
    /// The trail whose pass this is (verdicts on files are filed under it).
    pub trail: &'a str,
}

impl Folder<'_> {
    fn id(&self) -> String {
        format!("{}/{}", self.bucket, self.root.logs(self.region))
    }

    fn object(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket)
    }
}

fn rules(inputs: &Inputs<'_>) -> Rules {
    let d = |h: &crate::config::HumanDuration, default: Duration| {
        Duration::from_std(h.0).unwrap_or(default)
    };
    let s = inputs.settings;
    Rules {
        initial_window: d(&s.initial_window, Duration::days(1)),
        look_back: d(&s.look_back, Duration::hours(1)),
        rescan: d(&s.rescan, Duration::hours(6)),
        read_window: d(&s.read_window, Duration::days(3)),
    }
}

/// Lists the folder from its cursor (all of it when a rescan is due), reads the new log
/// files, retries the failed reads that are due, and returns the folder's coverage.
pub(super) async fn read_folder(
    inputs: &Inputs<'_>,
    folder: &Folder<'_>,
    retries: &[UnreadRow],
    pass: &mut TrailPass,
) -> Result<Coverage, crate::posture::Unavailable> {
    let id = folder.id();
    let now = inputs.now;
    let rules = rules(inputs);
    let key = id.clone();
    let state: LogFolder = inputs
        .store
        .run(move |s| s.folder_state(&key))
        .await
        .map_err(store_failure)?
        .unwrap_or_default();
    let listing = log_folder::listing(folder.root, folder.region, &state, now, &rules);
    let mut next = LogFolder {
        read_from: Some(log_folder::read_from(&state, now, &rules)),
        coverage: if listing.full {
            Coverage::default()
        } else {
            state.coverage.clone()
        },
        ..state.clone()
    };
    let prefix = format!("{}/", id.trim_end_matches('/'));
    let mine: Vec<&UnreadRow> = retries
        .iter()
        .filter(|u| u.kind == "log" && u.object.starts_with(&prefix))
        .collect();
    let retrying: HashSet<&str> = mine.iter().map(|u| u.object.as_str()).collect();
    let path = folder.root.logs(folder.region);
    let mut token = None;
    let mut start_after = listing.start_after.clone();
    loop {
        let (page, more) = objects::list_page(
            inputs.aws,
            folder.bucket_region,
            folder.bucket,
            &path,
            start_after.take().as_deref(),
            token,
        )
        .await?;
        (inputs.tick)();
        let logs: Vec<(Listed, DateTime<Utc>)> = page
            .into_iter()
            .filter_map(|o| {
                let delivered = layout::parse_log_key(&o.key)?.delivered;
                Some((o, delivered))
            })
            .collect();
        let objects: Vec<String> = logs.iter().map(|(o, _)| folder.object(&o.key)).collect();
        let read_before = inputs
            .store
            .run(move |s| s.log_files(&objects))
            .await
            .map_err(store_failure)?;
        let mut outcomes = Vec::with_capacity(logs.len());
        let mut to_read = Vec::new();
        for (o, delivered) in &logs {
            let object = folder.object(&o.key);
            let known = if read_before.contains_key(&object) {
                Known::Read
            } else if retrying.contains(object.as_str()) {
                Known::Retrying
            } else {
                Known::New
            };
            let decision = log_folder::decide(*delivered, known, &state, now, &rules);
            if log_folder::counts_for_coverage(&o.key, &state, listing.full, decision) {
                next.coverage.add(*delivered, inputs.hole_tolerance);
                if let Some(at) = o.last_modified {
                    next.coverage.written(at);
                }
            }
            if decision == Decision::Read
                && missed_by_notifications(o.last_modified, inputs.notified_until)
            {
                tracing::warn!(object = %object, "log file found by the listing, not announced by the bucket's notifications");
                pass.found_by_listing += 1;
            }
            match decision {
                Decision::Read => to_read.push(ToRead {
                    key: o.key.clone(),
                    etag: o.etag.clone(),
                    size: u64::try_from(o.size).ok(),
                    delivered: *delivered,
                    retry: None,
                }),
                Decision::Missed => {
                    *pass
                        .missed
                        .entry((folder.root.account.clone(), folder.region.to_string()))
                        .or_default() += 1;
                    tracing::warn!(object = %object, "log file older than bucket.read_window not read (the daemon was away longer); event history has its events");
                }
                Decision::Done | Decision::Before => {}
            }
            // Every listed key is done once this page is stored: read, recorded for a
            // retry, known, or out of the window.
            outcomes.push((*delivered, Handled::Done));
        }
        let mut batch = read_logs(inputs, folder, to_read, pass).await;
        if let Some((last, _)) = logs.last() {
            next.listed_until = next.listed_until.max(Some(last.key.clone()));
        }
        next.done_until = log_folder::advance(next.done_until, outcomes);
        let finished = more.is_none();
        if finished && listing.full {
            next.scanned_at = Some(now);
        }
        batch.folder = Some((
            id.clone(),
            serde_json::to_string(&next).expect("serializable"),
        ));
        store_batch(inputs, batch, pass).await?;
        match more {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    // Retries that are due.
    let due: Vec<ToRead> = mine
        .iter()
        .filter(|u| retry::due(&u.retry, now))
        .filter_map(|u| {
            let key = u.object.strip_prefix(&format!("{}/", folder.bucket))?;
            Some(ToRead {
                key: key.to_string(),
                etag: String::new(),
                size: u.size.and_then(|s| u64::try_from(s).ok()),
                delivered: u.delivered.unwrap_or(now),
                retry: Some(u.retry.clone()),
            })
        })
        .collect();
    if !due.is_empty() {
        let batch = read_logs(inputs, folder, due, pass).await;
        store_batch(inputs, batch, pass).await?;
    }
    Ok(next.coverage)
}

/// A log file a bucket notification announced (`watch/notifications.rs`): read now, through
/// the same reader and store as a listed one, unless it was read before or is outside the
/// read window. The folder's cursor and coverage are the listing's to move.
pub async fn read_announced(
    inputs: &Inputs<'_>,
    folder: &Folder<'_>,
    key: &str,
    size: Option<u64>,
    delivered: DateTime<Utc>,
    pass: &mut TrailPass,
) -> Outcome {
    let id = folder.id();
    let object = folder.object(key);
    let (now, rules) = (inputs.now, rules(inputs));
    let lookup = {
        let object = object.clone();
        inputs
            .store
            .run(move |s| {
                let state: Option<LogFolder> = s.folder_state(&id)?;
                let read = s.log_files(std::slice::from_ref(&object))?;
                let waiting = s
                    .unread_objects(Some("log"))?
                    .into_iter()
                    .find(|u| u.object == object);
                Ok::<_, crate::state::StateError>((state.unwrap_or_default(), read, waiting))
            })
            .await
    };
    let (state, read_before, waiting) = match lookup {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(object = %object, error = %e, "state store: announced log file not read; the message stays");
            return Outcome::Failed;
        }
    };
    let known = if read_before.contains_key(&object) {
        Known::Read
    } else {
        Known::New
    };
    if known == Known::New
        && waiting.is_none()
        && log_folder::decide(delivered, known, &state, now, &rules) != Decision::Read
    {
        // Before the window, or older than the read window: the listing accounts for it.
        return Outcome::NotOurs;
    }
    if known == Known::Read {
        return Outcome::Stored;
    }
    let file = ToRead {
        key: key.to_string(),
        etag: String::new(),
        size: size.or(waiting
            .as_ref()
            .and_then(|u| u.size.and_then(|s| u64::try_from(s).ok()))),
        delivered,
        retry: waiting.map(|u| u.retry),
    };
    let batch = read_logs(inputs, folder, vec![file], pass).await;
    let failed = !batch.failed.is_empty();
    if let Err(e) = store_batch(inputs, batch, pass).await {
        tracing::warn!(object = %object, error = %e.reason, "announced log file not stored; the message stays");
        return Outcome::Failed;
    }
    if failed {
        Outcome::Failed
    } else {
        pass.announced += 1;
        Outcome::Stored
    }
}

/// A log file to read.
struct ToRead {
    key: String,
    etag: String,
    size: Option<u64>,
    delivered: DateTime<Utc>,
    /// Set when this is a retry.
    retry: Option<Retry>,
}

/// What reading one log file gave, processed on a blocking thread.
enum FileRead {
    Scanned(LogScan),
    Oversized(String),
    Gone,
    Failed(String),
}

/// Reads log files (their records through the detections) and gathers what must be stored.
async fn read_logs(
    inputs: &Inputs<'_>,
    folder: &Folder<'_>,
    files: Vec<ToRead>,
    pass: &mut TrailPass,
) -> LogBatch {
    let mut batch = LogBatch::default();
    if files.is_empty() {
        return batch;
    }
    let wanted: Vec<Wanted> = files
        .iter()
        .map(|f| Wanted {
            key: f.key.clone(),
            size: f.size,
        })
        .collect();
    let mut meta: HashMap<String, ToRead> = files.into_iter().map(|f| (f.key.clone(), f)).collect();
    let limits = inputs.settings.log_limits();
    let detections = inputs.detections.clone();
    let now = inputs.now;
    let reads = read_objects(
        inputs.aws,
        folder.bucket_region,
        folder.bucket,
        futures_util::stream::iter(wanted),
        inputs.settings.concurrency,
        inputs.limits,
        move |key, read| {
            let outcome = match read {
                Read::Object { body, .. } => {
                    let d = detections.as_ref().map(|(d, w)| (&**d, &**w));
                    FileRead::Scanned(scan(&body, &limits, d, now, &mut Vec::new()))
                }
                Read::Oversized(why) => FileRead::Oversized(why),
                Read::NotFound => FileRead::Gone,
                Read::Unreadable(why) => FileRead::Failed(why),
            };
            (key, outcome)
        },
    );
    let mut reads = std::pin::pin!(reads);
    let (account, region) = (folder.root.account.clone(), folder.region.to_string());
    let backoff =
        Duration::from_std(inputs.settings.retry_backoff.0).unwrap_or(Duration::seconds(30));
    let mut recollect = Vec::new();
    while let Some((key, outcome)) = reads.next().await {
        (inputs.tick)();
        let Some(file) = meta.remove(&key) else {
            continue;
        };
        let object = folder.object(&key);
        let row = |sha256: Option<String>, trailing: bool| LogFileRow {
            object: object.clone(),
            etag: file.etag.clone(),
            sha256,
            trailing,
            delivered: file.delivered,
        };
        let verdict = |kind: Kind, detail: String| {
            (
                folder.trail.to_string(),
                account.clone(),
                region.clone(),
                Item {
                    class: kind.into(),
                    object: key.clone(),
                    time: Some(file.delivered),
                    until: None,
                    detail,
                },
            )
        };
        match outcome {
            FileRead::Scanned(s) => {
                match &s.summary {
                    Ok(summary) => {
                        batch
                            .files
                            .push(row(Some(summary.sha256.clone()), summary.trailing_data));
                        if let Some(why) = &summary.malformed {
                            tracing::warn!(object = %object, reason = %why, "log file is not a CloudTrail log file");
                            batch.items.push(verdict(Kind::MalformedLog, why.clone()));
                        }
                        *pass
                            .records
                            .entry((account.clone(), region.clone()))
                            .or_default() += summary.records;
                    }
                    Err(e) => {
                        tracing::warn!(object = %object, reason = %e, "oversized log file");
                        batch.files.push(row(None, false));
                        batch.items.push(verdict(Kind::Oversized, e.0.clone()));
                    }
                }
                pass.unreadable_records += s.unreadable;
                for fault in &s.faults {
                    tracing::warn!(object = %object, "unreadable log record: {fault}");
                }
                for e in s.events {
                    recollect.push(e.hits.iter().any(|h| h.recollect));
                    batch.claims.push(Claim {
                        event_id: e.event_id,
                        event_time: e.event_time,
                        detections: e
                            .hits
                            .iter()
                            .map(super::super::detections::stored)
                            .collect(),
                    });
                }
                batch.transitions.extend(s.transitions);
                if file.retry.is_some() {
                    batch.cleared.push(object.clone());
                }
            }
            FileRead::Oversized(why) => {
                batch.files.push(row(None, false));
                batch.items.push(verdict(Kind::Oversized, why));
                if file.retry.is_some() {
                    batch.cleared.push(object.clone());
                }
            }
            FileRead::Gone => {
                // Deleted since it was listed: its digest will say so (missing_log).
                tracing::warn!(object = %object, "log file gone before it could be read");
                pass.read_failures.push(("log", "not_found"));
                if file.retry.is_some() {
                    batch.cleared.push(object.clone());
                }
            }
            FileRead::Failed(why) => {
                let next = retry::after_failure(file.retry.as_ref(), &why, now, backoff);
                tracing::warn!(object = %object, reason = %why, attempts = next.attempts, next_attempt = %next.next_attempt, "log file could not be read; retried later");
                pass.read_failures.push(("log", reason_class(&why)));
                pass.errors
                    .push(crate::posture::Unavailable::api_failure(why));
                batch.failed.push(UnreadRow {
                    object: object.clone(),
                    kind: "log".into(),
                    trail: String::new(),
                    account: account.clone(),
                    region: region.clone(),
                    size: file.size.and_then(|s| i64::try_from(s).ok()),
                    delivered: Some(file.delivered),
                    retry: next,
                });
            }
        }
    }
    batch.recollect = recollect;
    batch
}

/// Stores a batch; the detections of the events it claimed first go to the pass.
async fn store_batch(
    inputs: &Inputs<'_>,
    batch: LogBatch,
    pass: &mut TrailPass,
) -> Result<(), crate::posture::Unavailable> {
    let now = inputs.now;
    let (batch, (fresh, new)) = inputs
        .store
        .run(move |s| {
            let r = s.record_log_batch(Source::Bucket, &batch, now);
            r.map(|r| (batch, r))
        })
        .await
        .map_err(store_failure)?;
    for ((claim, fresh), recollect) in batch.claims.into_iter().zip(fresh).zip(batch.recollect) {
        if fresh {
            pass.claims += 1;
            pass.detections
                .extend(claim.detections.into_iter().map(|d| (d, recollect)));
        }
    }
    pass.new_items.extend(
        new.into_iter()
            .map(|(_, account, region, item)| (account, region, item)),
    );
    Ok(())
}
