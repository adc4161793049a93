//! `trailwarden validate-logs`: one-shot validation of a trail's digests and log files in a
//! time range, with the result classes of `aws cloudtrail validate-logs` plus the ones it
//! misses (every missing digest, broken links, log files in no digest, unexplained chain
//! restarts, unverifiable items that do not stop the run). Reads several objects at a time.

use crate::collect::aws::Aws;
use crate::collect::chain::Wanted;
use crate::collect::objects::ReadLimits;
use crate::collect::{chain as fetch, events, objects, public_keys, trails};
use crate::config::BucketSettings;
use crate::integrity::backfill;
use crate::integrity::chain::{self, ChainReport, ChainScope, Transition};
use crate::integrity::digest::{DigestDoc, PublicKeys};
use crate::integrity::layout::{self, AccountRoot};
use crate::integrity::verdict::{Class, Item, Kind};
use crate::posture::Trail;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One chain: a trail's digests for one account and delivering region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChainId {
    pub root: AccountRoot,
    pub region: String,
}

/// The bucket's region and the chains of `trail` in it: every account folder (an
/// organization's members too) and every region that has digests.
///
/// On S3 each round trip costs tens of milliseconds, so the ones that do not depend on each
/// other go together: the bucket's region is asked while the folders are listed from the
/// trail's home region (where its bucket usually is; listed again if not), and the trail
/// owner's digest folder is listed with the account folders.
pub async fn locate_chains(aws: &Aws, trail: &Trail) -> Result<(String, Vec<ChainId>), String> {
    let bucket = trail
        .s3_bucket_name
        .as_deref()
        .ok_or("the trail has no bucket")?;
    let home = trail.home_region.as_str();
    let (region, guessed) = tokio::join!(
        objects::bucket_region(aws, home, bucket),
        discover_chains(aws, home, bucket, trail),
    );
    let region = region.map_err(|e| e.reason)?;
    let chains = if region == home {
        guessed?
    } else {
        discover_chains(aws, &region, bucket, trail).await?
    };
    Ok((region, chains))
}

async fn discover_chains(
    aws: &Aws,
    bucket_region: &str,
    bucket: &str,
    trail: &Trail,
) -> Result<Vec<ChainId>, String> {
    let prefix = trail.s3_key_prefix.as_deref();
    let digest_regions = |root: &AccountRoot| {
        let folder = format!("{}CloudTrail-Digest/", root.path());
        async move { objects::folders(aws, bucket_region, bucket, &folder).await }
    };
    // An organization trail's owner folder sits under the organization id, unknown here.
    let owner = (!trail.is_organization_trail).then(|| AccountRoot {
        prefix: prefix
            .map(|p| p.trim_matches('/').to_string())
            .filter(|p| !p.is_empty()),
        org: None,
        account: trail.account.clone(),
    });
    let (roots, owner_regions) = tokio::join!(
        objects::account_roots(aws, bucket_region, bucket, prefix),
        async {
            match &owner {
                Some(root) => Some(digest_regions(root).await),
                None => None,
            }
        },
    );
    let mut owner_regions = owner_regions;
    let mut chains = Vec::new();
    for root in roots.map_err(|e| e.reason)? {
        let regions = match owner_regions.take_if(|_| owner.as_ref() == Some(&root)) {
            Some(listed) => listed,
            None => digest_regions(&root).await,
        };
        for region in regions.map_err(|e| e.reason)? {
            chains.push(ChainId {
                root: root.clone(),
                region,
            });
        }
    }
    Ok(chains)
}

/// Digest keys of `trail` in `chain` whose end time is in `[from, to]`, ascending: the
/// standard chain's, and the backfill digests'.
pub async fn digest_keys(
    aws: &Aws,
    bucket_region: &str,
    bucket: &str,
    trail: &Trail,
    chain: &ChainId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let folder = chain.root.digests(&chain.region);
    let found = objects::keys_between(aws, bucket_region, bucket, &folder, from, to, |key| {
        layout::parse_digest_key(key)
            .filter(|k| k.trail == trail.name && k.home_region == trail.home_region)
            .map(|k| k.end)
    })
    .await
    .map_err(|e| e.reason)?;
    Ok(found
        .into_iter()
        .map(|(o, _)| o.key)
        .partition(|key| !is_backfill(key)))
}

fn is_backfill(key: &str) -> bool {
    layout::parse_digest_key(key).is_some_and(|k| k.backfill)
}

/// Log keys of `chain` delivered in `[from, to]`, with their delivery time.
pub async fn log_keys(
    aws: &Aws,
    bucket_region: &str,
    bucket: &str,
    chain: &ChainId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, String> {
    let folder = chain.root.logs(&chain.region);
    let found = objects::keys_between(aws, bucket_region, bucket, &folder, from, to, |key| {
        layout::parse_log_key(key).map(|k| k.delivered)
    })
    .await
    .map_err(|e| e.reason)?;
    Ok(found.into_iter().map(|(o, t)| (o.key, t)).collect())
}

/// StopLogging, StartLogging and UpdateTrail calls on `trail` (from event history, which
/// keeps 90 days): what explains a chain restart.
pub async fn transitions(
    aws: &Aws,
    trail: &Trail,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Transition>, String> {
    let mut out = Vec::new();
    let client = aws.cloudtrail(&trail.home_region);
    // Event history allows 2 LookupEvents calls per second per account and region.
    let limiter = events::RateLimiter::per_second(2);
    for name in ["StopLogging", "StartLogging", "UpdateTrail", "CreateTrail"] {
        let found = events::lookup_by_name(&client, &limiter, name, from, to)
            .await
            .map_err(|e| e.reason)?;
        for record in found
            .iter()
            .filter_map(|e| e.record.as_deref())
            .filter_map(|r| crate::record::Record::parse(r).ok())
        {
            let target = record.raw["requestParameters"]["name"]
                .as_str()
                .unwrap_or("");
            if (target == trail.name || target == trail.arn) && !record.failed() {
                out.push(Transition {
                    time: record.event_time,
                    event_name: record.event_name.clone(),
                });
            }
        }
    }
    out.sort_by_key(|t| t.time);
    Ok(out)
}

/// The verdicts on one chain.
#[derive(Debug, Serialize)]
pub struct ChainResult {
    pub account: String,
    pub region: String,
    pub items: Vec<Item>,
}

/// Validates every chain of `trail` for digests ending in `[start, end + 1h]` (log files
/// delivered by `end` can be listed in the next hour's digest).
pub async fn validate(
    aws: &Aws,
    trail: &Trail,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    account: Option<&str>,
    concurrency: usize,
) -> Result<Vec<ChainResult>, String> {
    // The daemon's caps: one-shot validation meets the same hostile objects.
    let caps = BucketSettings::default();
    let limits = ReadLimits::new(
        caps.max_object_size.0,
        caps.read_memory.0,
        std::time::Duration::from_secs(60),
    );
    let bucket = trail
        .s3_bucket_name
        .clone()
        .ok_or_else(|| format!("trail {} has no S3 bucket", trail.name))?;
    let (bucket_region, chains) = locate_chains(aws, trail).await?;
    // Read only when a chain restarts: event history allows 2 calls a second.
    let mut history: Option<Vec<Transition>> = None;
    let mut results = Vec::new();
    for chain_id in chains {
        if account.is_some_and(|a| a != chain_id.root.account) {
            continue;
        }
        // Round trips that do not depend on each other go together: on real S3 each costs
        // tens of milliseconds.
        let (keys, public) = tokio::join!(
            digest_keys(
                aws,
                &bucket_region,
                &bucket,
                trail,
                &chain_id,
                start,
                end + Duration::hours(1),
            ),
            public_keys::public_keys(aws, &chain_id.region, start, end + Duration::hours(2)),
        );
        let (keys, backfill_keys) = keys?;
        if keys.is_empty() && backfill_keys.is_empty() {
            continue;
        }
        let (mut public, rejected) = public.map_err(|e| e.reason)?;
        for r in rejected {
            tracing::warn!(region = %chain_id.region, "public key rejected: {r}");
        }
        let scope = ChainScope {
            bucket: bucket.clone(),
            account: chain_id.root.account.clone(),
            region: chain_id.region.clone(),
        };
        // The log folder over every interval these digests can cover (a digest starts up to
        // its interval before its end), for log files in no digest.
        let every_key: Vec<String> = keys.iter().chain(&backfill_keys).cloned().collect();
        let ((digests, logs), in_bucket) = tokio::join!(
            read_range(
                aws,
                &bucket_region,
                &scope,
                &every_key,
                concurrency,
                (&limits, caps.max_digest_size.0, caps.max_inflated_size.0),
            ),
            log_keys(
                aws,
                &bucket_region,
                &bucket,
                &chain_id,
                start - Duration::hours(2),
                end + Duration::hours(1) + Duration::minutes(1),
            ),
        );
        let in_bucket = in_bucket?;
        let (backfills, digests): (Vec<_>, Vec<_>) =
            digests.into_iter().partition(|d| is_backfill(&d.key));
        if let Some(extra) = backfill_public_keys(aws, &chain_id.region, &backfills, &public).await
        {
            public.by_fingerprint.extend(extra.by_fingerprint);
        }
        let backfilled = backfill::judge(&scope, &backfills, &public, &logs);
        let mut report = chain::judge(
            &scope,
            None,
            &digests,
            &public,
            &logs,
            &[],
            chain::Unjudged::Report,
        );
        let restarts = |r: &ChainReport| {
            r.items.iter().any(|i| {
                matches!(
                    i.class,
                    Class::ExplainedRestart | Class::Failure(Kind::UnexplainedRestart)
                )
            })
        };
        if restarts(&report) {
            if history.is_none() {
                let from = start - Duration::days(1);
                let read = transitions(aws, trail, from, end + Duration::hours(1)).await;
                history = Some(read.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read event history: no chain restart can be explained");
                    Vec::new()
                }));
            }
            let known = history.as_deref().unwrap_or_default();
            report = chain::judge(
                &scope,
                None,
                &digests,
                &public,
                &logs,
                known,
                chain::Unjudged::Report,
            );
        }
        let mut items = report.items;
        items.extend(backfilled.items);
        if let Some(covered) = report.covered {
            let mut listed = report.listed_logs;
            listed.extend(backfilled.listed_logs);
            items.extend(chain::unlisted_logs(
                in_bucket.iter().map(|(k, t)| (k.as_str(), *t)),
                |k| listed.contains(k),
                covered,
            ));
        }
        results.push(ChainResult {
            account: chain_id.root.account,
            region: chain_id.region,
            items,
        });
    }
    Ok(results)
}

/// The keys backfill digests were signed with when those read so far lack them: looked up
/// around when the digests were generated (they may be days after their end time). `None`
/// when nothing is missing or the lookup fails (those digests then fail on their key).
async fn backfill_public_keys(
    aws: &Aws,
    region: &str,
    backfills: &[chain::ListedDigest],
    known: &PublicKeys,
) -> Option<PublicKeys> {
    let missing = backfills.iter().any(|d| match &d.read {
        chain::DigestRead::Object { bytes, .. } => DigestDoc::parse(bytes)
            .is_ok_and(|doc| known.get(&doc.digest_public_key_fingerprint).is_none()),
        _ => false,
    });
    if !missing {
        return None;
    }
    let generated = backfill::generated(backfills);
    let (from, to) = (generated.iter().min()?, generated.iter().max()?);
    let found = public_keys::public_keys(
        aws,
        region,
        *from - Duration::hours(1),
        *to + Duration::hours(1),
    )
    .await;
    match found {
        Ok((keys, _)) => Some(keys),
        Err(e) => {
            tracing::warn!(region, error = %e.reason, "cannot look up the keys of backfill digests");
            None
        }
    }
}

/// Reads the digests of `keys` and every log file they list: a digest's log files are
/// requested as soon as it arrives, with the other digests still coming.
pub async fn read_range(
    aws: &Aws,
    bucket_region: &str,
    scope: &ChainScope,
    keys: &[String],
    concurrency: usize,
    (limits, max_digest, max_inflated): (&ReadLimits, u64, u64),
) -> (Vec<chain::ListedDigest>, HashMap<String, chain::LogState>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let wanted: Vec<Wanted> = keys.iter().cloned().map(Wanted::from).collect();
    let digests = async {
        let digests = fetch::fetch_digests_with(
            aws,
            bucket_region,
            &scope.bucket,
            &wanted,
            concurrency,
            limits,
            max_digest,
            |doc| {
                for f in doc.log_files.iter().filter(|f| f.s3_bucket == scope.bucket) {
                    let _ = tx.send(f.s3_object.clone());
                }
            },
        )
        .await;
        drop(tx);
        digests
    };
    let listed = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|k| (Wanted::from(k), rx))
    });
    let logs = fetch::hash_logs(
        aws,
        bucket_region,
        &scope.bucket,
        listed,
        concurrency,
        limits,
        max_inflated,
    );
    tokio::join!(digests, logs)
}

/// Counts per class over all chains.
pub fn summary(results: &[ChainResult]) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for item in results.iter().flat_map(|c| &c.items) {
        *counts.entry(item.class.as_str()).or_insert(0) += 1;
    }
    counts
}

pub fn any_failure(results: &[ChainResult]) -> bool {
    results.iter().flat_map(|c| &c.items).any(Item::failed)
}

/// The text report: the CLI's line format (tab-separated kind, location, status), gaps, and
/// a summary.
pub fn text(
    trail: &Trail,
    bucket: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    results: &[ChainResult],
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Validating log files for trail {} between {} and {}\n",
        trail.arn,
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    let (mut digests, mut digests_ok, mut logs, mut logs_ok) = (0, 0, 0, 0);
    let (mut backfills, mut backfills_ok) = (0, 0);
    for c in results {
        for i in &c.items {
            let what = match i.class {
                Class::ValidDigest => "Digest file",
                Class::ValidLog => "Log file",
                Class::ExplainedRestart | Class::Failure(Kind::UnexplainedRestart) => {
                    "Chain restart"
                }
                Class::Failure(k) if k.is_digest() => "Digest file",
                Class::Failure(Kind::Unverifiable) if i.object.contains("/CloudTrail-Digest/") => {
                    "Digest file"
                }
                Class::Failure(_) => "Log file",
            };
            let is_digest = what == "Digest file";
            let backfill = is_digest && is_backfill(&i.object);
            if backfill {
                backfills += 1;
                backfills_ok += u32::from(i.class == Class::ValidDigest);
            } else if is_digest {
                digests += 1;
                digests_ok += u32::from(i.class == Class::ValidDigest);
            } else if what == "Log file" {
                logs += 1;
                logs_ok += u32::from(i.class == Class::ValidLog);
            }
            let status = match i.class {
                Class::ValidDigest | Class::ValidLog => "valid".to_string(),
                Class::ExplainedRestart => format!(
                    "explained: {} (no digests between {} and {})",
                    i.detail,
                    fmt_time(i.time),
                    fmt_time(i.until)
                ),
                Class::Failure(k @ Kind::UnexplainedRestart) => format!(
                    "INVALID ({}): {} (between {} and {})",
                    k.as_str(),
                    i.detail,
                    fmt_time(i.time),
                    fmt_time(i.until)
                ),
                Class::Failure(k) => format!("INVALID ({}): {}", k.as_str(), i.detail),
            };
            let _ = writeln!(
                out,
                "{}{what}\ts3://{bucket}/{}\t{status}\t{}\t[{} {}]",
                if backfill { "(backfill) " } else { "" },
                i.object,
                fmt_time(i.time),
                c.account,
                c.region
            );
        }
    }
    let _ = writeln!(
        out,
        "\nResults requested for {} to {}\n{digests_ok}/{digests} digest files valid",
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    if backfills > 0 {
        let _ = writeln!(
            out,
            "{backfills_ok}/{backfills} backfill digest files valid"
        );
    }
    let _ = writeln!(out, "{logs_ok}/{logs} log files valid");
    for (class, n) in summary(results) {
        let _ = writeln!(out, "{class}: {n}");
    }
    out
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_string(), |t| t.to_rfc3339())
}

/// Finds `name_or_arn` among the trails visible from `region`.
pub async fn find_trail(aws: &Aws, region: &str, name_or_arn: &str) -> Result<Trail, String> {
    let listing = trails::list_trails(aws, &[region.to_string()]).await;
    let list = listing.map_err(|e| e.reason)?;
    list.into_iter()
        .find(|t| t.name == name_or_arn || t.arn == name_or_arn)
        .ok_or_else(|| format!("no trail named {name_or_arn} in {region}"))
}

/// Arguments of the subcommand.
pub struct Args {
    pub trail: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub account: Option<String>,
    pub json: bool,
    pub concurrency: usize,
}

/// Runs the subcommand: 0 all valid, 1 an invalid, missing or unverifiable item, 2 when the
/// trail or its bucket cannot be read at all.
pub async fn command(settings: &crate::config::AwsSettings, args: Args) -> i32 {
    let metrics = crate::publish::metrics::Metrics::new();
    let aws = Aws::connect(settings, metrics.aws_api_calls.clone()).await;
    let region = &settings.regions[0];
    let trail = match find_trail(&aws, region, &args.trail).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("trailwarden validate-logs: {e}");
            return 2;
        }
    };
    let results = match validate(
        &aws,
        &trail,
        args.start,
        args.end,
        args.account.as_deref(),
        args.concurrency,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trailwarden validate-logs: trail {}: {e}", trail.name);
            return 2;
        }
    };
    let bucket = trail.s3_bucket_name.clone().unwrap_or_default();
    if args.json {
        let doc = serde_json::json!({
            "trail": trail.arn,
            "bucket": bucket,
            "start": args.start,
            "end": args.end,
            "valid": !any_failure(&results),
            "summary": summary(&results),
            "chains": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
    } else {
        print!("{}", text(&trail, &bucket, args.start, args.end, &results));
    }
    if results.is_empty() {
        eprintln!("trailwarden validate-logs: no digests found in range");
        return 1;
    }
    i32::from(any_failure(&results))
}

/// `2026-11-20T10:00:00Z`, with any offset (converted, not relabelled), or a date.
pub fn parse_time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    Err(format!(
        "{s:?} is not an RFC 3339 time (2026-11-20T10:00:00Z) or a date (2026-11-20)"
    ))
}
