//! One digest file: its bytes, its JSON, its signature and the key that checks it
//! (specs/cloudtrail-digest.md §2–§6). Pure: the bytes come from the caller.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use flate2::bufread::GzDecoder;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::io::Read;

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// Hex strings compared as the bytes they stand for (CloudTrail writes lowercase; the CLI
/// accepts uppercase).
pub fn same_hex(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Why an object's bytes could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// Past the cap: a verdict, never read further.
    Oversized(String),
    /// Not valid gzip (truncated, corrupt).
    Corrupt(String),
}

/// The uncompressed bytes of an object: gunzipped when it starts with the gzip magic (only
/// the first member, as CloudTrail and the CLI read it), as is when a transport already
/// decompressed it; at most `max` bytes. Also says whether bytes followed the first member.
pub fn uncompressed(body: &[u8], max: u64) -> Result<(Vec<u8>, bool), InflateError> {
    let oversized = || {
        InflateError::Oversized(format!(
            "inflates past {} MiB (limit bucket.max_digest_size)",
            max >> 20
        ))
    };
    if !body.starts_with(&[0x1f, 0x8b]) {
        if body.len() as u64 > max {
            return Err(oversized());
        }
        return Ok((body.to_vec(), false));
    }
    // bufread: the slice is advanced exactly past the first member.
    let mut decoder = GzDecoder::new(body);
    let mut out = Vec::with_capacity(body.len().saturating_mul(8).min(1 << 20));
    (&mut decoder)
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| InflateError::Corrupt(format!("not valid gzip: {e}")))?;
    if out.len() as u64 > max {
        return Err(oversized());
    }
    let rest = decoder.into_inner();
    Ok((out, !rest.is_empty()))
}

/// Fields of a digest file. The nullable ones must be present (the CLI agrees: a missing
/// key is an invalid format); `logFiles` is required too.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DigestDoc {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    #[serde(deserialize_with = "nullable")]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub previous_digest_s3_object: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub previous_digest_hash_value: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<LogEntry>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
}

/// A required field that may be `null`.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

impl DigestDoc {
    pub fn parse(uncompressed: &[u8]) -> Result<DigestDoc, String> {
        serde_json::from_slice(uncompressed).map_err(|e| format!("invalid format: {e}"))
    }

    /// A starting digest: all previous fields null. A mix of null and set is malformed.
    pub fn previous(&self) -> Result<Option<PreviousLink>, String> {
        match (
            &self.previous_digest_s3_bucket,
            &self.previous_digest_s3_object,
            &self.previous_digest_hash_value,
            &self.previous_digest_signature,
        ) {
            (None, None, None, None) => Ok(None),
            (Some(b), Some(o), Some(h), Some(s)) if !s.is_empty() => Ok(Some(PreviousLink {
                bucket: b.clone(),
                key: o.clone(),
                sha256: h.clone(),
                signature: s.clone(),
            })),
            _ => Err("invalid format: previous digest fields are partly null or empty".into()),
        }
    }

    pub fn start(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.digest_start_time)
    }

    pub fn end(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.digest_end_time)
    }
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a digest says about the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousLink {
    pub bucket: String,
    pub key: String,
    pub sha256: String,
    pub signature: String,
}

/// §5.1: `digestEndTime \n bucket/key \n sha256 hex \n previous signature | null`.
pub fn data_to_sign(doc: &DigestDoc, sha256: &str) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        doc.digest_end_time,
        doc.digest_s3_bucket,
        doc.digest_s3_object,
        sha256,
        doc.previous_digest_signature.as_deref().unwrap_or("null")
    )
}

/// A public key from ListPublicKeys, checked: the fingerprint is recomputed from the DER.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// PKCS#1 `RSAPublicKey` DER (unwrapped from SubjectPublicKeyInfo when served that way).
    pkcs1: Vec<u8>,
    pub fingerprint: String,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
}

impl PublicKey {
    /// `der` as ListPublicKeys returns it (the SDK already decoded the base64). The
    /// fingerprint is md5 of exactly those bytes and must equal what the API says.
    pub fn new(
        der: &[u8],
        api_fingerprint: &str,
        valid_from: Option<DateTime<Utc>>,
        valid_to: Option<DateTime<Utc>>,
    ) -> Result<PublicKey, String> {
        let fingerprint = hex(&<md5::Md5 as md5::Digest>::digest(der));
        if !same_hex(&fingerprint, api_fingerprint) {
            return Err(format!(
                "public key listed as {api_fingerprint} has fingerprint {fingerprint}"
            ));
        }
        let pkcs1 = match spki_to_pkcs1(der) {
            Some(inner) => inner.to_vec(),
            None => der.to_vec(),
        };
        Ok(PublicKey {
            pkcs1,
            fingerprint,
            valid_from,
            valid_to,
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256, pinned.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.pkcs1)
            .verify(message, signature)
            .is_ok()
    }
}

/// Public keys of one region, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    pub by_fingerprint: HashMap<String, PublicKey>,
}

impl PublicKeys {
    pub fn insert(&mut self, key: PublicKey) {
        self.by_fingerprint.insert(key.fingerprint.clone(), key);
    }

    pub fn get(&self, fingerprint: &str) -> Option<&PublicKey> {
        self.by_fingerprint.get(&fingerprint.to_ascii_lowercase())
    }
}

/// One DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The `RSAPublicKey` inside a SubjectPublicKeyInfo with the rsaEncryption algorithm; `None`
/// when `der` is not one (then it is taken as PKCS#1, §6.2).
fn spki_to_pkcs1(der: &[u8]) -> Option<&[u8]> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, spki, _) = der_element(der)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_element(spki)? else {
        return None;
    };
    let (0x06, oid, _) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (0x03, bits, _) = der_element(rest)? else {
        return None;
    };
    // A BIT STRING starts with the count of unused bits: 0 here.
    bits.strip_prefix(&[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const DOC_KEY: &str = "MIIBCgKCAQEAn11L2YZ9h7onug2ILi1MWyHiMRsTQjfWE+pHVRLk1QjfWhirG+lpOa8NrwQ/r7Ah5bNL6HepznOU9XTDSfmmnP97mqyc7z/upfZdS/AHhYcGaz7n6Wc/RRBU6VmiPCrAUojuSk6/GjvA8iOPFsYDuBtviXarvuLPlrT9kAd4Lb+rFfR5peEgBEkhlzc5HuWO7S0y+KunqxX6jQBnXGMtxmPBPP0FylgWGNdFtks/4YSKcgqwH0YDcawP9GGGDAeCIqPWIXDLG1jOjRRzWfCmD0iJUkz8vTsn4hq/5ZxRFE7UBAUiVcGbdnDdvVfhF9C3dQiDq3k7adQIziLT0cShgQIDAQAB";

    fn doc(previous_signature: Option<&str>) -> DigestDoc {
        DigestDoc {
            aws_account_id: "123456789012".into(),
            digest_start_time: "x".into(),
            digest_end_time: "a".into(),
            digest_s3_bucket: "b".into(),
            digest_s3_object: "c".into(),
            digest_public_key_fingerprint: "f".into(),
            digest_signature_algorithm: "SHA256withRSA".into(),
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_signature: previous_signature.map(str::to_string),
            log_files: vec![],
        }
    }

    #[test]
    fn the_spec_data_to_sign_vector() {
        let sha = sha256_hex(b"abc");
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            data_to_sign(&doc(None), &sha),
            "a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
        assert!(data_to_sign(&doc(Some("00ff")), &sha).ends_with("\n00ff"));
    }

    #[test]
    fn the_documented_key_and_its_fingerprint() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(DOC_KEY)
            .unwrap();
        let key = PublicKey::new(&der, "8eba5db5bea9b640d1c96a77256fe7f2", None, None).unwrap();
        assert_eq!(key.fingerprint, "8eba5db5bea9b640d1c96a77256fe7f2");
        let wrong = PublicKey::new(&der, "31e8b5433410dfb61a9dc45cc65b22ff", None, None);
        assert!(wrong.unwrap_err().contains("has fingerprint 8eba5db5"));
    }

    #[test]
    fn signatures_verify_with_pkcs1_and_spki_keys() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs1 = pair.public_key().as_ref().to_vec();
        let spki = pair.public_key().as_der().unwrap().as_ref().to_vec();
        assert_ne!(pkcs1, spki);
        let mut sig = vec![0; pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        pair.sign(&RSA_PKCS1_SHA256, &rng, b"message", &mut sig)
            .unwrap();
        for der in [&pkcs1, &spki] {
            let fp = hex(&<md5::Md5 as md5::Digest>::digest(der));
            let key = PublicKey::new(der, &fp, None, None).unwrap();
            assert!(key.verifies(b"message", &sig));
            assert!(!key.verifies(b"messagE", &sig));
        }
    }

    #[test]
    fn nullable_fields_must_be_present() {
        let full = serde_json::json!({
            "awsAccountId": "1", "digestStartTime": "s", "digestEndTime": "e",
            "digestS3Bucket": "b", "digestS3Object": "o", "digestPublicKeyFingerprint": "f",
            "digestSignatureAlgorithm": "SHA256withRSA", "previousDigestS3Bucket": null,
            "previousDigestS3Object": null, "previousDigestHashValue": null,
            "previousDigestHashAlgorithm": null, "previousDigestSignature": null,
            "logFiles": [], "newField": 1,
        });
        let d = DigestDoc::parse(full.to_string().as_bytes()).unwrap();
        assert_eq!(d.previous(), Ok(None));
        let mut missing = full.clone();
        missing
            .as_object_mut()
            .unwrap()
            .remove("previousDigestSignature");
        let e = DigestDoc::parse(missing.to_string().as_bytes()).unwrap_err();
        assert!(e.contains("previousDigestSignature"), "{e}");
        let mut partial = full;
        partial["previousDigestS3Object"] = "k".into();
        let d = DigestDoc::parse(partial.to_string().as_bytes()).unwrap();
        assert!(d.previous().is_err());
    }

    #[test]
    fn gzip_first_member_and_trailing_bytes() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(b"hello").unwrap();
        let gz = e.finish().unwrap();
        assert_eq!(uncompressed(&gz, 5).unwrap(), (b"hello".to_vec(), false));
        assert!(matches!(
            uncompressed(&gz, 4),
            Err(InflateError::Oversized(_))
        ));
        let mut twice = gz.clone();
        twice.extend_from_slice(&gz);
        assert_eq!(uncompressed(&twice, 99).unwrap(), (b"hello".to_vec(), true));
        assert_eq!(uncompressed(b"{}", 99).unwrap(), (b"{}".to_vec(), false));
        assert!(matches!(
            uncompressed(&gz[..gz.len() - 4], 99),
            Err(InflateError::Corrupt(_))
        ));
    }
}
