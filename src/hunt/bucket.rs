//! A trail's bucket for a hunt: every account folder (an organization trail's members too)
//! and every region folder of it, the log files delivered in the range, read several at a
//! time with the daemon's reader and caps.

use super::report::Report;
use super::{Args, Hunter};
use crate::collect::aws::Aws;
use crate::collect::chain::{Wanted, read_objects};
use crate::collect::objects::{self, Read, ReadLimits};
use crate::config::{AwsSettings, BucketSettings, DetectionSet};
use crate::evaluate::detection::Watched;
use crate::integrity::layout::AccountRoot;
use crate::validate_logs::{ChainId, find_trail, log_keys};
use chrono::Duration;
use futures_util::stream::{self, StreamExt};
use std::sync::Arc;

/// Folders listed at a time.
const LISTING_CONCURRENCY: usize = 8;

/// CloudTrail delivers a record within about 15 minutes: files delivered up to this long
/// after the range can hold its last records.
fn delivery_slack() -> Duration {
    Duration::hours(1)
}

/// A log file's name gives its delivery time to the minute, and clocks differ: files named
/// this long before the range can hold its first records.
fn naming_slack() -> Duration {
    Duration::minutes(5)
}

/// Hunts `trail`'s bucket over `args.range`; `Err` when the trail or its bucket cannot be
/// found at all (a folder that cannot be listed is a problem of its own, and the rest goes on).
pub async fn hunt(
    settings: &AwsSettings,
    caps: &BucketSettings,
    trail: &str,
    args: &Args,
    detections: Arc<DetectionSet>,
    limits: crate::logfile::Limits,
    report: &mut Report,
) -> Result<(), String> {
    let metrics = crate::publish::metrics::Metrics::new();
    let aws = Aws::connect(settings, metrics.aws_api_calls.clone()).await;
    let trail = find_trail(&aws, &settings.regions[0], trail).await?;
    let bucket = trail
        .s3_bucket_name
        .clone()
        .ok_or_else(|| format!("trail {} has no S3 bucket", trail.name))?;
    let region = objects::bucket_region(&aws, &trail.home_region, &bucket)
        .await
        .map_err(|e| format!("bucket {bucket}: {}", e.reason))?;
    let mut watched = Watched::default();
    watched.add_trail(
        Some(&bucket),
        trail.s3_key_prefix.as_deref(),
        trail.kms_key_id.as_deref(),
        trail.cloud_watch_logs_log_group_arn.as_deref(),
    );
    let roots = objects::account_roots(&aws, &region, &bucket, trail.s3_key_prefix.as_deref())
        .await
        .map_err(|e| format!("bucket {bucket}: {}", e.reason))?;
    let roots = roots
        .into_iter()
        .filter(|r| args.account.as_ref().is_none_or(|a| *a == r.account));
    let folders = region_folders(&aws, &region, &bucket, roots, report).await;
    let keys = log_files(&aws, &region, &bucket, folders, args, report).await;
    report.listed(keys.len() as u64);
    let hunter = Hunter {
        detections,
        watched: Arc::new(watched),
        range: args.range,
        limits,
    };
    let read_limits = ReadLimits::new(
        caps.max_object_size.0,
        caps.read_memory.0,
        std::time::Duration::from_secs(60),
    );
    let url = format!("s3://{bucket}/");
    let files = read_objects(
        &aws,
        &region,
        &bucket,
        stream::iter(keys),
        args.concurrency,
        &read_limits,
        move |key, read| super::HuntedFile {
            name: format!("{url}{key}"),
            scan: match read {
                Read::Object { body, .. } => Ok(hunter.scan(&body)),
                Read::NotFound => Err("not found: deleted since it was listed".to_string()),
                Read::Unreadable(why) | Read::Oversized(why) => Err(why),
            },
        },
    );
    let mut files = std::pin::pin!(files);
    while let Some(file) = files.next().await {
        report.file(file);
    }
    Ok(())
}

/// Every region folder of each account root.
async fn region_folders(
    aws: &Aws,
    region: &str,
    bucket: &str,
    roots: impl Iterator<Item = AccountRoot>,
    report: &mut Report,
) -> Vec<ChainId> {
    let listed: Vec<_> = stream::iter(roots)
        .map(|root| async move {
            let folder = format!("{}CloudTrail/", root.path());
            let regions = objects::folders(aws, region, bucket, &folder).await;
            (root, folder, regions)
        })
        .buffer_unordered(LISTING_CONCURRENCY)
        .collect()
        .await;
    let mut folders = Vec::new();
    for (root, folder, regions) in listed {
        match regions {
            Ok(regions) => folders.extend(regions.into_iter().map(|region| ChainId {
                root: root.clone(),
                region,
            })),
            Err(e) => report.unreadable(&format!("s3://{bucket}/{folder}"), &e.reason),
        }
    }
    folders.sort();
    folders
}

/// The log files of `folders` delivered from just before the range's start to an hour past
/// its end.
async fn log_files(
    aws: &Aws,
    region: &str,
    bucket: &str,
    folders: Vec<ChainId>,
    args: &Args,
    report: &mut Report,
) -> Vec<Wanted> {
    let from = args.range.start.unwrap_or(chrono::DateTime::UNIX_EPOCH) - naming_slack();
    let to = args.range.end.unwrap_or_else(chrono::Utc::now) + delivery_slack();
    let listed: Vec<_> = stream::iter(folders)
        .map(|folder| async move {
            let keys = log_keys(aws, region, bucket, &folder, from, to).await;
            (folder, keys)
        })
        .buffer_unordered(LISTING_CONCURRENCY)
        .collect()
        .await;
    let mut keys = Vec::new();
    for (folder, found) in listed {
        match found {
            Ok(found) => keys.extend(found.into_iter().map(|(key, _)| Wanted::from(key))),
            Err(e) => report.unreadable(
                &format!("s3://{bucket}/{}", folder.root.logs(&folder.region)),
                &e,
            ),
        }
    }
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    keys
}
