//! S3 reads answered from memory, when asked for (`--s3-read-cache`).
//!
//! moto answers one request at a time, about 3.5 ms each, so a client reading a bucket with 64
//! requests in flight waits as long as one reading serially; S3 serves them side by side.
//! With this cache a repeated S3 GET (same account, path, query and conditions) gets moto's
//! earlier 200 answer without asking moto again, so reads scale with the client, as on S3.
//!
//! It stays right only while every write reaches moto through trailsim: any request that may
//! change what an S3 read answers (not a GET or HEAD, and not a call to one of the services in
//! [`CANNOT_CHANGE_S3`]), including trailsim's own writes, empties it, before and after the
//! write so a read that raced the write is not kept. A test that writes to moto directly must
//! leave it off; it is off by default.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Answers kept at most, in body bytes; past it the cache starts over.
const MAX_BYTES: usize = 512 * 1024 * 1024;

/// Request headers that change from one identical read to the next (signature, time, client
/// bookkeeping) and so are left out of the key; every other header is part of it, so a
/// condition or range the cache does not know of can only make it miss.
const VOLATILE: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "user-agent",
    "x-amz-user-agent",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "accept-encoding",
    "accept",
    "connection",
    "content-length",
];

/// Services whose calls (JSON and query protocols: POSTs, even to read) leave S3 answers as
/// they are in moto. KMS is not one (a disabled key fails SSE-KMS reads), nor IAM (moto may
/// enforce policies), nor anything unsigned (moto's own reset).
const CANNOT_CHANGE_S3: &[&str] = &["cloudtrail", "sts", "organizations", "ec2", "config"];

/// One of moto's answers, replayed as it was but for a fresh request id.
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
pub struct ReadCache {
    /// Bumped by every write; an answer is kept only if no write began or ended while it was
    /// fetched.
    generation: AtomicU64,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    answers: HashMap<String, Answer>,
    bytes: usize,
}

impl ReadCache {
    /// The key of a cacheable request: an S3 GET signed with an access key (moto tells
    /// accounts apart by it). `None` for anything else.
    pub fn key(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        if method != Method::GET {
            return None;
        }
        let (access_key, service) = signer(headers)?;
        if service != "s3" {
            return None;
        }
        let mut key = format!(
            "{access_key} {}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let mut kept: Vec<(&str, &[u8])> = headers
            .iter()
            .filter(|(name, _)| !VOLATILE.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        kept.sort_unstable();
        for (name, value) in kept {
            key.push('\n');
            key.push_str(name);
            key.push(':');
            key.push_str(&String::from_utf8_lossy(value));
        }
        Some(key)
    }

    /// Whether moto's S3 answers may differ after this request.
    pub fn may_change_reads(method: &Method, headers: &HeaderMap) -> bool {
        if matches!(*method, Method::GET | Method::HEAD) {
            return false;
        }
        !signer(headers).is_some_and(|(_, service)| CANNOT_CHANGE_S3.contains(&service))
    }

    pub fn get(&self, key: &str) -> Option<Answer> {
        let mut answer = self
            .entries
            .lock()
            .expect("read cache lock")
            .answers
            .get(key)
            .cloned()?;
        let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        if let Ok(value) = HeaderValue::from_str(&id[..16]) {
            answer.headers.insert("x-amz-request-id", value);
        }
        Some(answer)
    }

    /// Taken before fetching what may be kept.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps a 200 answer fetched since `generation`, unless a write came in between.
    pub fn keep(&self, key: String, generation: u64, answer: Answer) {
        if answer.status != StatusCode::OK {
            return;
        }
        let mut entries = self.entries.lock().expect("read cache lock");
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.bytes + answer.body.len() > MAX_BYTES {
            entries.answers.clear();
            entries.bytes = 0;
        }
        entries.bytes += answer.body.len();
        if let Some(old) = entries.answers.insert(key, answer) {
            entries.bytes -= old.body.len();
        }
    }

    /// A write is about to happen or has happened: forget everything.
    pub fn forget(&self) {
        let mut entries = self.entries.lock().expect("read cache lock");
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.answers.clear();
        entries.bytes = 0;
    }
}

/// Access key and service from a SigV4 credential scope (`AKIA.../date/region/service/...`).
fn signer(headers: &HeaderMap) -> Option<(&str, &str)> {
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let scope = authorization.split("Credential=").nth(1)?;
    let mut parts = scope.split('/');
    let access_key = parts.next()?;
    let service = parts.nth(2)?;
    Some((access_key, service))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(access_key: &str, service: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential={access_key}/20261124/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x")
                .parse()
                .unwrap(),
        );
        h.insert("x-amz-date", "20261124T120000Z".parse().unwrap());
        for (k, v) in extra {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn ok(body: &'static str) -> Answer {
        Answer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn only_signed_s3_gets_are_cacheable_and_accounts_and_ranges_stay_apart() {
        let uri: Uri = "/bucket/key?versionId=1".parse().unwrap();
        let a = ReadCache::key(&Method::GET, &uri, &signed("AKIAA", "s3", &[])).unwrap();
        let b = ReadCache::key(&Method::GET, &uri, &signed("AKIAB", "s3", &[])).unwrap();
        let ranged = ReadCache::key(
            &Method::GET,
            &uri,
            &signed("AKIAA", "s3", &[("range", "bytes=0-9")]),
        )
        .unwrap();
        assert_ne!(a, b);
        assert_ne!(a, ranged);
        let mut later = signed("AKIAA", "s3", &[]);
        later.insert("x-amz-date", "20261124T120500Z".parse().unwrap());
        assert_eq!(ReadCache::key(&Method::GET, &uri, &later).unwrap(), a);
        assert!(ReadCache::key(&Method::PUT, &uri, &signed("AKIAA", "s3", &[])).is_none());
        assert!(ReadCache::key(&Method::GET, &uri, &signed("AKIAA", "ec2", &[])).is_none());
        assert!(ReadCache::key(&Method::GET, &uri, &HeaderMap::new()).is_none());
    }

    #[test]
    fn s3_and_kms_writes_change_reads_cloudtrail_reads_do_not() {
        let changes =
            |method: Method, headers: HeaderMap| ReadCache::may_change_reads(&method, &headers);
        assert!(changes(Method::PUT, signed("AKIAA", "s3", &[])));
        assert!(changes(Method::DELETE, signed("AKIAA", "s3", &[])));
        assert!(changes(Method::POST, signed("AKIAA", "kms", &[])));
        assert!(changes(Method::POST, HeaderMap::new()));
        assert!(!changes(Method::POST, signed("AKIAA", "cloudtrail", &[])));
        assert!(!changes(Method::GET, signed("AKIAA", "s3", &[])));
        assert!(!changes(Method::HEAD, signed("AKIAA", "s3", &[])));
    }

    #[test]
    fn a_write_during_the_fetch_keeps_the_answer_out_and_errors_are_not_kept() {
        let cache = ReadCache::default();
        let before = cache.generation();
        cache.forget();
        cache.keep("k".into(), before, ok("stale"));
        assert!(cache.get("k").is_none());

        let now = cache.generation();
        let mut denied = ok("AccessDenied");
        denied.status = StatusCode::FORBIDDEN;
        cache.keep("k".into(), now, denied);
        assert!(cache.get("k").is_none());

        cache.keep("k".into(), now, ok("fresh"));
        let hit = cache.get("k").unwrap();
        assert_eq!(hit.body, "fresh");
        assert!(hit.headers.contains_key("x-amz-request-id"));
        cache.forget();
        assert!(cache.get("k").is_none());
    }
}
