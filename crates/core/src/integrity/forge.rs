//! Digests signed with a key made for the test, as CloudTrail would sign them, and a chain of
//! them: for tests, property tests and fuzz targets (feature `forge`), never for the daemon.
#![allow(clippy::unwrap_used)] // test fixtures: a failure here is a failed test

use super::chain::{ChainScope, DigestRead, ListedDigest, LogState};
use super::digest::{DigestDoc, PublicKey, PublicKeys, data_to_sign, hex, sha256_hex};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::HashMap;

pub struct Forge {
    pub pair: RsaKeyPair,
    /// The public key, as ListPublicKeys would give it.
    pub keys: PublicKeys,
    pub fingerprint: String,
}

pub fn forge() -> Forge {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = pair.public_key().as_ref().to_vec();
    let fingerprint = hex(&<md5::Md5 as md5::Digest>::digest(&der));
    let mut keys = PublicKeys::default();
    keys.insert(PublicKey::new(&der, &fingerprint, None, None).unwrap());
    Forge {
        pair,
        keys,
        fingerprint,
    }
}

impl Forge {
    /// The digest document's bytes, their SHA-256 and the hex signature over its data to sign.
    pub fn sign(&self, doc: &serde_json::Value) -> (Vec<u8>, String, String) {
        let bytes = doc.to_string().into_bytes();
        let parsed = DigestDoc::parse(&bytes).unwrap();
        let sha = sha256_hex(&bytes);
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                data_to_sign(&parsed, &sha).as_bytes(),
                &mut sig,
            )
            .unwrap();
        (bytes, sha, hex(&sig))
    }
}

/// The end of the `i`th digest of [`hourly_chain`].
pub fn digest_end(i: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 5).unwrap() + Duration::hours(i)
}

/// The key of the `i`th digest of [`hourly_chain`].
pub fn digest_key(i: i64) -> String {
    format!(
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/11/24/123456789012_CloudTrail-Digest_us-east-1_my_trail_us-east-1_{}.json.gz",
        digest_end(i).format("%Y%m%dT%H%M%SZ")
    )
}

/// The chain's scope: bucket `b`, account 123456789012, us-east-1.
pub fn scope() -> ChainScope {
    ChainScope {
        bucket: "b".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
    }
}

/// A chain of `n` hourly digests in bucket `b`, each listing one log file `log{i}`;
/// `restart_at` starts a new chain there.
pub fn hourly_chain(f: &Forge, n: i64, restart_at: Option<i64>) -> Vec<ListedDigest> {
    let mut out = Vec::new();
    let mut prev: Option<(String, String, String)> = None;
    for i in 0..n {
        if Some(i) == restart_at {
            prev = None;
        }
        let doc = serde_json::json!({
            "awsAccountId": "123456789012",
            "digestStartTime": digest_end(i - 1).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "digestEndTime": digest_end(i).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "digestS3Bucket": "b", "digestS3Object": digest_key(i),
            "digestPublicKeyFingerprint": f.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "previousDigestS3Bucket": prev.as_ref().map(|_| "b"),
            "previousDigestS3Object": prev.as_ref().map(|p| &p.0),
            "previousDigestHashValue": prev.as_ref().map(|p| &p.1),
            "previousDigestHashAlgorithm": prev.as_ref().map(|_| "SHA-256"),
            "previousDigestSignature": prev.as_ref().map(|p| &p.2),
            "logFiles": [{"s3Bucket": "b", "s3Object": format!("log{i}"),
                "hashValue": sha256_hex(format!("log{i}").as_bytes()), "hashAlgorithm": "SHA-256"}],
        });
        let (bytes, sha, sig) = f.sign(&doc);
        prev = Some((digest_key(i), sha, sig.clone()));
        out.push(ListedDigest {
            key: digest_key(i),
            read: DigestRead::Object {
                bytes,
                signature: Some(sig),
                backfill_generated: None,
            },
        });
    }
    out
}

/// The log files of [`hourly_chain`], as read: each matches its digest.
pub fn chain_logs(n: i64) -> HashMap<String, LogState> {
    (0..n)
        .map(|i| {
            (
                format!("log{i}"),
                LogState::Hash(sha256_hex(format!("log{i}").as_bytes())),
            )
        })
        .collect()
}
