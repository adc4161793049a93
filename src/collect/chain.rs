//! Reading objects of a trail's bucket, several at a time (bounded), each handed to pure
//! processing (gunzip, SHA-256, parsing) on tokio's blocking threads as it arrives: the async
//! threads only wait on the network. Memory holds at most what [`ReadLimits`] allows.

use super::aws::Aws;
use super::objects::{self, Read, ReadLimits};
use crate::integrity::chain::{DigestRead, ListedDigest, LogState, read_digest};
use crate::integrity::digest::DigestDoc;
use futures_util::stream::{self, Stream, StreamExt};
use std::collections::HashMap;

/// An object to read, with its size as listed when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub key: String,
    pub size: Option<u64>,
}

impl From<String> for Wanted {
    fn from(key: String) -> Wanted {
        Wanted { key, size: None }
    }
}

/// Reads each object of `keys` (keys may still be coming), `concurrency` at a time, and runs
/// `process` on each on a blocking thread; yields what it returns, in arrival order. A panic
/// in `process` is the caller's panic.
pub fn read_objects<'a, T: Send + 'static>(
    aws: &'a Aws,
    region: &'a str,
    bucket: &'a str,
    keys: impl Stream<Item = Wanted> + 'a,
    concurrency: usize,
    limits: &'a ReadLimits,
    process: impl Fn(String, Read) -> T + Send + Sync + Clone + 'static,
) -> impl Stream<Item = T> + 'a {
    keys.map(move |w| {
        let process = process.clone();
        async move {
            let read = objects::get(aws, region, bucket, &w.key, w.size, limits).await;
            let key = w.key;
            match tokio::task::spawn_blocking(move || process(key, read)).await {
                Ok(t) => t,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("object processing cancelled: {e}"),
            }
        }
    })
    .buffer_unordered(concurrency.max(1))
}

/// The digests of `keys` (ascending), uncompressed within `max_inflated`, with their
/// signature metadata.
pub async fn fetch_digests(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: &[Wanted],
    concurrency: usize,
    limits: &ReadLimits,
    max_inflated: u64,
) -> Vec<ListedDigest> {
    fetch_digests_with(
        aws,
        region,
        bucket,
        keys,
        concurrency,
        limits,
        max_inflated,
        |_| {},
    )
    .await
}

/// [`fetch_digests`], showing each digest that parses to `arrived` as it comes.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_digests_with(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: &[Wanted],
    concurrency: usize,
    limits: &ReadLimits,
    max_inflated: u64,
    arrived: impl Fn(&DigestDoc),
) -> Vec<ListedDigest> {
    let mut by_key: HashMap<String, DigestRead> = HashMap::with_capacity(keys.len());
    let reads = read_objects(
        aws,
        region,
        bucket,
        stream::iter(keys.to_vec()),
        concurrency,
        limits,
        move |key, read| {
            let digest = match read {
                Read::Object { body, metadata, .. } => read_digest(
                    &body,
                    metadata.get("signature").cloned(),
                    metadata.get("backfill-generation-timestamp").cloned(),
                    max_inflated,
                ),
                Read::NotFound => DigestRead::NotFound,
                Read::Unreadable(why) => DigestRead::Unreadable(why),
                Read::Oversized(why) => DigestRead::Oversized(why),
            };
            let doc = match &digest {
                DigestRead::Object { bytes, .. } => DigestDoc::parse(bytes).ok(),
                _ => None,
            };
            (key, digest, doc)
        },
    );
    let mut reads = std::pin::pin!(reads);
    while let Some((key, digest, doc)) = reads.next().await {
        if let Some(doc) = &doc {
            arrived(doc);
        }
        by_key.insert(key, digest);
    }
    keys.iter()
        .map(|k| ListedDigest {
            key: k.key.clone(),
            read: by_key.remove(&k.key).unwrap_or(DigestRead::NotFound),
        })
        .collect()
}

/// Reads and hashes each log file of `keys`.
pub async fn hash_logs(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: impl Stream<Item = Wanted>,
    concurrency: usize,
    limits: &ReadLimits,
    max_inflated: u64,
) -> HashMap<String, LogState> {
    read_objects(
        aws,
        region,
        bucket,
        keys,
        concurrency,
        limits,
        move |key, read| (key, log_state(read, max_inflated)),
    )
    .collect()
    .await
}

/// What reading a log file says about it, for its digest.
pub fn log_state(read: Read, max_inflated: u64) -> LogState {
    match read {
        Read::Object { body, .. } => match crate::logfile::hash(&body, max_inflated) {
            Ok((_, true)) => LogState::TrailingData,
            Ok((sha256, false)) => LogState::Hash(sha256),
            Err(e) => LogState::Oversized(e.0),
        },
        Read::NotFound => LogState::NotFound,
        Read::Unreadable(why) => LogState::Unreadable(why),
        Read::Oversized(why) => LogState::Oversized(why),
    }
}
