//! S3 objects of a trail's bucket: listing (page by page, from a marker, so memory stays
//! constant however big the bucket), folder discovery, and reading one object with its
//! metadata. ListObjectsV2, GetObject, GetBucketLocation.

use super::aws::{Aws, error_code, unavailable};
use crate::integrity::layout::{self, AccountRoot};
use crate::posture::Unavailable;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One listed object.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub etag: String,
    pub last_modified: Option<DateTime<Utc>>,
    pub size: i64,
}

/// The bucket's region (S3 answers for a bucket only in its own region).
pub async fn bucket_region(
    aws: &Aws,
    any_region: &str,
    bucket: &str,
) -> Result<String, Unavailable> {
    let out = aws
        .s3(any_region)
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| unavailable("GetBucketLocation", &e))?;
    Ok(match out.location_constraint().map(|c| c.as_str()) {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    })
}

/// One page (up to 1000 keys) of `prefix` in key order: after `start_after` on the first
/// call, then from the continuation token. Returns the page and the next token.
pub async fn list_page(
    aws: &Aws,
    region: &str,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    token: Option<String>,
) -> Result<(Vec<Listed>, Option<String>), Unavailable> {
    let s3 = aws.s3(region);
    let mut req = s3.list_objects_v2().bucket(bucket).prefix(prefix);
    req = match token {
        Some(t) => req.continuation_token(t),
        None => req.set_start_after(start_after.map(str::to_string)),
    };
    let out = req
        .send()
        .await
        .map_err(|e| unavailable("ListObjectsV2", &e))?;
    let objects = out
        .contents()
        .iter()
        .filter_map(|o| {
            Some(Listed {
                key: o.key()?.to_string(),
                etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                last_modified: o.last_modified().and_then(super::to_utc),
                size: o.size().unwrap_or(0),
            })
        })
        .collect();
    let next = match out.next_continuation_token() {
        Some(t) if out.is_truncated() == Some(true) => Some(t.to_string()),
        _ => None,
    };
    Ok((objects, next))
}

/// Lists `prefix` in key order after `start_after`, handing each page to `page` as it
/// arrives; `page` returns false to stop early. Returns the number listed.
pub async fn list(
    aws: &Aws,
    region: &str,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    mut page: impl FnMut(Vec<Listed>) -> bool,
) -> Result<u64, Unavailable> {
    let mut token: Option<String> = None;
    let mut count = 0;
    loop {
        let (objects, next) = list_page(aws, region, bucket, prefix, start_after, token).await?;
        count += objects.len() as u64;
        if !page(objects) {
            return Ok(count);
        }
        match next {
            Some(t) => token = Some(t),
            None => return Ok(count),
        }
    }
}

/// Objects of a CloudTrail date folder (`…/{region}/`) whose time, as `time_of` reads it from
/// the key (`None`: not wanted), is in `[from, to]`; listing stops past `to`.
pub async fn keys_between(
    aws: &Aws,
    region: &str,
    bucket: &str,
    folder: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    time_of: impl Fn(&str) -> Option<DateTime<Utc>>,
) -> Result<Vec<(Listed, DateTime<Utc>)>, Unavailable> {
    let mut found = Vec::new();
    let start_after = layout::start_after_for(folder, from);
    list(aws, region, bucket, folder, Some(&start_after), |page| {
        for o in page {
            let Some(t) = time_of(&o.key) else { continue };
            if t > to {
                return false;
            }
            if t >= from {
                found.push((o, t));
            }
        }
        true
    })
    .await?;
    Ok(found)
}

/// The immediate sub-folders of `prefix` (names without the prefix and trailing `/`).
pub async fn folders(
    aws: &Aws,
    region: &str,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, Unavailable> {
    let s3 = aws.s3(region);
    let mut token: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .delimiter("/")
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| unavailable("ListObjectsV2", &e))?;
        for p in out.common_prefixes() {
            if let Some(name) = p
                .prefix()
                .and_then(|p| p.strip_prefix(prefix))
                .map(|p| p.trim_end_matches('/'))
            {
                names.push(name.to_string());
            }
        }
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(names),
        }
    }
}

/// The account folders under `{P}AWSLogs/`: accounts, and an organization's members.
pub async fn account_roots(
    aws: &Aws,
    region: &str,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Vec<AccountRoot>, Unavailable> {
    let logs_root = AccountRoot::logs_root(prefix);
    let prefix = prefix
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| !p.is_empty());
    let mut roots = Vec::new();
    for name in folders(aws, region, bucket, &logs_root).await? {
        if layout::is_account_id(&name) {
            roots.push(AccountRoot {
                prefix: prefix.clone(),
                org: None,
                account: name,
            });
        } else if layout::is_org_id(&name) {
            for member in folders(aws, region, bucket, &format!("{logs_root}{name}/")).await? {
                if layout::is_account_id(&member) {
                    roots.push(AccountRoot {
                        prefix: prefix.clone(),
                        org: Some(name.clone()),
                        account: member,
                    });
                }
            }
        }
    }
    Ok(roots)
}

/// What reading an object gave.
#[derive(Debug)]
pub enum Read {
    /// The body as stored (gzip for CloudTrail objects) and the user metadata, keys
    /// lowercased (SDKs disagree on their case). `room` holds the body's share of the read
    /// memory until the body is dropped.
    Object {
        body: bytes::Bytes,
        metadata: HashMap<String, String>,
        room: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    NotFound,
    /// AccessDenied, a KMS error, a network failure after retries.
    Unreadable(String),
    /// Larger than the cap: never read whole.
    Oversized(String),
}

/// What reads may hold: a cap per object and a budget of memory for all bodies held at once.
#[derive(Debug, Clone)]
pub struct ReadLimits {
    pub max_object: u64,
    /// Room for bodies, in KiB permits.
    room: Arc<Semaphore>,
    room_kib: u32,
    /// A stalled body is given up after this long.
    pub body_timeout: std::time::Duration,
}

impl ReadLimits {
    pub fn new(max_object: u64, memory: u64, body_timeout: std::time::Duration) -> ReadLimits {
        let room_kib = u32::try_from((memory >> 10).max(1)).unwrap_or(u32::MAX >> 3);
        let room_kib = room_kib.min(Semaphore::MAX_PERMITS as u32);
        ReadLimits {
            max_object,
            room: Arc::new(Semaphore::new(room_kib as usize)),
            room_kib,
            body_timeout,
        }
    }

    /// Room for a body of `size` bytes (1 MiB when unknown), waiting while other bodies fill
    /// the budget.
    async fn room_for(&self, size: Option<u64>) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = size
            .map_or(1024, |s| s.div_ceil(1024))
            .clamp(1, u64::from(self.room_kib));
        self.room.clone().acquire_many_owned(kib as u32).await.ok()
    }
}

fn too_large(size: u64, max: u64) -> Read {
    Read::Oversized(format!(
        "{size} bytes as stored, over {} MiB (limit bucket.max_object_size)",
        max >> 20
    ))
}

/// Reads one object within `limits`; `size` is what the listing said.
pub async fn get(
    aws: &Aws,
    region: &str,
    bucket: &str,
    key: &str,
    size: Option<u64>,
    limits: &ReadLimits,
) -> Read {
    if let Some(size) = size.filter(|s| *s > limits.max_object) {
        return too_large(size, limits.max_object);
    }
    let room = limits.room_for(size).await;
    let s3 = aws.s3(region);
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => return read_error(&e),
    };
    let stored = out.content_length().and_then(|l| u64::try_from(l).ok());
    if let Some(len) = stored.filter(|l| *l > limits.max_object) {
        return too_large(len, limits.max_object);
    }
    let metadata = out
        .metadata()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut body = out.body;
    let mut data =
        bytes::BytesMut::with_capacity(stored.unwrap_or(0).min(limits.max_object) as usize);
    let collected = tokio::time::timeout(limits.body_timeout, async {
        while let Some(chunk) = body.try_next().await? {
            if (data.len() + chunk.len()) as u64 > limits.max_object {
                return Ok::<bool, aws_sdk_s3::primitives::ByteStreamError>(false);
            }
            data.extend_from_slice(&chunk);
        }
        Ok(true)
    })
    .await;
    match collected {
        Ok(Ok(true)) => Read::Object {
            body: data.freeze(),
            metadata,
            room,
        },
        Ok(Ok(false)) => too_large(limits.max_object + 1, limits.max_object),
        Ok(Err(e)) => Read::Unreadable(format!("GetObject: reading the body of {key}: {e}")),
        Err(_) => Read::Unreadable(format!(
            "GetObject: the body of {key} stalled for {}s",
            limits.body_timeout.as_secs()
        )),
    }
}

fn read_error(e: &SdkError<GetObjectError, HttpResponse>) -> Read {
    let status = match e {
        SdkError::ServiceError(s) => s.raw().status().as_u16(),
        _ => 0,
    };
    let not_found = matches!(e, SdkError::ServiceError(s) if s.err().is_no_such_key())
        || error_code(e) == Some("NoSuchKey")
        || status == 404;
    if not_found {
        Read::NotFound
    } else {
        Read::Unreadable(unavailable("GetObject", e).reason)
    }
}
