//! Backfill digests (`…_backfill.json.gz`): CloudTrail writes one later when delayed
//! processing left log files out of a digest. Whether backfill digests link to one another is
//! not documented, so each is judged on its own (metadata, location, account, signature, and
//! the log files it lists), and none extends or repairs the standard chain (spec §7.6).

use super::chain::{
    ChainReport, ChainScope, DigestRead, ListedDigest, LogState, check_digest, judge_log,
};
use super::digest::{DigestDoc, PublicKeys, sha256_hex};
use super::layout::parse_digest_key;
use super::verdict::{Class, Item, Kind};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Judges each backfill digest of `listed`. The report's `listed_logs` are the log files the
/// valid ones list; it has no anchor and covers no interval.
pub fn judge(
    scope: &ChainScope,
    listed: &[ListedDigest],
    keys: &PublicKeys,
    logs: &HashMap<String, LogState>,
) -> ChainReport {
    let mut report = ChainReport::default();
    for d in listed {
        let key_end = parse_digest_key(&d.key).map(|k| k.end);
        let item = |class: Class, detail: String| Item {
            class,
            object: d.key.clone(),
            time: key_end,
            until: None,
            detail,
        };
        let (bytes, signature, generated) = match &d.read {
            DigestRead::Object {
                bytes,
                signature,
                backfill_generated,
            } => (bytes, signature, backfill_generated),
            DigestRead::NotFound => {
                report
                    .items
                    .push(item(Kind::MissingDigest.into(), "not found".into()));
                continue;
            }
            DigestRead::Unreadable(why) => {
                report
                    .items
                    .push(item(Kind::Unverifiable.into(), why.clone()));
                continue;
            }
            DigestRead::Oversized(why) => {
                report.items.push(item(Kind::Oversized.into(), why.clone()));
                continue;
            }
            DigestRead::Malformed { why, .. } => {
                report
                    .items
                    .push(item(Kind::InvalidFormat.into(), why.clone()));
                continue;
            }
        };
        let Some(generated) = generated else {
            report.items.push(item(
                Kind::InvalidFormat.into(),
                "backfill digest without backfill-generation-timestamp in its metadata".into(),
            ));
            continue;
        };
        let doc = match DigestDoc::parse(bytes) {
            Ok(doc) => doc,
            Err(e) => {
                report.items.push(item(Kind::InvalidFormat.into(), e));
                continue;
            }
        };
        let sha256 = sha256_hex(bytes);
        if let Err((kind, why)) = check_digest(scope, d, &doc, &sha256, signature.as_deref(), keys)
        {
            report.items.push(item(kind.into(), why));
            continue;
        }
        report.items.push(item(
            Class::ValidDigest,
            format!("valid (backfill digest generated {generated})"),
        ));
        let end = doc.end().or(key_end);
        for entry in &doc.log_files {
            report.listed_logs.insert(entry.s3_object.clone());
            report
                .items
                .push(judge_log(entry, &scope.bucket, logs, end));
        }
    }
    report
}

/// When the backfill digests of `listed` were generated, from their metadata: their keys are
/// looked up around then, not around their end time. Unparseable times are left out (their
/// digest then fails on its key, as with the CLI).
pub fn generated(listed: &[ListedDigest]) -> Vec<DateTime<Utc>> {
    listed
        .iter()
        .filter_map(|d| match &d.read {
            DigestRead::Object {
                backfill_generated: Some(g),
                ..
            } => DateTime::parse_from_rfc3339(g).ok(),
            _ => None,
        })
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::forge::{Forge, forge};
    use serde_json::json;

    const KEY: &str = "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/11/24/123456789012_CloudTrail-Digest_us-east-1_my_trail_us-east-1_20261124T020005Z_backfill.json.gz";

    fn scope() -> ChainScope {
        ChainScope {
            bucket: "b".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    /// A backfill digest listing `late`, signed by `f`.
    fn backfill(f: &Forge, late: &str, generated: Option<&str>) -> ListedDigest {
        let doc = json!({
            "awsAccountId": "123456789012",
            "digestStartTime": "2026-11-24T01:00:05Z",
            "digestEndTime": "2026-11-24T02:00:05Z",
            "digestS3Bucket": "b", "digestS3Object": KEY,
            "digestPublicKeyFingerprint": f.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "previousDigestS3Bucket": null, "previousDigestS3Object": null,
            "previousDigestHashValue": null, "previousDigestHashAlgorithm": null,
            "previousDigestSignature": null,
            "logFiles": [{"s3Bucket": "b", "s3Object": late, "hashValue": sha256_hex(late.as_bytes()), "hashAlgorithm": "SHA-256"}],
        });
        let (bytes, _, signature) = f.sign(&doc);
        ListedDigest {
            key: KEY.into(),
            read: DigestRead::Object {
                bytes,
                signature: Some(signature),
                backfill_generated: generated.map(str::to_string),
            },
        }
    }

    fn classes(r: &ChainReport) -> Vec<(&str, &str)> {
        r.items
            .iter()
            .map(|i| (i.class.as_str(), i.object.as_str()))
            .collect()
    }

    #[test]
    fn a_valid_backfill_digest_lists_its_late_log_file_and_touches_no_chain() {
        let f = forge();
        let logs = HashMap::from([("late".to_string(), LogState::Hash(sha256_hex(b"late")))]);
        let listed = [backfill(&f, "late", Some("2026-11-24T09:12:00Z"))];
        let r = judge(&scope(), &listed, &f.keys, &logs);
        assert_eq!(
            classes(&r),
            [("valid_digest", KEY), ("valid_log", "late")],
            "{:?}",
            r.items
        );
        assert!(r.listed_logs.contains("late"));
        assert!(r.anchor.is_none() && r.covered.is_none());
        assert_eq!(
            generated(&listed),
            [DateTime::parse_from_rfc3339("2026-11-24T09:12:00Z").unwrap()]
        );

        let modified = HashMap::from([("late".to_string(), LogState::Hash(sha256_hex(b"x")))]);
        let r = judge(&scope(), &listed, &f.keys, &modified);
        assert_eq!(classes(&r)[1], ("modified_log", "late"));
    }

    #[test]
    fn tampered_unsigned_by_the_key_or_without_its_metadata_fails_and_lists_nothing() {
        let f = forge();
        let logs = HashMap::new();
        let mut tampered = backfill(&f, "late", Some("2026-11-24T09:12:00Z"));
        if let DigestRead::Object { bytes, .. } = &mut tampered.read {
            *bytes = String::from_utf8(bytes.clone())
                .unwrap()
                .replace("late", "lat3")
                .into_bytes();
        }
        let other = forge();
        let cases = [
            (tampered, &f.keys, "invalid_signature"),
            (
                backfill(&f, "late", Some("2026-11-24T09:12:00Z")),
                &other.keys,
                "invalid_signature",
            ),
            (backfill(&f, "late", None), &f.keys, "invalid_format"),
        ];
        for (digest, keys, class) in cases {
            let r = judge(&scope(), std::slice::from_ref(&digest), keys, &logs);
            assert_eq!(classes(&r), [(class, KEY)], "{:?}", r.items);
            assert!(r.listed_logs.is_empty());
        }
    }
}
