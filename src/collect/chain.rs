//! Reading what a digest chain needs from the bucket: the digests themselves and the log
//! files they list, several at a time (bounded), each handed over as it arrives so memory
//! holds at most `concurrency` bodies.

use super::aws::Aws;
use super::objects::{self, Read};
use crate::integrity::chain::{Fetched, ListedDigest, LogState};
use crate::integrity::digest::{DigestDoc, uncompressed};
use futures_util::stream::{self, Stream, StreamExt};
use std::collections::HashMap;

/// Calls `each` with every object of `keys` (an iterator: `stream::iter`, or keys still
/// coming) as it is read, `concurrency` reads at a time.
pub async fn for_each_object(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: impl Stream<Item = String>,
    concurrency: usize,
    mut each: impl FnMut(String, Read),
) {
    let reads = keys
        .map(|key| async move {
            let read = objects::get(aws, region, bucket, &key).await;
            (key, read)
        })
        .buffer_unordered(concurrency.max(1));
    let mut reads = std::pin::pin!(reads);
    while let Some((key, read)) = reads.next().await {
        each(key, read);
    }
}

/// The digests of `keys` (ascending), uncompressed, with their signature metadata.
pub async fn fetch_digests(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: &[String],
    concurrency: usize,
) -> Vec<ListedDigest> {
    fetch_digests_with(aws, region, bucket, keys, concurrency, |_| {}).await
}

/// [`fetch_digests`], showing each digest that parses to `arrived` as it comes.
pub async fn fetch_digests_with(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: &[String],
    concurrency: usize,
    arrived: impl Fn(&DigestDoc),
) -> Vec<ListedDigest> {
    let mut by_key: HashMap<String, Fetched> = HashMap::with_capacity(keys.len());
    for_each_object(
        aws,
        region,
        bucket,
        stream::iter(keys.to_vec()),
        concurrency,
        |key, read| {
            let fetched = match read {
                Read::Object { body, metadata } => match uncompressed(&body) {
                    // Trailing bytes after a digest's gzip member are ignored, as the CLI does.
                    Ok((bytes, _)) => {
                        if let Ok(doc) = DigestDoc::parse(&bytes) {
                            arrived(&doc);
                        }
                        Fetched::Object {
                            bytes,
                            signature: metadata.get("signature").cloned(),
                            backfill_generated: metadata
                                .get("backfill-generation-timestamp")
                                .cloned(),
                        }
                    }
                    Err(e) => Fetched::Object {
                        // Unparseable bytes: judged as an invalid format.
                        bytes: e.into_bytes(),
                        signature: metadata.get("signature").cloned(),
                        backfill_generated: None,
                    },
                },
                Read::NotFound => Fetched::NotFound,
                Read::Unreadable(why) => Fetched::Unreadable(why),
            };
            by_key.insert(key, fetched);
        },
    )
    .await;
    keys.iter()
        .map(|k| ListedDigest {
            key: k.clone(),
            fetched: by_key.remove(k).unwrap_or(Fetched::NotFound),
        })
        .collect()
}

/// Reads and hashes each log file of `keys`.
pub async fn hash_logs(
    aws: &Aws,
    region: &str,
    bucket: &str,
    keys: impl Stream<Item = String>,
    concurrency: usize,
) -> HashMap<String, LogState> {
    let mut states = HashMap::new();
    let mut buf = Vec::new();
    for_each_object(aws, region, bucket, keys, concurrency, |key, read| {
        states.insert(key, log_state(read, &mut buf));
    })
    .await;
    states
}

/// What reading a log file says about it.
pub fn log_state(read: Read, buf: &mut Vec<u8>) -> LogState {
    match read {
        Read::Object { body, .. } => match crate::logfile::inflate(&body, buf) {
            Ok((_, true)) => LogState::TrailingData,
            Ok((sha256, false)) => LogState::Hash(sha256),
            // Not gzip at all: the hash of what is there cannot match.
            Err(_) => LogState::Hash(crate::integrity::digest::sha256_hex(&body)),
        },
        Read::NotFound => LogState::NotFound,
        Read::Unreadable(why) => LogState::Unreadable(why),
    }
}
