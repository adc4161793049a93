//! One CloudTrail log file (`{"Records": [...]}`, gzip): its SHA-256 over the uncompressed
//! bytes (what its digest lists) and its records, handed out one at a time. Pure.
//!
//! The gzip stream is inflated once into a buffer (hashed as it goes), then records are
//! handed out one by one as borrowed text with their source and name: most records match no
//! detection, and building a JSON tree for each (most of the cost) is left to those that do
//! ([`LogRecord::record`]). The parser reads the buffer as `str`, checked as UTF-8 once.

use crate::record::{Record, RecordError};
use aws_lc_rs::digest::{Context, SHA256};
use flate2::bufread::GzDecoder;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::io::Read;

/// One record of a log file, not parsed yet beyond what picks the records worth parsing.
#[derive(Debug)]
pub struct LogRecord<'a> {
    pub event_source: Cow<'a, str>,
    pub event_name: Cow<'a, str>,
    pub text: &'a RawValue,
}

impl LogRecord<'_> {
    /// The whole record.
    pub fn record(&self) -> Result<Record, RecordError> {
        Record::parse(self.text.get())
    }
}

/// The fields read from every record.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
}

/// What is wrong with a record, by its position in the file.
pub type RecordFault = (usize, RecordError);

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
/// not UTF-8 JSON, no `Records` array.
pub fn read(
    body: &[u8],
    buf: &mut Vec<u8>,
    mut each: impl FnMut(Result<LogRecord<'_>, RecordFault>),
) -> Result<LogFileSummary, String> {
    let (sha256, trailing_data) = inflate(body, buf)?;
    let text = std::str::from_utf8(buf).map_err(|e| format!("not a CloudTrail log file: {e}"))?;
    let records = parse_records(text, &mut each)?;
    Ok(LogFileSummary {
        sha256,
        trailing_data,
        records,
    })
}

/// Parses `{"Records": [...]}` one record at a time.
pub fn parse_records<'a>(
    json: &'a str,
    each: &mut dyn FnMut(Result<LogRecord<'a>, RecordFault>),
) -> Result<u64, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    let count = de
        .deserialize_map(FileVisitor { each })
        .map_err(|e| format!("not a CloudTrail log file: {e}"))?;
    de.end()
        .map_err(|e| format!("not a CloudTrail log file: {e}"))?;
    count.ok_or_else(|| "not a CloudTrail log file: no Records array".to_string())
}

type Each<'f, 'a> = &'f mut dyn FnMut(Result<LogRecord<'a>, RecordFault>);

struct FileVisitor<'f, 'a> {
    each: Each<'f, 'a>,
}

impl<'a> Visitor<'a> for FileVisitor<'_, 'a> {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a Records array")
    }
    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut count = None;
        while let Some(key) = map.next_key::<Cow<'a, str>>()? {
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

struct RecordsSeed<'f, 'a> {
    each: Each<'f, 'a>,
}

impl<'a> DeserializeSeed<'a> for RecordsSeed<'_, 'a> {
    type Value = u64;
    fn deserialize<D: Deserializer<'a>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'a> Visitor<'a> for RecordsSeed<'_, 'a> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut n = 0u64;
        while let Some(text) = seq.next_element::<&'a RawValue>()? {
            (self.each)(head(text).map_err(|e| (n as usize, e)));
            n += 1;
        }
        Ok(n)
    }
}

fn head(text: &RawValue) -> Result<LogRecord<'_>, RecordError> {
    let h: Head = serde_json::from_str(text.get()).map_err(|e| {
        if text.get().trim_start().starts_with('{') {
            RecordError::NotJson(e.to_string())
        } else {
            RecordError::NotAnObject
        }
    })?;
    Ok(LogRecord {
        event_source: h.event_source.ok_or(RecordError::Missing("eventSource"))?,
        event_name: h.event_name.ok_or(RecordError::Missing("eventName"))?,
        text,
    })
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
        let s = read(&gzip(FILE.as_bytes()), &mut buf, |r| {
            match r.map(|r| r.record()) {
                Ok(Ok(r)) => names.push(r.event_name),
                Ok(Err(e)) => bad.push((9, e.to_string())),
                Err((i, e)) => bad.push((i, e.to_string())),
            }
        })
        .unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(
            s.sha256,
            crate::integrity::digest::sha256_hex(FILE.as_bytes())
        );
        assert!(!s.trailing_data);
        assert_eq!(names, ["StopLogging"]);
        // The second has a source and a name (enough to be skipped cheaply), but is not a
        // whole record when asked for one.
        assert_eq!(bad, [(9, "no eventTime".to_string())]);
        let mut faults = Vec::new();
        read(
            &gzip(br#"{"Records":[{"eventName":"X"}, 3]}"#),
            &mut buf,
            |r| {
                if let Err((i, e)) = r {
                    faults.push((i, e.to_string()));
                }
            },
        )
        .unwrap();
        assert_eq!(
            faults,
            [
                (0, "no eventSource".to_string()),
                (1, "not a JSON object".to_string())
            ]
        );
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
