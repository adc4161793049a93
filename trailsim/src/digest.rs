//! Digest files, as CloudTrail writes them when log file validation is on: per trail and
//! region, one per interval, listing the log files delivered in it with the SHA-256 of their
//! uncompressed bytes, chained to the previous digest by its hash and signature, signed
//! SHA256withRSA (PKCS#1 v1.5) with trailsim's own RSA-2048 key, the signature in the
//! object's metadata. See ../shared/specs/cloudtrail-digest.md.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;

/// trailsim's signing key and what ListPublicKeys tells about it.
pub struct Signer {
    key: RsaKeyPair,
    /// PKCS#1 `RSAPublicKey`, DER: what ListPublicKeys serves.
    pub public_der: Vec<u8>,
    /// Lowercase hex MD5 of `public_der`.
    pub fingerprint: String,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
}

impl Signer {
    pub fn generate(now: DateTime<Utc>) -> Signer {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
        let public_der = key.public_key().as_ref().to_vec();
        let fingerprint = hex(&<md5::Md5 as md5::Digest>::digest(&public_der));
        Signer {
            key,
            fingerprint,
            public_der,
            // Wide enough for injected history and clock offsets.
            valid_from: now - chrono::Duration::days(400),
            valid_to: now + chrono::Duration::days(400),
        }
    }

    /// Lowercase hex of the SHA256withRSA signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing");
        hex(&signature)
    }

    /// One entry of a ListPublicKeys answer.
    pub fn list_entry(&self) -> Value {
        json!({
            "Value": base64::engine::general_purpose::STANDARD.encode(&self.public_der),
            "ValidityStartTime": self.valid_from.timestamp() as f64,
            "ValidityEndTime": self.valid_to.timestamp() as f64,
            "Fingerprint": self.fingerprint,
        })
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// A delivered log file, as a digest lists it.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub bucket: String,
    pub key: String,
    pub sha256: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
}

/// The digest before this one: what the next one links to.
#[derive(Debug, Clone)]
pub struct Previous {
    pub bucket: String,
    pub key: String,
    pub sha256: String,
    pub signature: String,
}

/// One chain: a trail in one delivery region (and, for an organization trail, one account).
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// `None` at a chain start (first digest, or after StopLogging/StartLogging).
    pub previous: Option<Previous>,
    /// When the current interval began (the previous digest's end, or the chain's start).
    pub start: Option<DateTime<Utc>>,
    pub files: Vec<LogFile>,
    /// End of the last digest written for this trail and region, across chain restarts:
    /// digest keys carry the end time to the second and must not collide.
    pub last_end: Option<DateTime<Utc>>,
    /// Set by a restart: the first `n` pending files belong to the old chain (its final
    /// digest), the rest to the new one.
    pub restart_at: Option<usize>,
    /// Files delivered late (`POST /_trailsim/deliver {"late": true}`): the next digest
    /// leaves them out, as CloudTrail's digest does when processing was delayed.
    pub late: Vec<LogFile>,
    /// Late files a digest left out, with that digest's interval: a backfill digest
    /// (`POST /_trailsim/digest {"backfill": true}`) lists them.
    pub left_out: Vec<LeftOut>,
}

/// Late log files and the interval of the digest that left them out.
#[derive(Debug, Clone)]
pub struct LeftOut {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub files: Vec<LogFile>,
}

/// Trail ARN, account, delivery region.
pub type ChainKey = (String, String, String);

#[derive(Default)]
pub struct Digests {
    pub chains: HashMap<ChainKey, Chain>,
    pub latest_delivery: HashMap<String, DateTime<Utc>>,
    /// Trails whose log file validation was turned off: turning it on starts new chains.
    pub validation_off: std::collections::HashSet<String>,
}

impl Digests {
    /// A delivered file, pending for the next digest; `late`: left out of it (delayed
    /// processing), for a backfill digest.
    pub fn add_file(
        &mut self,
        trail_arn: &str,
        account: &str,
        region: &str,
        file: LogFile,
        now: DateTime<Utc>,
        late: bool,
    ) {
        let key = (trail_arn.into(), account.into(), region.into());
        let chain = self.chains.entry(key).or_default();
        chain.start.get_or_insert(now);
        if late {
            chain.late.push(file);
        } else {
            chain.files.push(file);
        }
    }

    /// Logging restarted: files delivered so far go in the old chain's final digest, and
    /// the next digest after them starts a new chain.
    pub fn restart(&mut self, trail_arn: &str) {
        for ((arn, _, _), chain) in self.chains.iter_mut() {
            if arn == trail_arn && chain.restart_at.is_none() {
                chain.restart_at = Some(chain.files.len());
            }
        }
    }
}

/// `{P}AWSLogs/[{o-id}/]{acct}/CloudTrail-Digest/{region}/YYYY/MM/DD/{acct}_CloudTrail-Digest_{region}_{trail}_{home}_{YYYYMMDDTHHmmssZ}.json.gz`
pub fn digest_key(
    prefix: Option<&str>,
    org: Option<&str>,
    account: &str,
    region: &str,
    trail_name: &str,
    home_region: &str,
    end: DateTime<Utc>,
) -> String {
    let root = crate::delivery::account_root(prefix, org, account);
    format!(
        "{root}/CloudTrail-Digest/{region}/{}/{account}_CloudTrail-Digest_{region}_{trail_name}_{home_region}_{}.json.gz",
        end.format("%Y/%m/%d"),
        end.format("%Y%m%dT%H%M%SZ"),
    )
}

/// A backfill digest's key: the digest key of `end` with `_backfill` before `.json.gz`.
pub fn backfill_key(digest_key: &str) -> String {
    let stem = digest_key.strip_suffix(".json.gz").unwrap_or(digest_key);
    format!("{stem}_backfill.json.gz")
}

pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The uncompressed digest document.
pub struct DigestFile<'a> {
    pub account: &'a str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub bucket: &'a str,
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub previous: Option<&'a Previous>,
    pub files: &'a [LogFile],
}

impl DigestFile<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let times = |pick: fn(&LogFile) -> Option<&String>| -> Vec<&String> {
            self.files.iter().filter_map(pick).collect()
        };
        let newest = times(|f| f.newest_event_time.as_ref()).into_iter().max();
        let oldest = times(|f| f.oldest_event_time.as_ref()).into_iter().min();
        let p = self.previous;
        json!({
            "awsAccountId": self.account,
            "digestStartTime": utc(self.start),
            "digestEndTime": utc(self.end),
            "digestS3Bucket": self.bucket,
            "digestS3Object": self.key,
            "digestPublicKeyFingerprint": self.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": newest,
            "oldestEventTime": oldest,
            "previousDigestS3Bucket": p.map(|p| &p.bucket),
            "previousDigestS3Object": p.map(|p| &p.key),
            "previousDigestHashValue": p.map(|p| &p.sha256),
            "previousDigestHashAlgorithm": p.map(|_| "SHA-256"),
            "previousDigestSignature": p.map(|p| &p.signature),
            "logFiles": self.files.iter().map(|f| json!({
                "s3Bucket": f.bucket,
                "s3Object": f.key,
                "hashValue": f.sha256,
                "hashAlgorithm": "SHA-256",
                "newestEventTime": f.newest_event_time,
                "oldestEventTime": f.oldest_event_time,
            })).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes()
    }
}

/// `digestEndTime \n bucket/key \n sha256(uncompressed digest) \n previous signature | null`
pub fn data_to_sign(
    end: &str,
    bucket: &str,
    key: &str,
    sha256: &str,
    previous: Option<&str>,
) -> String {
    format!(
        "{end}\n{bucket}/{key}\n{sha256}\n{}",
        previous.unwrap_or("null")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use chrono::TimeZone;

    #[test]
    fn the_spec_test_vector() {
        // From the AWS CLI's unit tests (spec §5.1).
        assert_eq!(
            data_to_sign("a", "b", "c", &sha256_hex(b"abc"), None),
            "a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
    }

    #[test]
    fn signatures_verify_with_the_listed_key() {
        let signer = Signer::generate(Utc::now());
        assert_eq!(
            &signer.public_der[..4],
            &[0x30, 0x82, 0x01, 0x0a],
            "PKCS#1 RSAPublicKey"
        );
        assert_eq!(signer.fingerprint.len(), 32);
        let message = data_to_sign("2026-11-24T08:00:00Z", "b", "k", &sha256_hex(b"{}"), None);
        let signature = signer.sign(message.as_bytes());
        assert_eq!(signature.len(), 512);
        let bytes: Vec<u8> = (0..signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&signature[i..i + 2], 16).unwrap())
            .collect();
        let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &signer.public_der);
        assert!(key.verify(message.as_bytes(), &bytes).is_ok());
        assert!(key.verify(b"something else", &bytes).is_err());
    }

    #[test]
    fn keys_and_starting_digests() {
        let end = Utc.with_ymd_and_hms(2015, 8, 17, 15, 1, 31).unwrap();
        assert_eq!(
            digest_key(
                None,
                None,
                "111122223333",
                "us-east-2",
                "your-trail-name",
                "us-east-2",
                end
            ),
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_your-trail-name_us-east-2_20150817T150131Z.json.gz"
        );
        // The spec's organization example (§7).
        let end = Utc.with_ymd_and_hms(2020, 2, 14, 0, 10, 7).unwrap();
        assert_eq!(
            digest_key(
                None,
                Some("o-wwwwwwgggg"),
                "234567890123",
                "ca-central-1",
                "POrgTrail",
                "us-east-1",
                end
            ),
            "AWSLogs/o-wwwwwwgggg/234567890123/CloudTrail-Digest/ca-central-1/2020/02/14/234567890123_CloudTrail-Digest_ca-central-1_POrgTrail_us-east-1_20200214T001007Z.json.gz"
        );
        let doc: Value = serde_json::from_slice(
            &DigestFile {
                account: "1",
                start: end,
                end,
                bucket: "b",
                key: "k",
                fingerprint: "f",
                previous: None,
                files: &[],
            }
            .to_bytes(),
        )
        .unwrap();
        // A starting, empty digest: the previous fields are present and null.
        for field in [
            "previousDigestSignature",
            "previousDigestHashValue",
            "newestEventTime",
        ] {
            assert!(doc.get(field).is_some_and(Value::is_null), "{field}");
        }
        assert_eq!(doc["logFiles"], json!([]));
    }
}
