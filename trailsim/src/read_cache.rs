//! Reads answered from memory, when asked for (`--read-cache`).
//!
//! moto answers one request at a time, about 3.5 ms each and more as an organization grows;
//! AWS serves a thousand accounts' reads side by side. With this cache a repeated read (an
//! S3 GET or HEAD, or a Describe, Get or List call of another service) by the same account
//! gets moto's earlier 200 answer without asking moto again, so reads scale with the client.
//! trailsim's own reads of moto (organization membership, shadow trails, trust policies)
//! go through it too.
//!
//! The key names the account once trailsim knows the access key's account (it issued the key
//! in an AssumeRole answer): moto answers every session of an account alike, so a daemon's
//! fresh credentials read what the last session read. Other keys are keyed as themselves.
//!
//! It stays right only while every write reaches moto through trailsim: any call that is not
//! a read ([`effect`]), including trailsim's own writes, empties it, before and after the
//! write so a read that raced the write is not kept. STS and SQS calls are neither kept nor
//! a write: GetCallerIdentity names the session, a queue's answers change with every receive,
//! and neither service changes what another service's reads answer.
//! A test that writes to moto directly must leave it off; it is off by default.

use crate::call::{self, Call};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Answers kept at most, in body bytes; past it the cache starts over.
const MAX_BYTES: usize = 512 * 1024 * 1024;

/// Request headers that change from one identical read to the next (signature, time, client
/// bookkeeping) and so are left out of the key; every other header is part of it, so a
/// condition or range the cache does not know of can only make it miss. The signer's region
/// and service are part of the key (moto answers by region), its key only through the
/// principal.
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

/// Operation names that only read, outside S3 (whose reads are its GETs and HEADs).
const READ_PREFIXES: &[&str] = &["Describe", "Get", "List", "Lookup", "Head"];

/// What a request may do to what moto answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads: may be answered from memory.
    Read,
    /// Neither kept nor a write (STS, SQS).
    Neither,
    /// May change what a read answers: empties the cache.
    Write,
}

/// The request's [`Effect`]. A GET or HEAD reads (HTTP says so; IAM's query-protocol GET
/// included); a POST reads when its operation is named as a read and its service is not S3;
/// anything unsigned (moto's own reset) or unknown writes.
pub fn effect(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Effect {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let call = call::identify(&call::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        authorization: header("authorization"),
        target: header("x-amz-target"),
        host: header("host"),
        body,
    });
    let service = signer(headers).map(|s| s.service);
    effect_of(method, service, call.as_ref())
}

fn effect_of(method: &Method, service: Option<&str>, call: Option<&Call>) -> Effect {
    if matches!(service, Some("sts" | "sqs")) {
        return Effect::Neither;
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return if service.is_some() {
            Effect::Read
        } else {
            Effect::Write
        };
    }
    match call {
        Some(call)
            if call.service != "s3"
                && READ_PREFIXES.iter().any(|p| call.operation.starts_with(p)) =>
        {
            Effect::Read
        }
        _ => Effect::Write,
    }
}

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
    /// The key of a read ([`Effect::Read`]) signed with an access key: `principal` (the
    /// key's account when trailsim knows it, else the key), the signer's region and service,
    /// method, path and query, the headers that are not [`VOLATILE`], and the body. `None`
    /// when unsigned.
    pub fn key(
        principal: Option<&str>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<String> {
        let scope = signer(headers)?;
        let principal = principal.unwrap_or(scope.access_key);
        let mut key = format!(
            "{principal} {} {} {method} {}",
            scope.region,
            scope.service,
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
        key.push_str("\n\n");
        key.push_str(&String::from_utf8_lossy(body));
        Some(key)
    }
    pub fn get(&self, key: &str) -> Option<Answer> {
        let mut answer = self
            .entries
            .lock()
            .expect("read cache lock")
            .answers
            .get(key)
            .cloned()?;
        // A fresh request id: event history records it, and two calls never share one.
        let id = uuid::Uuid::new_v4();
        if answer.headers.contains_key("x-amzn-requestid")
            && let Ok(value) = HeaderValue::from_str(&id.to_string())
        {
            answer.headers.insert("x-amzn-requestid", value);
        } else if let Ok(value) =
            HeaderValue::from_str(&id.simple().to_string().to_uppercase()[..16])
        {
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

/// A SigV4 credential scope (`AKIA.../date/region/service/...`).
struct Scope<'a> {
    access_key: &'a str,
    region: &'a str,
    service: &'a str,
}

fn signer(headers: &HeaderMap) -> Option<Scope<'_>> {
    let authorization = headers.get("authorization")?.to_str().ok()?;
    let scope = authorization.split("Credential=").nth(1)?;
    let mut parts = scope.split(['/', ',', ' ']);
    let access_key = parts.next()?;
    let region = parts.nth(1)?;
    let service = parts.next()?;
    Some(Scope {
        access_key,
        region,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(access_key: &str, service: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
        signed_in(access_key, "us-east-1", service, extra)
    }

    fn signed_in(
        access_key: &str,
        region: &str,
        service: &str,
        extra: &[(&'static str, &str)],
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential={access_key}/20261124/{region}/{service}/aws4_request, SignedHeaders=host, Signature=x")
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
    fn keys_keep_accounts_regions_ranges_and_bodies_apart_and_ignore_the_signature() {
        let uri: Uri = "/bucket/key?versionId=1".parse().unwrap();
        let key = |principal: Option<&str>, headers: &HeaderMap, body: &[u8]| {
            ReadCache::key(principal, &Method::GET, &uri, headers, body).unwrap()
        };
        let a = key(None, &signed("AKIAA", "s3", &[]), b"");
        assert_ne!(a, key(None, &signed("AKIAB", "s3", &[]), b""));
        let ranged = signed("AKIAA", "s3", &[("range", "bytes=0-9")]);
        assert_ne!(a, key(None, &ranged, b""));
        assert_ne!(
            a,
            key(None, &signed_in("AKIAA", "eu-west-1", "s3", &[]), b"")
        );
        assert_ne!(a, key(None, &signed("AKIAA", "s3", &[]), b"{}"));
        let mut later = signed("AKIAA", "s3", &[]);
        later.insert("x-amz-date", "20261124T120500Z".parse().unwrap());
        assert_eq!(key(None, &later, b""), a);
        // Two sessions of one account share answers once their account is known.
        let first = key(Some("111111111111"), &signed("ASIA1", "s3", &[]), b"");
        assert_eq!(
            first,
            key(Some("111111111111"), &signed("ASIA2", "s3", &[]), b"")
        );
        assert_ne!(
            first,
            key(Some("222222222222"), &signed("ASIA1", "s3", &[]), b"")
        );
        // As another account through moto's header: the header is part of the key.
        let as_owner = signed("AKIAA", "s3", &[("x-moto-account-id", "333333333333")]);
        assert_ne!(a, key(None, &as_owner, b""));
        assert!(ReadCache::key(None, &Method::GET, &uri, &HeaderMap::new(), b"").is_none());
    }

    #[test]
    fn what_reads_what_writes_and_what_is_neither() {
        let json =
            |service: &str, target: &str| signed(service, service, &[("x-amz-target", target)]);
        let root: Uri = "/".parse().unwrap();
        let object: Uri = "/bucket/key".parse().unwrap();
        let iam_get: Uri = "/?Action=GetRole&RoleName=r".parse().unwrap();
        #[rustfmt::skip]
        let cases: &[(Method, &Uri, HeaderMap, &[u8], Effect)] = &[
            (Method::GET, &object, signed("AKIAA", "s3", &[]), b"", Effect::Read),
            (Method::HEAD, &object, signed("AKIAA", "s3", &[]), b"", Effect::Read),
            (Method::PUT, &object, signed("AKIAA", "s3", &[]), b"x", Effect::Write),
            (Method::DELETE, &object, signed("AKIAA", "s3", &[]), b"", Effect::Write),
            (Method::POST, &root, json("cloudtrail", "CloudTrail_20131101.DescribeTrails"), b"{}", Effect::Read),
            (Method::POST, &root, json("cloudtrail", "CloudTrail_20131101.GetTrailStatus"), b"{}", Effect::Read),
            (Method::POST, &root, json("cloudtrail", "CloudTrail_20131101.StopLogging"), b"{}", Effect::Write),
            (Method::POST, &root, json("config", "StarlingDoveService.DescribeConfigurationRecorderStatus"), b"{}", Effect::Read),
            (Method::POST, &root, json("kms", "TrentService.DisableKey"), b"{}", Effect::Write),
            (Method::POST, &root, json("organizations", "AWSOrganizationsV20161128.ListAccounts"), b"{}", Effect::Read),
            (Method::POST, &root, json("organizations", "AWSOrganizationsV20161128.CreateAccount"), b"{}", Effect::Write),
            (Method::GET, &iam_get, signed("AKIAA", "iam", &[]), b"", Effect::Read),
            (Method::POST, &root, signed("AKIAA", "iam", &[]), b"Action=DeleteRole&RoleName=r", Effect::Write),
            (Method::POST, &root, signed("AKIAA", "sts", &[]), b"Action=AssumeRole", Effect::Neither),
            (Method::POST, &root, signed("AKIAA", "sts", &[]), b"Action=GetCallerIdentity", Effect::Neither),
            (Method::POST, &root, json("sqs", "AmazonSQS.ReceiveMessage"), b"{}", Effect::Neither),
            (Method::POST, &root, json("sqs", "AmazonSQS.GetQueueAttributes"), b"{}", Effect::Neither),
            // moto's own API (reset) is unsigned.
            (Method::POST, &root, HeaderMap::new(), b"", Effect::Write),
            (Method::GET, &root, HeaderMap::new(), b"", Effect::Write),
        ];
        for (method, uri, headers, body, expected) in cases {
            assert_eq!(
                effect(method, uri, headers, body),
                *expected,
                "{method} {uri} {headers:?} {body:?}"
            );
        }
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
