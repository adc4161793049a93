//! Digest files and the chain they make, hostile: up to four digest objects (split at
//! `\n--\n`) are read within the caps and judged as one chain, each signed for real when it
//! parses (so the walk reaches links and listed log files) and with the signature the input
//! gives; backfill judging too. Never a panic; a digest judged valid is one that parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;
use trailwarden_core::integrity::backfill;
use trailwarden_core::integrity::chain::{self, DigestRead, ListedDigest, LogState, Unjudged};
use trailwarden_core::integrity::digest::{DigestDoc, sha256_hex};
use trailwarden_core::integrity::forge::{self, Forge, digest_end, digest_key, scope};

fn key() -> &'static Forge {
    static FORGE: OnceLock<Forge> = OnceLock::new();
    FORGE.get_or_init(forge::forge)
}

fuzz_target!(|data: &[u8]| {
    let f = key();
    let parts: Vec<&[u8]> = split(data, b"\n--\n").into_iter().take(4).collect();
    let mut listed = Vec::new();
    let mut logs = HashMap::new();
    for (i, part) in parts.iter().enumerate() {
        // The first line may carry a signature (hex) for the object's metadata.
        let (signature, body) = match part.iter().position(|b| *b == b'\n') {
            Some(at) if at < 1100 => (
                std::str::from_utf8(&part[..at]).ok().map(str::to_string),
                &part[at + 1..],
            ),
            _ => (None, *part),
        };
        let read = chain::read_digest(body, signature.clone(), None, 64 << 10);
        let read = match read {
            DigestRead::Object { bytes, .. } => {
                let real = serde_json::from_slice(&bytes)
                    .ok()
                    .filter(|_: &serde_json::Value| DigestDoc::parse(&bytes).is_ok())
                    .map(|doc| f.sign(&doc).2);
                if let Ok(doc) = DigestDoc::parse(&bytes) {
                    for e in doc.log_files.iter().take(8) {
                        logs.insert(
                            e.s3_object.clone(),
                            match e.s3_object.len() % 4 {
                                0 => LogState::Hash(sha256_hex(e.s3_object.as_bytes())),
                                1 => LogState::Unreadable("AccessDenied".into()),
                                2 => LogState::NotFound,
                                _ => LogState::Hash(e.hash_value.clone()),
                            },
                        );
                    }
                }
                DigestRead::Object {
                    bytes,
                    signature: if i % 2 == 0 {
                        real.or(signature)
                    } else {
                        signature
                    },
                    backfill_generated: Some("2026-11-24T03:00:00Z".into()),
                }
            }
            other => other,
        };
        listed.push(ListedDigest {
            key: digest_key(i as i64),
            read,
        });
    }
    let now = digest_end(4);
    for mode in [
        Unjudged::Report,
        Unjudged::Hold {
            now,
            key_grace: chrono::Duration::hours(2),
        },
    ] {
        let report = chain::judge(&scope(), None, &listed, &f.keys, &logs, &[], mode);
        for item in report
            .items
            .iter()
            .filter(|i| i.class.as_str() == "valid_digest")
        {
            let d = listed
                .iter()
                .find(|d| d.key == item.object)
                .expect("judged a listed key");
            match &d.read {
                DigestRead::Object { bytes, .. } => assert!(DigestDoc::parse(bytes).is_ok()),
                _ => panic!("a digest not read judged valid"),
            }
        }
        if let Some(last) = &report.last {
            let _ = chain::judge(&scope(), Some(last), &listed, &f.keys, &logs, &[], mode);
        }
    }
    let _ = backfill::judge(&scope(), &listed, &f.keys, &logs);
});

fn split<'a>(data: &'a [u8], at: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(at.len()).position(|w| w == at) {
        out.push(&rest[..i]);
        rest = &rest[i + at.len()..];
    }
    out.push(rest);
    out
}
