//! One CloudTrail log file (`{"Records": [...]}`, gzip): its SHA-256 over the uncompressed
//! bytes (what its digest lists) and its records, handed out one at a time. Pure.
//!
//! The gzip stream is inflated once into a buffer (hashed as it goes), then records are
//! parsed one by one from it: the file is never held as a tree of all its records, and the
//! parser reads a slice, several times faster than serde_json's byte-at-a-time reader.

use crate::record::{Record, RecordError};
use aws_lc_rs::digest::{Context, SHA256};
use flate2::bufread::GzDecoder;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::Read;

/// Uncompressed log files larger than this are refused rather than read into memory.
pub const MAX_UNCOMPRESSED: usize = 512 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct LogFileSummary {
    /// Lowercase hex SHA-256 of the uncompressed bytes.
    pub sha256: String,
    /// Bytes followed the first gzip member: not what CloudTrail writes.
    pub trailing_data: bool,
    pub records: u64,
}

/// Inflates `body` (as is when it is not gzip) into `buf`, returning the hash and whether
/// bytes follow the gzip member.
pub fn inflate(body: &[u8], buf: &mut Vec<u8>) -> Result<(String, bool), String> {
    buf.clear();
    let mut hash = Context::new(&SHA256);
    let trailing = if body.starts_with(&[0x1f, 0x8b]) {
        let mut decoder = GzDecoder::new(body);
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = decoder
                .read(&mut chunk)
                .map_err(|e| format!("not valid gzip: {e}"))?;
            if n == 0 {
                break;
            }
            if buf.len() + n > MAX_UNCOMPRESSED {
                return Err(format!(
                    "larger than {} MiB uncompressed",
                    MAX_UNCOMPRESSED >> 20
                ));
            }
            hash.update(&chunk[..n]);
            buf.extend_from_slice(&chunk[..n]);
        }
        !decoder.into_inner().is_empty()
    } else {
        hash.update(body);
        buf.extend_from_slice(body);
        false
    };
    Ok((
        crate::integrity::digest::hex(hash.finish().as_ref()),
        trailing,
    ))
}

/// Hashes and parses a log file, calling `each` for every record (or the error that made
/// it unreadable, with its position). An error here is about the whole file: not gzip,
/// not JSON, no `Records` array.
pub fn read(
    body: &[u8],
    buf: &mut Vec<u8>,
    mut each: impl FnMut(Result<Record, (usize, RecordError)>),
) -> Result<LogFileSummary, String> {
    let (sha256, trailing_data) = inflate(body, buf)?;
    let records = parse_records(buf, &mut each)?;
    Ok(LogFileSummary {
        sha256,
        trailing_data,
        records,
    })
}

/// Parses `{"Records": [...]}` one record at a time.
pub fn parse_records(
    json: &[u8],
    each: &mut dyn FnMut(Result<Record, (usize, RecordError)>),
) -> Result<u64, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let count = de
        .deserialize_map(FileVisitor { each })
        .map_err(|e| format!("not a CloudTrail log file: {e}"))?;
    de.end()
        .map_err(|e| format!("not a CloudTrail log file: {e}"))?;
    count.ok_or_else(|| "not a CloudTrail log file: no Records array".to_string())
}

struct FileVisitor<'f> {
    each: &'f mut dyn FnMut(Result<Record, (usize, RecordError)>),
}

impl<'de> Visitor<'de> for FileVisitor<'_> {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a Records array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut count = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "Records" {
                count = Some(map.next_value_seed(RecordsSeed {
                    each: &mut *self.each,
                })?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(count)
    }
}

struct RecordsSeed<'f> {
    each: &'f mut dyn FnMut(Result<Record, (usize, RecordError)>),
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0u64;
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            (self.each)(Record::from_value(value).map_err(|e| (n as usize, e)));
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    const FILE: &str = r#"{"Records":[
        {"eventVersion":"1.08","eventID":"a","eventTime":"2026-01-01T00:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","recipientAccountId":"123456789012"},
        {"eventVersion":"1.08","eventID":"b","eventSource":"s3.amazonaws.com","eventName":"GetObject"}
    ]}"#;

    #[test]
    fn hashes_the_uncompressed_bytes_and_reads_each_record() {
        let mut buf = Vec::new();
        let mut names = Vec::new();
        let mut bad = Vec::new();
        let s = read(&gzip(FILE.as_bytes()), &mut buf, |r| match r {
            Ok(r) => names.push(r.event_name),
            Err((i, e)) => bad.push((i, e.to_string())),
        })
        .unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(
            s.sha256,
            crate::integrity::digest::sha256_hex(FILE.as_bytes())
        );
        assert!(!s.trailing_data);
        assert_eq!(names, ["StopLogging"]);
        assert_eq!(bad, [(1, "no eventTime".to_string())]);
    }

    #[test]
    fn whole_file_errors_name_the_problem() {
        let mut buf = Vec::new();
        let e = read(&gzip(b"{\"Other\": 1}"), &mut buf, |_| {}).unwrap_err();
        assert!(e.contains("no Records"), "{e}");
        let e = read(&gzip(b"{\"Records\": [1,"), &mut buf, |_| {}).unwrap_err();
        assert!(e.contains("not a CloudTrail log file"), "{e}");
        let mut twice = gzip(FILE.as_bytes());
        twice.extend(gzip(b"more"));
        assert!(read(&twice, &mut buf, |_| {}).unwrap().trailing_data);
    }
}
