//! One digest chain's pass: list the trail's digests after the last one judged
//! (`plan::digest_folder`), read them and the log files they list, walk the chain
//! (`integrity::chain::judge`, holding at what cannot be read yet), and store the verdicts,
//! the files listed, the chain's retry and its new cursor in one transaction.

use super::{Inputs, TrailPass, store_failure};
use crate::collect::aws::reason_class;
use crate::collect::chain::{self as fetch, Wanted};
use crate::collect::objects;
use crate::collect::public_keys;
use crate::integrity::chain::{
    self, ChainScope, DigestRead, LogState, Resume, Transition, Unjudged,
};
use crate::integrity::digest::DigestDoc;
use crate::integrity::layout::{self, AccountRoot};
use crate::integrity::verdict::{Class, Item};
use crate::plan::digest_folder::{self, DigestFolder, Rules};
use crate::plan::retry;
use crate::posture::{TrailState, Unavailable};
use crate::state::{LogFileRow, UnreadRow};
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};

/// A digest signed with a key ListPublicKeys does not list yet is waited for this long after
/// its end before it is an invalid signature.
const KEY_GRACE: Duration = Duration::hours(2);

/// The chain a pass walks.
pub(super) struct Chain<'a> {
    pub bucket_region: &'a str,
    pub state: &'a TrailState,
    pub root: &'a AccountRoot,
    pub scope: &'a ChainScope,
    pub transitions: &'a [Transition],
}

/// Validates a trail's new digests in one digest folder. Returns the folder's state, or
/// `None` when the trail has no digest there.
pub(super) async fn validate_folder(
    inputs: &Inputs<'_>,
    chain: &Chain<'_>,
    retries: &[UnreadRow],
    pass: &mut TrailPass,
) -> Result<Option<DigestFolder>, Unavailable> {
    let trail = &chain.state.trail;
    let scope = chain.scope;
    let now = inputs.now;
    let folder = chain.root.digests(&scope.region);
    let id = format!("{}/{folder}#{}", scope.bucket, trail.name);
    let key = id.clone();
    let st: DigestFolder = inputs
        .store
        .run(move |s| s.folder_state(&key))
        .await
        .map_err(store_failure)?
        .unwrap_or_default();
    let hold = retries.iter().find(|u| {
        u.kind == "digest"
            && u.trail == trail.name
            && u.account == scope.account
            && u.region == scope.region
    });
    let rules = Rules {
        initial_window: Duration::from_std(inputs.settings.initial_window.0)
            .unwrap_or(Duration::days(1)),
        max_digests: inputs.settings.max_digests_per_poll,
    };
    let seen = |st: &DigestFolder| st.last.is_some().then(|| st.clone());
    if !digest_folder::walk_now(hold.map(|h| &h.retry), now) {
        return Ok(seen(&st));
    }
    let start_after = digest_folder::start_after(&folder, &st, now, &rules);
    let mine = |key: &str| {
        layout::parse_digest_key(key).is_some_and(|k| {
            !k.backfill && k.trail == trail.name && k.home_region == trail.home_region
        })
    };
    let mut keys = Vec::new();
    objects::list(
        inputs.aws,
        chain.bucket_region,
        &scope.bucket,
        &folder,
        Some(&start_after),
        |page| {
            keys.extend(page.into_iter().filter(|o| mine(&o.key)).map(|o| Wanted {
                key: o.key,
                size: u64::try_from(o.size).ok(),
            }));
            keys.len() < rules.max_digests
        },
    )
    .await?;
    (inputs.tick)();
    let mut st = st;
    if !st.origin_checked {
        st.origin =
            chain_origin(inputs, chain.bucket_region, &scope.bucket, &folder, &mine).await?;
        st.origin_checked = true;
    }
    let wanted = digest_folder::this_pass(keys, &rules);
    if wanted.is_empty() {
        let state = serde_json::to_string(&st).expect("serializable");
        let (trail_name, account, region) = (
            trail.name.clone(),
            scope.account.clone(),
            scope.region.clone(),
        );
        inputs
            .store
            .run(move |s| {
                s.record_walk(
                    (&trail_name, &account, &region),
                    &[],
                    &[],
                    None,
                    (&id, &state),
                    now,
                )
            })
            .await
            .map_err(store_failure)?;
        return Ok(seen(&st));
    }
    let first_end = layout::parse_digest_key(&wanted[0].key).map_or(now, |k| k.end);
    let (public, rejected) = public_keys::public_keys(
        inputs.aws,
        &scope.region,
        first_end - Duration::hours(1),
        now + Duration::hours(2),
    )
    .await?;
    for r in rejected {
        tracing::warn!(region = %scope.region, "public key rejected: {r}");
    }
    let digests = fetch::fetch_digests(
        inputs.aws,
        chain.bucket_region,
        &scope.bucket,
        &wanted,
        inputs.settings.concurrency,
        inputs.limits,
        inputs.settings.max_digest_size.0,
    )
    .await;
    (inputs.tick)();
    let docs: Vec<DigestDoc> = digests
        .iter()
        .filter_map(|d| match &d.read {
            DigestRead::Object { bytes, .. } => DigestDoc::parse(bytes).ok(),
            _ => None,
        })
        .collect();
    // The log folder as it is now, over the interval the digests cover.
    let from = docs.iter().filter_map(|d| d.start()).min();
    let to = docs.iter().filter_map(|d| d.end()).max();
    let mut current: HashMap<String, (String, DateTime<Utc>, i64)> = HashMap::new();
    if let (Some(from), Some(to)) = (from, to) {
        let log_folder = chain.root.logs(&scope.region);
        let found = objects::keys_between(
            inputs.aws,
            chain.bucket_region,
            &scope.bucket,
            &log_folder,
            from - Duration::hours(1),
            to + Duration::minutes(1),
            |key| layout::parse_log_key(key).map(|k| k.delivered),
        )
        .await?;
        current.extend(found.into_iter().map(|(o, t)| (o.key, (o.etag, t, o.size))));
    }
    let object = |k: &str| format!("{}/{k}", scope.bucket);
    let listed: Vec<String> = docs
        .iter()
        .flat_map(|d| d.log_files.iter())
        .filter(|f| f.s3_bucket == scope.bucket)
        .map(|f| f.s3_object.clone())
        .collect();
    let listed_objects: Vec<String> = listed.iter().map(|k| object(k)).collect();
    let in_folder: Vec<String> = current.keys().map(|k| object(k)).collect();
    let (stored, listed_before) = inputs
        .store
        .run(move |s| {
            Ok::<_, crate::state::StateError>((
                s.log_files(&listed_objects)?,
                s.listed_logs(&in_folder)?,
            ))
        })
        .await
        .map_err(store_failure)?;
    let mut logs: HashMap<String, LogState> = HashMap::new();
    let mut to_read = Vec::new();
    for key in &listed {
        let row = stored.get(&object(key));
        let unchanged = match (row, current.get(key)) {
            (Some(row), Some((etag, _, _))) => row.etag == *etag,
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
            _ => to_read.push(Wanted {
                key: key.clone(),
                size: current
                    .get(key)
                    .and_then(|(_, _, size)| u64::try_from(*size).ok()),
            }),
        }
    }
    logs.extend(
        fetch::hash_logs(
            inputs.aws,
            chain.bucket_region,
            &scope.bucket,
            futures_util::stream::iter(to_read),
            inputs.settings.concurrency,
            inputs.limits,
            inputs.settings.max_inflated_size.0,
        )
        .await,
    );
    (inputs.tick)();
    let report = chain::judge(
        scope,
        Resume {
            last: st.last.as_ref(),
            valid: st.valid.as_ref(),
        },
        &digests,
        &public,
        &logs,
        chain.transitions,
        Unjudged::Hold {
            now,
            key_grace: KEY_GRACE,
        },
    );
    let in_folder: Vec<(String, DateTime<Utc>)> = current
        .iter()
        .map(|(k, (_, t, _))| (k.clone(), *t))
        .collect();
    let listed_before: HashSet<String> = listed_before
        .into_iter()
        .filter_map(|o| {
            o.strip_prefix(&format!("{}/", scope.bucket))
                .map(str::to_string)
        })
        .collect();
    let mut items: Vec<Item> = report.items.clone();
    items.extend(digest_folder::unlisted(&in_folder, &listed_before, &report));
    let validated = items.iter().filter(|i| i.class == Class::ValidLog).count() as u64;
    *pass
        .logs_validated
        .entry((scope.account.clone(), scope.region.clone()))
        .or_default() += validated;
    let kept: Vec<Item> = items
        .into_iter()
        .filter(|i| !matches!(i.class, Class::ValidDigest | Class::ValidLog))
        .collect();
    let backoff =
        Duration::from_std(inputs.settings.retry_backoff.0).unwrap_or(Duration::seconds(30));
    let held = report.held.as_ref().map(|h| {
        let previous = hold
            .filter(|u| u.object == object(&h.object))
            .map(|u| &u.retry);
        let retry = retry::after_failure(previous, &h.reason, now, backoff);
        tracing::warn!(
            trail = %trail.name, account = %scope.account, region = %scope.region,
            object = %h.object, digest = %h.digest, attempts = retry.attempts,
            next_attempt = %retry.next_attempt, "digest chain waits: {}", h.reason
        );
        pass.read_failures.push(("digest", reason_class(&h.reason)));
        UnreadRow {
            object: object(&h.object),
            kind: "digest".into(),
            trail: trail.name.clone(),
            account: scope.account.clone(),
            region: scope.region.clone(),
            size: None,
            delivered: layout::parse_digest_key(&h.digest).map(|k| k.end),
            retry,
        }
    });
    if let Some(h) = &report.held {
        pass.errors.push(Unavailable::api_failure(format!(
            "{}: {}",
            h.object, h.reason
        )));
    }
    let next = digest_folder::after(&st, &report);
    let state = serde_json::to_string(&next).expect("serializable");
    let listed_now: Vec<String> = report.listed_logs.iter().map(|k| object(k)).collect();
    let (trail_name, account, region) = (
        trail.name.clone(),
        scope.account.clone(),
        scope.region.clone(),
    );
    let new = inputs
        .store
        .run(move |s| {
            s.record_walk(
                (&trail_name, &account, &region),
                &kept,
                &listed_now,
                held.as_ref(),
                (&id, &state),
                now,
            )
        })
        .await
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
    Ok(seen(&next).or(Some(next)))
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
        oldest = page.into_iter().find(|o| mine(&o.key)).map(|o| Wanted {
            size: u64::try_from(o.size).ok(),
            key: o.key,
        });
        oldest.is_none()
    })
    .await?;
    let Some(wanted) = oldest else {
        return Ok(None);
    };
    let read = fetch::fetch_digests(
        inputs.aws,
        region,
        bucket,
        &[wanted],
        1,
        inputs.limits,
        inputs.settings.max_digest_size.0,
    )
    .await;
    Ok(match &read[0].read {
        DigestRead::Object { bytes, .. } => DigestDoc::parse(bytes)
            .ok()
            .filter(|d| matches!(d.previous(), Ok(None)))
            .and_then(|d| d.start()),
        _ => None,
    })
}
