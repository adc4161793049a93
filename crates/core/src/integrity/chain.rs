//! Judging one digest chain (one trail, account and delivery region) from what was fetched:
//! signatures, locations, the links between digests, and the log files each valid digest
//! lists. Pure: fetching is the caller's (`collect::objects`), so every verdict is testable
//! without S3.
//!
//! The walk goes forward in time from the last digest validated before (the anchor), so a
//! daemon resumes where it stopped. Unlike `aws cloudtrail validate-logs` it checks each link
//! (the previous digest's hash and signature), reports every missing digest a link or the
//! cadence reveals (not only the first), and tells restarts that StopLogging/StartLogging
//! explain from those nothing explains.

use super::digest::{DigestDoc, PublicKeys, data_to_sign, same_hex, sha256_hex, unhex};
use super::layout::parse_digest_key;
use super::verdict::{Class, Item, Kind};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeSet, HashMap};

/// Whose chain this is: what every digest in it must claim.
#[derive(Debug, Clone)]
pub struct ChainScope {
    pub bucket: String,
    pub account: String,
    pub region: String,
}

/// A digest key from the listing, with what reading it gave.
#[derive(Debug, Clone)]
pub struct ListedDigest {
    pub key: String,
    pub read: DigestRead,
}

/// What reading a digest object gave.
#[derive(Debug, Clone)]
pub enum DigestRead {
    /// Uncompressed bytes and the `signature` and `backfill-generation-timestamp` metadata,
    /// if any.
    Object {
        bytes: Vec<u8>,
        signature: Option<String>,
        backfill_generated: Option<String>,
    },
    NotFound,
    /// AccessDenied, KMS, network: the item cannot be judged (yet).
    Unreadable(String),
    /// Larger than a cap, compressed or inflated: a verdict of its own, never read whole.
    Oversized(String),
    /// Not valid gzip: an invalid format, with the hash of the bytes as stored (which the next
    /// digest's link is checked against).
    Malformed {
        why: String,
        sha256: String,
        signature: Option<String>,
    },
}

/// A digest object as the walk judges it: gunzipped within `max_inflated`.
pub fn read_digest(
    body: &[u8],
    signature: Option<String>,
    backfill_generated: Option<String>,
    max_inflated: u64,
) -> DigestRead {
    match super::digest::uncompressed(body, max_inflated) {
        // Trailing bytes after a digest's gzip member are ignored, as the CLI does.
        Ok((bytes, _)) => DigestRead::Object {
            bytes,
            signature,
            backfill_generated,
        },
        Err(super::digest::InflateError::Oversized(why)) => DigestRead::Oversized(why),
        Err(super::digest::InflateError::Corrupt(why)) => DigestRead::Malformed {
            why,
            sha256: sha256_hex(body),
            signature,
        },
    }
}

/// What is known of a log file listed by a digest.
#[derive(Debug, Clone, PartialEq)]
pub enum LogState {
    /// SHA-256 of the uncompressed bytes.
    Hash(String),
    /// Bytes after the first gzip member: CloudTrail never writes that.
    TrailingData,
    NotFound,
    /// Could not be read (yet): AccessDenied, a KMS error, a dropped connection.
    Unreadable(String),
    /// Over a size cap: its hash is not computed.
    Oversized(String),
}

/// A digest already judged: where a later walk resumes, and what the next digest's link must
/// match.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    pub key: String,
    pub end: DateTime<Utc>,
    /// Hash and signature of the object as read; `None` when it could not be read (then the
    /// next link is not checked against it: it was reported already).
    pub sha256: Option<String>,
    pub signature: Option<String>,
}

/// A logging transition of the trail (from event history or the logs themselves).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub time: DateTime<Utc>,
    /// StopLogging, StartLogging, UpdateTrail, CreateTrail, DeleteTrail.
    pub event_name: String,
}

/// Events that start or stop a trail's digest chains.
pub const TRANSITIONS: [&str; 5] = [
    "StopLogging",
    "StartLogging",
    "UpdateTrail",
    "CreateTrail",
    "DeleteTrail",
];

/// How a walk treats a digest it cannot judge yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unjudged {
    /// One-shot validation: report it (unverifiable, or a signature failure) and go on, as
    /// `aws cloudtrail validate-logs` does.
    Report,
    /// The daemon: stop before it, so a later pass judges it once it can be read, and a fault
    /// that clears leaves no verdict behind. A public key not published yet is waited for
    /// until `key_grace` after the digest's end.
    Hold {
        now: DateTime<Utc>,
        key_grace: Duration,
    },
}

/// Where and why a walk stopped before the end of its digests.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The digest (or the log file a digest lists) that could not be judged.
    pub object: String,
    /// The digest the walk stopped at.
    pub digest: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ChainReport {
    pub items: Vec<Item>,
    /// The newest valid digest.
    pub anchor: Option<Anchor>,
    /// The newest digest judged, whatever its verdict: a later walk resumes after it.
    pub last: Option<Anchor>,
    /// Log keys listed by the valid digests.
    pub listed_logs: BTreeSet<String>,
    /// Delivery interval the valid digests covered: (first start, last end).
    pub covered: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Set when the walk stopped before a digest it could not judge yet (`Unjudged::Hold`).
    pub held: Option<Held>,
}

/// The digest before the one being judged.
struct Previous {
    key: String,
    end: DateTime<Utc>,
    /// Actual hash and signature when the object was read, whatever its verdict.
    actual: Option<(String, Option<String>)>,
}

impl Previous {
    fn of(a: &Anchor) -> Previous {
        Previous {
            key: a.key.clone(),
            end: a.end,
            actual: a.sha256.clone().map(|h| (h, a.signature.clone())),
        }
    }

    fn anchor(&self) -> Anchor {
        Anchor {
            key: self.key.clone(),
            end: self.end,
            sha256: self.actual.as_ref().map(|(h, _)| h.clone()),
            signature: self.actual.as_ref().and_then(|(_, s)| s.clone()),
        }
    }
}

/// Where a walk resumes: after the last digest judged, knowing the last valid one (so an
/// object that is no digest, planted between two digests, does not break their link: it is
/// reported on its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct Resume<'a> {
    pub last: Option<&'a Anchor>,
    pub valid: Option<&'a Anchor>,
}

/// A walk after `anchor`, a digest judged valid.
impl<'a> From<Option<&'a Anchor>> for Resume<'a> {
    fn from(anchor: Option<&'a Anchor>) -> Resume<'a> {
        Resume {
            last: anchor,
            valid: anchor,
        }
    }
}

/// Judges `listed` (ascending keys of one chain) after where the last walk stopped.
pub fn judge<'a>(
    scope: &ChainScope,
    resume: impl Into<Resume<'a>>,
    listed: &[ListedDigest],
    keys: &PublicKeys,
    logs: &HashMap<String, LogState>,
    transitions: &[Transition],
    unjudged: Unjudged,
) -> ChainReport {
    let resume = resume.into();
    let mut report = ChainReport::default();
    let mut prev: Option<Previous> = resume.last.map(Previous::of);
    let mut valid: Option<Previous> = resume.valid.map(Previous::of);
    let interval = typical_interval(listed);
    let hold = |reason: String, object: &str, digest: &str| Held {
        object: object.to_string(),
        digest: digest.to_string(),
        reason,
    };
    for d in listed {
        let key_end = parse_digest_key(&d.key).map(|k| k.end);
        let item = |kind: Class, detail: String| Item {
            class: kind,
            object: d.key.clone(),
            time: key_end,
            until: None,
            detail,
        };
        let unread = |prev: &mut Option<Previous>| {
            if let Some(end) = key_end {
                *prev = Some(Previous {
                    key: d.key.clone(),
                    end,
                    actual: None,
                });
            }
        };
        let (bytes, signature) = match &d.read {
            DigestRead::Object {
                bytes, signature, ..
            } => (bytes, signature),
            DigestRead::NotFound => {
                report
                    .items
                    .push(item(Kind::MissingDigest.into(), "not found".into()));
                unread(&mut prev);
                continue;
            }
            DigestRead::Unreadable(why) => {
                if let Unjudged::Hold { .. } = unjudged {
                    report.held = Some(hold(why.clone(), &d.key, &d.key));
                    break;
                }
                report
                    .items
                    .push(item(Kind::Unverifiable.into(), why.clone()));
                unread(&mut prev);
                continue;
            }
            DigestRead::Oversized(why) => {
                report.items.push(item(Kind::Oversized.into(), why.clone()));
                unread(&mut prev);
                continue;
            }
            DigestRead::Malformed {
                why,
                sha256,
                signature,
            } => {
                report
                    .items
                    .push(item(Kind::InvalidFormat.into(), why.clone()));
                prev = key_end.map(|end| Previous {
                    key: d.key.clone(),
                    end,
                    actual: Some((sha256.clone(), signature.clone())),
                });
                continue;
            }
        };
        let sha256 = sha256_hex(bytes);
        let doc = match DigestDoc::parse(bytes) {
            Ok(doc) => doc,
            Err(e) => {
                report.items.push(item(Kind::InvalidFormat.into(), e));
                prev = key_end.map(|end| Previous {
                    key: d.key.clone(),
                    end,
                    actual: Some((sha256, signature.clone())),
                });
                continue;
            }
        };
        let end = doc.end().or(key_end);
        let this = |actual| Previous {
            key: d.key.clone(),
            end: end.unwrap_or_default(),
            actual: Some(actual),
        };
        if let Err((kind, why)) = check_digest(scope, d, &doc, &sha256, signature.as_deref(), keys)
        {
            // A key published after its first digest was read: wait for it a while.
            if let Unjudged::Hold { now, key_grace } = unjudged
                && keys.get(&doc.digest_public_key_fingerprint).is_none()
                && end.is_some_and(|e| now < e + key_grace)
            {
                report.held = Some(hold(why, &d.key, &d.key));
                break;
            }
            report.items.push(item(kind.into(), why));
            prev = Some(this((sha256, signature.clone())));
            continue;
        }
        // A log file it lists could not be read yet: judge the whole digest later.
        if let Unjudged::Hold { .. } = unjudged
            && let Some((object, why)) = doc
                .log_files
                .iter()
                .filter(|e| e.s3_bucket == scope.bucket)
                .find_map(|e| match logs.get(&e.s3_object) {
                    Some(LogState::Unreadable(why)) => Some((e.s3_object.as_str(), why)),
                    _ => None,
                })
        {
            report.held = Some(hold(why.clone(), object, &d.key));
            break;
        }
        // The digest itself is authentic; now its place in the chain.
        match doc.previous() {
            Err(e) => report.items.push(item(Kind::InvalidFormat.into(), e)),
            Ok(None) => {
                if let Some(p) = &prev {
                    let start = doc.start().unwrap_or(p.end);
                    let first_end = end.unwrap_or(start);
                    report
                        .items
                        .push(restart(&d.key, p, start, first_end, transitions));
                }
            }
            Ok(Some(link)) => {
                // Objects between the last valid digest and this one that are no digest at
                // all (each already reported): the link skips them.
                let before = match (&prev, &valid) {
                    (Some(p), Some(v)) if link.key != p.key && link.key == v.key => Some(v),
                    (p, _) => p.as_ref(),
                };
                if let Some(p) = before {
                    report
                        .items
                        .extend(check_link(&d.key, end, &link, p, interval));
                }
            }
        }
        report.items.push(item(Class::ValidDigest, "valid".into()));
        for entry in &doc.log_files {
            report.listed_logs.insert(entry.s3_object.clone());
            report
                .items
                .push(judge_log(entry, &scope.bucket, logs, end));
        }
        if let (Some(start), Some(end)) = (doc.start(), end) {
            let first = report.covered.map_or(start, |(s, _)| s.min(start));
            report.covered = Some((first, end));
        }
        valid = Some(this((sha256.clone(), signature.clone())));
        let judged = this((sha256, signature.clone()));
        report.anchor = Some(judged.anchor());
        prev = Some(judged);
    }
    report.last = prev.map(|p| p.anchor());
    report
}

/// Location, account, key, signature.
pub(super) fn check_digest(
    scope: &ChainScope,
    d: &ListedDigest,
    doc: &DigestDoc,
    sha256: &str,
    signature: Option<&str>,
    keys: &PublicKeys,
) -> Result<(), (Kind, String)> {
    if doc.digest_s3_bucket != scope.bucket || doc.digest_s3_object != d.key {
        return Err((
            Kind::InvalidFormat,
            format!(
                "has been moved from its original location s3://{}/{}",
                doc.digest_s3_bucket, doc.digest_s3_object
            ),
        ));
    }
    if doc.aws_account_id != scope.account {
        return Err((
            Kind::InvalidFormat,
            format!(
                "names account {} but lies in the folder of {}",
                doc.aws_account_id, scope.account
            ),
        ));
    }
    if doc.digest_signature_algorithm != "SHA256withRSA" {
        return Err((
            Kind::InvalidSignature,
            format!(
                "signature algorithm {} is not SHA256withRSA",
                doc.digest_signature_algorithm
            ),
        ));
    }
    let Some(signature) = signature else {
        return Err((
            Kind::InvalidSignature,
            "no signature in the object's metadata".into(),
        ));
    };
    let Some(key) = keys.get(&doc.digest_public_key_fingerprint) else {
        return Err((
            Kind::InvalidSignature,
            format!(
                "public key not found in region {} for fingerprint {}",
                scope.region, doc.digest_public_key_fingerprint
            ),
        ));
    };
    let Some(raw) = unhex(signature) else {
        return Err((Kind::InvalidSignature, "signature is not hex".into()));
    };
    if !key.verifies(data_to_sign(doc, sha256).as_bytes(), &raw) {
        return Err((
            Kind::InvalidSignature,
            "signature verification failed".into(),
        ));
    }
    Ok(())
}

/// The link of an authentic digest against the digest before it in the listing.
fn check_link(
    key: &str,
    end: Option<DateTime<Utc>>,
    link: &super::digest::PreviousLink,
    p: &Previous,
    interval: Duration,
) -> Vec<Item> {
    let at = |class: Class, object: &str, time, until, detail: String| Item {
        class,
        object: object.to_string(),
        time,
        until,
        detail,
    };
    if link.key == p.key {
        return match &p.actual {
            Some((sha, sig)) => {
                let hash_ok = same_hex(sha, &link.sha256);
                let sig_ok = sig.as_deref().is_some_and(|s| same_hex(s, &link.signature));
                if hash_ok && sig_ok {
                    vec![]
                } else {
                    let what = match (hash_ok, sig_ok) {
                        (false, false) => "hash and signature",
                        (false, true) => "hash",
                        _ => "signature",
                    };
                    vec![at(
                        Kind::BrokenLink.into(),
                        key,
                        end,
                        None,
                        format!(
                            "the previous digest's {what} differ from what this digest links to ({})",
                            p.key
                        ),
                    )]
                }
            }
            // Already reported as missing or unreadable.
            None => vec![],
        };
    }
    let linked_end = parse_digest_key(&link.key).map(|k| k.end);
    if link.key.as_str() < p.key.as_str() {
        return vec![at(
            Kind::BrokenLink.into(),
            key,
            end,
            None,
            format!(
                "links to {}, older than the digest before it ({}), which no digest links to",
                link.key, p.key
            ),
        )];
    }
    // The link names a digest the listing does not have: deleted.
    let mut items = vec![at(
        Kind::MissingDigest.into(),
        &link.key,
        linked_end,
        None,
        format!("not found (named by the link of {key})"),
    )];
    // More may be gone before it: nothing links to them any more, but the cadence shows
    // the stretch from the last digest present to the missing one is too long for one.
    if let Some(linked_end) = linked_end {
        let span = linked_end - p.end;
        let n = (span.num_seconds() as f64 / interval.num_seconds().max(1) as f64).round() as i64;
        for k in 1..n.min(1000) {
            let estimated = p.end + interval * k as i32;
            items.push(at(
                Kind::MissingDigest.into(),
                &key_at(&p.key, estimated),
                Some(estimated),
                None,
                format!(
                    "not found: no digest between {} and {} ({}s apart, digests come every {}s); the key is estimated",
                    p.key, link.key, span.num_seconds(), interval.num_seconds()
                ),
            ));
        }
    }
    items
}

/// A chain start after an earlier digest: explained by the trail's own transitions, or not.
fn restart(
    key: &str,
    p: &Previous,
    start: DateTime<Utc>,
    first_end: DateTime<Utc>,
    transitions: &[Transition],
) -> Item {
    // CloudTrail writes a final digest after StopLogging and starts anew after StartLogging
    // (or when validation is turned back on): the restart falls between the old chain's
    // last digest and the end of the new chain's first.
    let from = p.end - Duration::hours(1);
    let to = first_end + Duration::minutes(5);
    let restarts = ["StartLogging", "UpdateTrail", "CreateTrail"];
    let seen: Vec<String> = transitions
        .iter()
        .filter(|t| t.time >= from && t.time <= to)
        .map(|t| format!("{} at {}", t.event_name, t.time.to_rfc3339()))
        .collect();
    let explained = transitions
        .iter()
        .any(|t| t.time >= from && t.time <= to && restarts.contains(&t.event_name.as_str()));
    let (class, detail) = if explained {
        (
            Class::ExplainedRestart,
            format!("chain restarted: {}", seen.join(", ")),
        )
    } else {
        (
            Kind::UnexplainedRestart.into(),
            "chain restarted with no StopLogging/StartLogging or validation change in the gap"
                .to_string(),
        )
    };
    Item {
        class,
        object: key.to_string(),
        time: Some(p.end),
        until: Some(start),
        detail,
    }
}

pub(super) fn judge_log(
    entry: &super::digest::LogEntry,
    bucket: &str,
    logs: &HashMap<String, LogState>,
    digest_end: Option<DateTime<Utc>>,
) -> Item {
    let time = super::layout::parse_log_key(&entry.s3_object)
        .map(|k| k.delivered)
        .or(digest_end);
    let (class, detail) = if entry.s3_bucket != bucket {
        // Followed only within the trail's bucket: another bucket is another scope.
        (
            Kind::Unverifiable.into(),
            format!("listed in bucket {}, not the trail's", entry.s3_bucket),
        )
    } else {
        match logs.get(&entry.s3_object) {
            Some(LogState::Hash(h)) if same_hex(h, &entry.hash_value) => {
                (Class::ValidLog, "valid".to_string())
            }
            Some(LogState::Hash(_)) => (
                Kind::ModifiedLog.into(),
                "hash value doesn't match".to_string(),
            ),
            Some(LogState::TrailingData) => (
                Kind::ModifiedLog.into(),
                "unexpected data after end of compressed stream".to_string(),
            ),
            Some(LogState::NotFound) => (Kind::MissingLog.into(), "not found".to_string()),
            Some(LogState::Unreadable(why)) => (Kind::Unverifiable.into(), why.clone()),
            Some(LogState::Oversized(why)) => (Kind::Oversized.into(), why.clone()),
            None => (Kind::Unverifiable.into(), "not read".to_string()),
        }
    };
    Item {
        class,
        object: entry.s3_object.clone(),
        time,
        until: None,
        detail,
    }
}

/// Log files in the bucket that no valid digest lists, though delivered well inside the
/// interval the digests cover (a minute of slack: keys carry the delivery minute). `listed`
/// says whether any digest of the chain lists a key: this walk's, and the earlier ones'.
pub fn unlisted_logs<'a>(
    logs: impl IntoIterator<Item = (&'a str, DateTime<Utc>)>,
    listed: impl Fn(&str) -> bool,
    covered: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<Item> {
    let (from, to) = covered;
    logs.into_iter()
        .filter(|(key, delivered)| {
            *delivered >= from - Duration::minutes(1)
                && *delivered + Duration::minutes(1) <= to
                && !listed(key)
        })
        .map(|(key, delivered)| Item {
            class: Kind::UnlistedLog.into(),
            object: key.to_string(),
            time: Some(delivered),
            until: None,
            detail: "in the bucket but in no digest".into(),
        })
        .collect()
}

/// The usual interval a digest covers (median of end − start of the digests read); an
/// hour, CloudTrail's cadence, when none tell.
fn typical_interval(listed: &[ListedDigest]) -> Duration {
    let mut spans: Vec<i64> = listed
        .iter()
        .filter_map(|d| match &d.read {
            DigestRead::Object { bytes, .. } => DigestDoc::parse(bytes).ok(),
            _ => None,
        })
        .filter_map(|doc| Some((doc.end()? - doc.start()?).num_seconds()))
        .filter(|s| *s > 0)
        .collect();
    if spans.is_empty() {
        return Duration::hours(1);
    }
    spans.sort_unstable();
    Duration::seconds(spans[spans.len() / 2])
}

/// `key` with its end timestamp replaced: where a digest ending at `end` would be.
fn key_at(key: &str, end: DateTime<Utc>) -> String {
    let Some(name_start) = key.rfind('/') else {
        return key.to_string();
    };
    let name = &key[name_start + 1..];
    let Some(stem) = name.strip_suffix(".json.gz") else {
        return key.to_string();
    };
    if stem.len() < 16 {
        return key.to_string();
    }
    // The folder is the date of the end time: …/{region}/YYYY/MM/DD/{name}.
    let folder = &key[..name_start];
    let region_folder = folder
        .get(..folder.len().saturating_sub(10))
        .unwrap_or(folder);
    format!(
        "{region_folder}{}/{}{}.json.gz",
        end.format("%Y/%m/%d"),
        &stem[..stem.len() - 16],
        end.format("%Y%m%dT%H%M%SZ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::forge::{
        Forge, chain_logs as logs, digest_end as end, digest_key as key, forge, hourly_chain, scope,
    };

    fn chain(f: &Forge, n: i64, restart_at: Option<i64>) -> Vec<ListedDigest> {
        hourly_chain(f, n, restart_at)
    }

    fn classes(r: &ChainReport) -> Vec<(&str, &str)> {
        r.items
            .iter()
            .map(|i| (i.class.as_str(), i.object.as_str()))
            .collect()
    }

    #[test]
    fn a_whole_chain_is_valid_and_resumes_from_its_anchor() {
        let f = forge();
        let c = chain(&f, 4, None);
        let r = judge(
            &scope(),
            None,
            &c[..2],
            &f.keys,
            &logs(4),
            &[],
            Unjudged::Report,
        );
        assert!(r.items.iter().all(|i| !i.failed()), "{:?}", classes(&r));
        // The next run starts after the anchor and checks the link to it.
        let later = judge(
            &scope(),
            r.anchor.as_ref(),
            &c[2..],
            &f.keys,
            &logs(4),
            &[],
            Unjudged::Report,
        );
        assert!(
            later.items.iter().all(|i| !i.failed()),
            "{:?}",
            classes(&later)
        );
        assert_eq!(later.anchor.unwrap().key, key(3));
        // An anchor that is not what the next digest links to: a broken link.
        let mut wrong = r.anchor.clone().unwrap();
        wrong.sha256 = Some("00".repeat(32));
        let broken = judge(
            &scope(),
            Some(&wrong),
            &c[2..],
            &f.keys,
            &logs(4),
            &[],
            Unjudged::Report,
        );
        assert_eq!(classes(&broken)[0], ("broken_link", key(2).as_str()));
    }

    #[test]
    fn missing_digests_named_by_links_and_by_cadence() {
        let f = forge();
        let mut c = chain(&f, 6, None);
        c.remove(4);
        c.remove(3);
        let r = judge(&scope(), None, &c, &f.keys, &logs(6), &[], Unjudged::Report);
        let missing: Vec<_> = r
            .items
            .iter()
            .filter(|i| i.class == Class::Failure(Kind::MissingDigest))
            .collect();
        assert_eq!(missing.len(), 2, "{:?}", classes(&r));
        assert_eq!(missing[0].object, key(4));
        // The one nothing links to any more: its key estimated from the cadence.
        assert_eq!(missing[1].object, key(3));
        assert_eq!(missing[1].time, Some(end(3)));
    }

    #[test]
    fn restarts_explained_by_start_logging_or_not() {
        let f = forge();
        let c = chain(&f, 3, Some(2));
        let r = judge(&scope(), None, &c, &f.keys, &logs(3), &[], Unjudged::Report);
        assert!(classes(&r).contains(&("unexplained_restart", key(2).as_str())));
        let start = Transition {
            time: end(1) + Duration::minutes(20),
            event_name: "StartLogging".into(),
        };
        let r = judge(
            &scope(),
            None,
            &c,
            &f.keys,
            &logs(3),
            &[start],
            Unjudged::Report,
        );
        let restart = r
            .items
            .iter()
            .find(|i| i.class == Class::ExplainedRestart)
            .unwrap();
        assert!(
            restart.detail.contains("StartLogging"),
            "{}",
            restart.detail
        );
        assert_eq!(restart.time, Some(end(1)));
    }

    #[test]
    fn log_files_modified_missing_unreadable_and_unlisted() {
        let f = forge();
        let c = chain(&f, 3, None);
        let mut l = logs(3);
        l.insert("log0".into(), LogState::Hash("ff".repeat(32)));
        l.insert("log1".into(), LogState::NotFound);
        l.insert("log2".into(), LogState::Unreadable("AccessDenied".into()));
        let r = judge(&scope(), None, &c, &f.keys, &l, &[], Unjudged::Report);
        let got = classes(&r);
        assert!(got.contains(&("modified_log", "log0")), "{got:?}");
        assert!(got.contains(&("missing_log", "log1")));
        assert!(got.contains(&("unverifiable", "log2")));
        let covered = r.covered.unwrap();
        let stray = [("stray", end(1)), ("later", end(3))];
        let unlisted = unlisted_logs(
            stray.iter().map(|(k, t)| (*k, *t)),
            |k| r.listed_logs.contains(k),
            covered,
        );
        assert_eq!(
            unlisted.len(),
            1,
            "after the last digest it is only pending"
        );
        assert_eq!(unlisted[0].object, "stray");
    }

    #[test]
    fn tampered_moved_and_unknown_key_digests() {
        let f = forge();
        let mut c = chain(&f, 3, None);
        if let DigestRead::Object { bytes, .. } = &mut c[1].read {
            *bytes = String::from_utf8(bytes.clone())
                .unwrap()
                .replace("log1", "logX")
                .into_bytes();
        }
        let r = judge(&scope(), None, &c, &f.keys, &logs(3), &[], Unjudged::Report);
        let got = classes(&r);
        assert!(
            got.contains(&("invalid_signature", key(1).as_str())),
            "{got:?}"
        );
        assert!(got.contains(&("broken_link", key(2).as_str())), "{got:?}");
        let other = forge();
        let r = judge(
            &scope(),
            None,
            &chain(&f, 1, None),
            &other.keys,
            &logs(1),
            &[],
            Unjudged::Report,
        );
        assert!(
            r.items[0].detail.contains("public key not found"),
            "{:?}",
            r.items[0]
        );
        let mut moved = chain(&f, 1, None);
        moved[0].key = key(7);
        let r = judge(
            &scope(),
            None,
            &moved,
            &f.keys,
            &logs(1),
            &[],
            Unjudged::Report,
        );
        assert!(r.items[0].detail.contains("moved"), "{:?}", r.items[0]);
    }

    fn hold_at(now: DateTime<Utc>) -> Unjudged {
        Unjudged::Hold {
            now,
            key_grace: Duration::hours(2),
        }
    }

    /// The daemon's walk over a chain split into two passes, where the first pass sees a
    /// fault that the second does not: what the second pass reports, and what the first held.
    /// Every case ends with no failure at all: a fault that clears leaves no verdict behind.
    #[test]
    fn a_fault_that_clears_leaves_no_verdict_behind() {
        let f = forge();
        let c = chain(&f, 4, None);
        // Within the key's grace of the first digest's end.
        let now = end(1);
        type Fault = fn(&mut Vec<ListedDigest>, &mut HashMap<String, LogState>, &mut PublicKeys);
        let cases: [(&str, Fault, &str); 3] = [
            (
                "digest 1 unreadable once",
                |c, _, _| c[1].read = DigestRead::Unreadable("GetObject: InternalError".into()),
                "GetObject: InternalError",
            ),
            (
                "a log file digest 1 lists unreadable once",
                |_, l, _| {
                    l.insert("log1".into(), LogState::Unreadable("AccessDenied".into()));
                },
                "AccessDenied",
            ),
            (
                "the public key not published yet",
                |_, _, k| *k = PublicKeys::default(),
                "public key not found",
            ),
        ];
        for (name, fault, reason) in cases {
            let (mut first, mut first_logs, mut first_keys) = (c.clone(), logs(4), f.keys.clone());
            fault(&mut first, &mut first_logs, &mut first_keys);
            let r = judge(
                &scope(),
                None,
                &first[..3],
                &first_keys,
                &first_logs,
                &[],
                hold_at(now),
            );
            assert!(
                r.items.iter().all(|i| !i.failed()),
                "{name}: {:?}",
                classes(&r)
            );
            let held = r.held.clone().unwrap_or_else(|| panic!("{name}: not held"));
            assert!(held.reason.contains(reason), "{name}: {held:?}");
            // The walk resumes where it stopped, with the fault gone.
            let from = r.last.as_ref();
            let resumed = first[..3]
                .iter()
                .position(|d| d.key == held.digest)
                .unwrap();
            let later = judge(
                &scope(),
                from,
                &c[resumed..],
                &f.keys,
                &logs(4),
                &[],
                hold_at(now),
            );
            assert!(
                later.items.iter().all(|i| !i.failed()),
                "{name}: {:?}",
                classes(&later)
            );
            assert!(later.held.is_none());
            assert_eq!(later.last.unwrap().key, key(3), "{name}");
        }
    }

    /// What a fault that does not clear becomes, by how the walk treats what it cannot judge.
    #[test]
    fn what_cannot_be_judged_is_held_or_reported() {
        let f = forge();
        let mut c = chain(&f, 3, None);
        c[1].read = DigestRead::Unreadable("AccessDenied".into());
        // One-shot validation reports it and goes on, as the CLI does.
        let r = judge(&scope(), None, &c, &f.keys, &logs(3), &[], Unjudged::Report);
        assert_eq!(classes(&r)[2], ("unverifiable", key(1).as_str()));
        assert_eq!(r.last.unwrap().key, key(2));
        // The daemon holds the chain at it, however long it lasts: no verdict, no anchor past it.
        let r = judge(&scope(), None, &c, &f.keys, &logs(3), &[], hold_at(end(30)));
        assert_eq!(r.held.unwrap().object, key(1));
        assert_eq!(r.last.unwrap().key, key(0));
        // A key still unknown long after the digest: a forged or foreign signature.
        let r = judge(
            &scope(),
            None,
            &chain(&f, 1, None),
            &forge().keys,
            &logs(1),
            &[],
            hold_at(end(3)),
        );
        assert!(r.held.is_none());
        assert_eq!(classes(&r)[0].0, "invalid_signature");
    }

    /// A digest judged invalid in one pass is the previous digest of the next pass: its
    /// successor's link is checked against it (broken), never reported as a missing digest.
    #[test]
    fn the_next_pass_links_to_the_last_digest_judged_not_the_last_valid_one() {
        let f = forge();
        let mut c = chain(&f, 3, None);
        if let DigestRead::Object { bytes, .. } = &mut c[1].read {
            *bytes = String::from_utf8(bytes.clone())
                .unwrap()
                .replace("log1", "logX")
                .into_bytes();
        }
        let first = judge(
            &scope(),
            None,
            &c[..2],
            &f.keys,
            &logs(3),
            &[],
            hold_at(end(3)),
        );
        assert_eq!(first.anchor.as_ref().unwrap().key, key(0));
        assert_eq!(first.last.as_ref().unwrap().key, key(1));
        let next = judge(
            &scope(),
            first.last.as_ref(),
            &c[2..],
            &f.keys,
            &logs(3),
            &[],
            hold_at(end(3)),
        );
        assert_eq!(classes(&next)[0], ("broken_link", key(2).as_str()));
        assert!(!classes(&next).iter().any(|(c, _)| *c == "missing_digest"));
    }

    #[test]
    fn an_oversized_digest_is_a_verdict_and_the_chain_goes_on() {
        let f = forge();
        let mut c = chain(&f, 3, None);
        c[1].read = DigestRead::Oversized("larger than 16 MiB uncompressed".into());
        let mut l = logs(3);
        l.insert(
            "log2".into(),
            LogState::Oversized("larger than 64 MiB".into()),
        );
        let r = judge(&scope(), None, &c, &f.keys, &l, &[], hold_at(end(3)));
        let got = classes(&r);
        assert!(got.contains(&("oversized", key(1).as_str())), "{got:?}");
        assert!(got.contains(&("oversized", "log2")), "{got:?}");
        assert!(got.contains(&("valid_digest", key(2).as_str())), "{got:?}");
        assert!(
            !got.iter()
                .any(|(c, _)| *c == "broken_link" || *c == "missing_digest")
        );
        assert_eq!(r.last.unwrap().key, key(2));
    }

    /// An object that is no digest, planted between two digests, is reported on its own and
    /// does not break their link, in the same walk or across walks; a digest replaced by one
    /// breaks its successor's link, as it should.
    #[test]
    fn a_planted_object_is_reported_alone_and_a_replaced_digest_breaks_the_link() {
        let f = forge();
        let c = chain(&f, 3, None);
        let planted = ListedDigest {
            // Between digests 0 and 1.
            key: key(0)
                .replace(".json.gz", "x.json.gz")
                .replace("T010005Z", "T013005Z"),
            read: DigestRead::Oversized("inflates past 4 MiB".into()),
        };
        let mut listed = vec![c[0].clone(), planted.clone(), c[1].clone(), c[2].clone()];
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        let r = judge(
            &scope(),
            None,
            &listed,
            &f.keys,
            &logs(3),
            &[],
            Unjudged::Report,
        );
        assert_eq!(
            r.items
                .iter()
                .filter(|i| i.failed())
                .map(|i| (i.class.as_str(), i.object.as_str()))
                .collect::<Vec<_>>(),
            [("oversized", planted.key.as_str())]
        );
        // Across walks: the first stops at the planted object.
        let first = judge(
            &scope(),
            None,
            &listed[..2],
            &f.keys,
            &logs(3),
            &[],
            Unjudged::Report,
        );
        let resume = Resume {
            last: first.last.as_ref(),
            valid: first.anchor.as_ref(),
        };
        let next = judge(
            &scope(),
            resume,
            &listed[2..],
            &f.keys,
            &logs(3),
            &[],
            Unjudged::Report,
        );
        assert!(
            next.items.iter().all(|i| !i.failed()),
            "{:?}",
            classes(&next)
        );
        // Replaced: digest 1's key holds garbage; digest 2 links to what was there.
        let mut replaced = c.clone();
        replaced[1].read = DigestRead::Malformed {
            why: "not valid gzip".into(),
            sha256: "00".repeat(32),
            signature: None,
        };
        let r = judge(
            &scope(),
            None,
            &replaced,
            &f.keys,
            &logs(3),
            &[],
            Unjudged::Report,
        );
        let got = classes(&r);
        assert!(
            got.contains(&("invalid_format", key(1).as_str())),
            "{got:?}"
        );
        assert!(got.contains(&("broken_link", key(2).as_str())), "{got:?}");
    }
}
