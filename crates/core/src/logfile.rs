//! One CloudTrail log file (`{"Records": [...]}`, gzip): its SHA-256 over the uncompressed
//! bytes (what its digest lists) and its records, handed out one at a time. Pure.
//!
//! The gzip stream is inflated in chunks, hashed as it goes, and split into records as it
//! comes: memory holds one chunk and one record, whatever the file inflates to. Each record is
//! handed out as borrowed text with its source and name: most records match no detection,
//! and building a JSON tree (most of the cost) is left to those that do
//! ([`LogRecord::record`]). A record that lies whole in a chunk is walked once, in place
//! ([`crate::record_head::walk`]); one across chunks, or anything unusual, goes byte by byte
//! into a buffer, and serde_json reads its source and name.
//!
//! A file is hostile until proven otherwise: past [`Limits::max_inflated`] it is oversized
//! (a gzip bomb) and not hashed; a record over [`Limits::max_record`] is skipped and
//! reported; records past [`Limits::max_records`] are not handed out. What is not a log file
//! (not gzip, not JSON, another shape) is still hashed, so its digest can say it was altered.

use crate::record::{Record, RecordError};
use aws_lc_rs::digest::{Context, SHA256};
use flate2::bufread::GzDecoder;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::Read;

/// One record of a log file, not parsed yet beyond what picks the records worth parsing.
#[derive(Debug)]
pub struct LogRecord<'a> {
    pub event_source: Cow<'a, str>,
    pub event_name: Cow<'a, str>,
    pub text: &'a str,
}

impl LogRecord<'_> {
    /// The whole record.
    pub fn record(&self) -> Result<Record, RecordError> {
        Record::parse(self.text)
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

/// How [`LogFileSummary::malformed`] begins when another value follows the log file's
/// object: concatenated log files, which a hunt reads as a sequence of values instead.
pub const DATA_AFTER_THE_OBJECT: &str = "data after the top-level object";

/// What is wrong with a record, by its position in the file.
pub type RecordFault = (u64, RecordError);

/// What one log file may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Uncompressed bytes: past this the file is oversized and not read further.
    pub max_inflated: u64,
    /// Bytes of one record: a larger one is skipped and reported.
    pub max_record: usize,
    /// Records handed out per file; the rest are counted, not handed out.
    pub max_records: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflated: 1 << 30,
            max_record: 4 << 20,
            max_records: 2_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogFileSummary {
    /// Lowercase hex SHA-256 of the uncompressed bytes (of the bytes as stored when they are
    /// not valid gzip: that cannot match a digest, as it should not).
    pub sha256: String,
    /// Bytes followed the first gzip member: not what CloudTrail writes.
    pub trailing_data: bool,
    /// Records handed out.
    pub records: u64,
    /// Why the file is not wholly a CloudTrail log file (not gzip, not JSON, another shape,
    /// records over a cap); `None` when every record was handed out.
    pub malformed: Option<String>,
}

/// The file inflates past [`Limits::max_inflated`]: a verdict, not an error to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Oversized(pub String);

/// Hashes and splits a log file, calling `each` for every record (or the fault that makes
/// it unreadable, with its position). `scratch` is reused between files.
pub fn read(
    body: &[u8],
    limits: &Limits,
    scratch: &mut Vec<u8>,
    mut each: impl FnMut(Result<LogRecord<'_>, RecordFault>),
) -> Result<LogFileSummary, Oversized> {
    let mut splitter = Splitter::new(limits, scratch);
    let inflated = inflate_with(body, limits.max_inflated, |chunk| {
        splitter.feed(chunk, &mut each)
    })?;
    let mut malformed = splitter.finish();
    let sha256 = match inflated.gzip_error {
        Some(e) => {
            malformed = Some(format!("not valid gzip: {e}"));
            crate::integrity::digest::sha256_hex(body)
        }
        None => inflated.sha256,
    };
    Ok(LogFileSummary {
        sha256,
        trailing_data: inflated.trailing_data,
        records: splitter.records,
        malformed,
    })
}

/// SHA-256 of a log file's uncompressed bytes, and whether bytes follow its gzip member,
/// without keeping them: what its digest needs.
pub fn hash(body: &[u8], max_inflated: u64) -> Result<(String, bool), Oversized> {
    let inflated = inflate_with(body, max_inflated, |_| {})?;
    Ok(match inflated.gzip_error {
        Some(_) => (crate::integrity::digest::sha256_hex(body), false),
        None => (inflated.sha256, inflated.trailing_data),
    })
}

/// Inflates `body` (as is when it is not gzip) into `buf`, returning the hash and whether
/// bytes follow the gzip member: the baseline the benchmark compares [`read`] with.
pub fn inflate(
    body: &[u8],
    max_inflated: u64,
    buf: &mut Vec<u8>,
) -> Result<(String, bool), String> {
    buf.clear();
    let inflated =
        inflate_with(body, max_inflated, |chunk| buf.extend_from_slice(chunk)).map_err(|e| e.0)?;
    match inflated.gzip_error {
        Some(e) => Err(format!("not valid gzip: {e}")),
        None => Ok((inflated.sha256, inflated.trailing_data)),
    }
}

struct Inflated {
    sha256: String,
    trailing_data: bool,
    /// The gzip stream broke off (truncated, corrupt): what came before was handed out.
    gzip_error: Option<String>,
}

fn inflate_with(
    body: &[u8],
    max_inflated: u64,
    mut chunk: impl FnMut(&[u8]),
) -> Result<Inflated, Oversized> {
    let mut hash = Context::new(&SHA256);
    let oversized = || {
        Oversized(format!(
            "inflates past {} MiB (limit bucket.max_inflated_size)",
            max_inflated >> 20
        ))
    };
    if !body.starts_with(&[0x1f, 0x8b]) {
        // A transport that already decompressed it, or not gzip at all.
        if body.len() as u64 > max_inflated {
            return Err(oversized());
        }
        hash.update(body);
        chunk(body);
        return Ok(Inflated {
            sha256: crate::integrity::digest::hex(hash.finish().as_ref()),
            trailing_data: false,
            gzip_error: None,
        });
    }
    // bufread: the slice is advanced exactly past the first member.
    let mut decoder = GzDecoder::new(body);
    let mut block = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut gzip_error = None;
    loop {
        let n = match decoder.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                gzip_error = Some(e.to_string());
                break;
            }
        };
        total += n as u64;
        if total > max_inflated {
            return Err(oversized());
        }
        hash.update(&block[..n]);
        chunk(&block[..n]);
    }
    Ok(Inflated {
        sha256: crate::integrity::digest::hex(hash.finish().as_ref()),
        trailing_data: gzip_error.is_none() && !decoder.into_inner().is_empty(),
        gzip_error,
    })
}

/// Where the splitter is in `{"Records": [ r, r, ... ] }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the top-level object.
    Start,
    /// Inside the top-level object: a key or its end.
    TopKey,
    /// Reading a top-level key's text.
    KeyText { escape: bool },
    /// After a key: the colon.
    Colon,
    /// The value of a top-level key.
    TopValue,
    /// The `Records` array: its opening bracket.
    ArrayOpen,
    /// In the array: a record or the end.
    Element,
    /// After a record: a comma or the end.
    AfterElement,
    /// After a top-level value: a comma or the end of the object.
    AfterValue,
    /// After the top-level object: only whitespace.
    End,
}

/// A value being passed over (a record, or another top-level key's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    None,
    /// Nested in objects and arrays this deep.
    Nested {
        depth: u32,
        in_string: bool,
        escape: bool,
    },
    /// A string at the top of the value.
    Text {
        escape: bool,
    },
    /// A number or literal: until a delimiter.
    Scalar,
}

struct Splitter<'s> {
    limits: Limits,
    at: At,
    value: Value,
    /// The value is a record (else a skipped top-level value).
    is_record: bool,
    /// The record's bytes so far; cleared, not freed, between records.
    record: &'s mut Vec<u8>,
    /// The record went past the cap: passed over, then reported.
    record_too_large: bool,
    key: Vec<u8>,
    key_is_records: bool,
    saw_records: bool,
    /// Records seen (handed out or not).
    position: u64,
    records: u64,
    offset: u64,
    error: Option<String>,
    too_many: bool,
    too_large: u64,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'s> Splitter<'s> {
    fn new(limits: &Limits, record: &'s mut Vec<u8>) -> Splitter<'s> {
        record.clear();
        Splitter {
            limits: *limits,
            at: At::Start,
            value: Value::None,
            is_record: false,
            record,
            record_too_large: false,
            key: Vec::new(),
            key_is_records: false,
            saw_records: false,
            position: 0,
            records: 0,
            offset: 0,
            error: None,
            too_many: false,
            too_large: 0,
        }
    }

    fn fail(&mut self, what: String) {
        if self.error.is_none() {
            self.error = Some(format!("not a CloudTrail log file: {what}"));
        }
    }

    fn feed(&mut self, chunk: &[u8], each: &mut impl FnMut(Result<LogRecord<'_>, RecordFault>)) {
        if self.error.is_some() {
            return;
        }
        let mut i = 0;
        // Start of the part of this chunk that belongs to the record being captured.
        let mut captured_from = 0;
        while i < chunk.len() {
            if self.value != Value::None {
                // Passing over a value: jump through strings with memchr.
                let (done, next) = self.pass_over(chunk, i);
                if done {
                    if self.is_record {
                        self.capture(&chunk[captured_from..next]);
                        self.emit(each);
                        self.at = At::AfterElement;
                    } else {
                        self.at = At::AfterValue;
                    }
                    self.value = Value::None;
                }
                i = next;
                continue;
            }
            let b = chunk[i];
            let here = self.offset + i as u64;
            if self.at == At::Element
                && b == b'{'
                && let Some(len) = self.walk_record(&chunk[i..], each)
            {
                // Walked in place: the whole record was in this chunk.
                self.at = At::AfterElement;
                i += len;
                continue;
            }
            match self.at {
                At::KeyText { escape } => {
                    if escape {
                        self.at = At::KeyText { escape: false };
                    } else if b == b'\\' {
                        self.at = At::KeyText { escape: true };
                    } else if b == b'"' {
                        self.key_is_records = self.key == b"Records";
                        self.at = At::Colon;
                        i += 1;
                        continue;
                    }
                    if self.key.len() < 64 {
                        self.key.push(b);
                    }
                    i += 1;
                    continue;
                }
                _ if is_space(b) => {
                    i += 1;
                    continue;
                }
                At::Start => match b {
                    b'{' => self.at = At::TopKey,
                    _ => return self.fail(format!("expected an object at byte {here}")),
                },
                At::TopKey => match b {
                    b'"' => {
                        self.key.clear();
                        self.at = At::KeyText { escape: false };
                    }
                    b'}' => self.at = At::End,
                    _ => return self.fail(format!("expected a key at byte {here}")),
                },
                At::Colon => match b {
                    b':' => {
                        self.at = if self.key_is_records {
                            At::ArrayOpen
                        } else {
                            At::TopValue
                        }
                    }
                    _ => return self.fail(format!("expected ':' at byte {here}")),
                },
                At::TopValue => {
                    if matches!(b, b'}' | b']' | b',' | b':') {
                        return self.fail(format!("expected a value at byte {here}"));
                    }
                    self.is_record = false;
                    self.value = Value::start(b);
                }
                At::ArrayOpen => match b {
                    b'[' => {
                        self.saw_records = true;
                        self.at = At::Element;
                    }
                    _ => return self.fail(format!("Records is not an array (byte {here})")),
                },
                At::Element | At::AfterElement if b == b']' => self.at = At::AfterValue,
                At::AfterElement if b == b',' => self.at = At::Element,
                At::AfterElement => {
                    return self.fail(format!("expected ',' or ']' at byte {here}"));
                }
                At::Element => {
                    if matches!(b, b'}' | b',' | b':') {
                        return self.fail(format!("expected a record at byte {here}"));
                    }
                    self.is_record = true;
                    self.record.clear();
                    self.record_too_large = false;
                    captured_from = i;
                    self.value = Value::start(b);
                }
                At::AfterValue => match b {
                    b',' => self.at = At::TopKey,
                    b'}' => self.at = At::End,
                    _ => return self.fail(format!("expected ',' or '}}' at byte {here}")),
                },
                At::End => {
                    return self.fail(format!("{DATA_AFTER_THE_OBJECT} at byte {here}"));
                }
            }
            i += 1;
        }
        if self.value != Value::None && self.is_record {
            self.capture(&chunk[captured_from..]);
        }
        self.offset += chunk.len() as u64;
    }

    /// Moves through the value from `i`; returns whether it ended and where to go on.
    fn pass_over(&mut self, chunk: &[u8], mut i: usize) -> (bool, usize) {
        loop {
            if i >= chunk.len() {
                return (false, i);
            }
            match &mut self.value {
                Value::None => return (true, i),
                Value::Text { escape }
                | Value::Nested {
                    in_string: true,
                    escape,
                    ..
                } => {
                    if *escape {
                        // The escaped byte, whatever it is.
                        *escape = false;
                        i += 1;
                        continue;
                    }
                    let Some(at) = memchr::memchr2(b'"', b'\\', &chunk[i..]) else {
                        return (false, chunk.len());
                    };
                    i += at + 1;
                    if chunk[i - 1] == b'\\' {
                        *escape = true;
                        continue;
                    }
                    match &mut self.value {
                        Value::Nested { in_string, .. } => *in_string = false,
                        _ => return (true, i),
                    }
                }
                Value::Nested {
                    depth, in_string, ..
                } => {
                    let b = chunk[i];
                    i += 1;
                    match b {
                        b'"' => *in_string = true,
                        b'{' | b'[' => *depth += 1,
                        b'}' | b']' => {
                            *depth -= 1;
                            if *depth == 0 {
                                return (true, i);
                            }
                        }
                        _ => {}
                    }
                }
                Value::Scalar => {
                    let b = chunk[i];
                    if matches!(b, b',' | b']' | b'}') || is_space(b) {
                        return (true, i);
                    }
                    i += 1;
                }
            }
        }
    }

    fn capture(&mut self, bytes: &[u8]) {
        if self.record_too_large {
            return;
        }
        if self.record.len() + bytes.len() > self.limits.max_record {
            self.record_too_large = true;
            self.record.clear();
            return;
        }
        self.record.extend_from_slice(bytes);
    }

    /// The common case in one pass: a record that lies whole in `rest` (from its opening
    /// brace) and reads plainly is walked in place, handed out without a copy, and its
    /// length returned. `None` leaves it to the byte-by-byte path (a record across chunks, an
    /// escape in its source or name, anything unusual, over the size cap).
    fn walk_record(
        &mut self,
        rest: &[u8],
        each: &mut impl FnMut(Result<LogRecord<'_>, RecordFault>),
    ) -> Option<usize> {
        let walked = crate::record_head::walk(rest)?;
        if walked.len > self.limits.max_record {
            return None;
        }
        let Some(position) = self.next_position() else {
            return Some(walked.len);
        };
        self.records += 1;
        let record = std::str::from_utf8(&rest[..walked.len])
            .map_err(|e| RecordError::NotJson(e.to_string()))
            .and_then(|text| {
                // Both ranges lie between quotes: character boundaries.
                let field = |r: std::ops::Range<usize>| {
                    text.get(r)
                        .map(Cow::Borrowed)
                        .ok_or(RecordError::NotAnObject)
                };
                Ok(LogRecord {
                    event_source: field(walked.source.clone())?,
                    event_name: field(walked.name.clone())?,
                    text,
                })
            });
        each(record.map_err(|e| (position, e)));
        Some(walked.len)
    }

    /// The next record's position, or `None` past the count cap (counted, not handed out).
    fn next_position(&mut self) -> Option<u64> {
        let position = self.position;
        self.position += 1;
        if self.position > self.limits.max_records {
            self.too_many = true;
            return None;
        }
        Some(position)
    }

    fn emit(&mut self, each: &mut impl FnMut(Result<LogRecord<'_>, RecordFault>)) {
        let Some(position) = self.next_position() else {
            return;
        };
        if self.record_too_large {
            self.too_large += 1;
            each(Err((
                position,
                RecordError::NotJson(format!(
                    "larger than {} KiB (limit bucket.max_record_size)",
                    self.limits.max_record >> 10
                )),
            )));
            return;
        }
        self.records += 1;
        let parsed = std::str::from_utf8(self.record)
            .map_err(|e| RecordError::NotJson(e.to_string()))
            .and_then(head);
        each(parsed.map_err(|e| (position, e)));
    }

    /// Why the file is not wholly a log file, if it is not.
    fn finish(&mut self) -> Option<String> {
        if self.error.is_none() && self.at != At::End {
            let what = if self.offset == 0 {
                "empty".to_string()
            } else {
                format!("ends early, at byte {}", self.offset)
            };
            self.fail(what);
        }
        if self.error.is_none() && !self.saw_records {
            self.fail("no Records array".into());
        }
        if self.error.is_none() && self.too_many {
            self.error = Some(format!(
                "more than {} records (limit bucket.max_records); the rest were not read",
                self.limits.max_records
            ));
        }
        if self.error.is_none() && self.too_large > 0 {
            self.error = Some(format!(
                "{} record(s) larger than {} KiB (limit bucket.max_record_size) were not read",
                self.too_large,
                self.limits.max_record >> 10
            ));
        }
        self.error.clone()
    }
}

impl Value {
    fn start(b: u8) -> Value {
        match b {
            b'{' | b'[' => Value::Nested {
                depth: 1,
                in_string: false,
                escape: false,
            },
            b'"' => Value::Text { escape: false },
            _ => Value::Scalar,
        }
    }
}

fn head(text: &str) -> Result<LogRecord<'_>, RecordError> {
    if let Some((source, name)) = crate::record_head::source_and_name(text) {
        return Ok(LogRecord {
            event_source: Cow::Borrowed(source),
            event_name: Cow::Borrowed(name),
            text,
        });
    }
    // Escapes, a key twice, not an object: serde_json decides, and says what is wrong.
    let h: Head = serde_json::from_str(text).map_err(|e| {
        if text.trim_start().starts_with('{') {
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
        {"eventVersion":"1.08","eventID":"a","eventTime":"2026-01-01T00:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","recipientAccountId":"123456789012","requestParameters":{"name":"x \"}]\\ y"}},
        {"eventVersion":"1.08","eventID":"b","eventSource":"s3.amazonaws.com","eventName":"GetObject"}
    ]}"#;

    /// Every record (or fault) as text, and the summary.
    fn split(body: &[u8], limits: &Limits) -> (Vec<String>, Result<LogFileSummary, Oversized>) {
        let mut out = Vec::new();
        let summary = read(body, limits, &mut Vec::new(), |r| {
            out.push(match r {
                Ok(r) => format!("{}/{}", r.event_source, r.event_name),
                Err((i, e)) => format!("#{i}: {e}"),
            })
        });
        (out, summary)
    }

    #[test]
    fn hashes_the_uncompressed_bytes_and_reads_each_record() {
        let mut names = Vec::new();
        let mut bad = Vec::new();
        let s = read(
            &gzip(FILE.as_bytes()),
            &Limits::default(),
            &mut Vec::new(),
            |r| match r.map(|r| r.record()) {
                Ok(Ok(r)) => names.push(r.event_name),
                Ok(Err(e)) => bad.push((9, e.to_string())),
                Err((i, e)) => bad.push((i, e.to_string())),
            },
        )
        .unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(
            s.sha256,
            crate::integrity::digest::sha256_hex(FILE.as_bytes())
        );
        assert_eq!((s.trailing_data, s.malformed), (false, None));
        assert_eq!(names, ["StopLogging"]);
        // The second has a source and a name (enough to be skipped cheaply), but is not a
        // whole record when asked for one.
        assert_eq!(bad, [(9, "no eventTime".to_string())]);
        let (faults, _) = split(
            &gzip(br#"{"Records":[{"eventName":"X"}, 3]}"#),
            &Limits::default(),
        );
        assert_eq!(faults, ["#0: no eventSource", "#1: not a JSON object"]);
    }

    #[test]
    fn records_split_at_any_byte_come_out_the_same() {
        let limits = Limits::default();
        let whole = {
            let mut out = Vec::new();
            let mut buf = Vec::new();
            let mut s = Splitter::new(&limits, &mut buf);
            s.feed(FILE.as_bytes(), &mut |r| {
                out.push(format!("{:?}", r.map(|r| r.text)))
            });
            assert_eq!(s.finish(), None);
            out
        };
        assert_eq!(whole.len(), 2);
        for size in [1, 2, 3, 7, 64] {
            let mut out = Vec::new();
            let mut buf = Vec::new();
            let mut s = Splitter::new(&limits, &mut buf);
            for piece in FILE.as_bytes().chunks(size) {
                s.feed(piece, &mut |r| out.push(format!("{:?}", r.map(|r| r.text))));
            }
            assert_eq!(s.finish(), None, "chunks of {size}");
            assert_eq!(out, whole, "chunks of {size}");
        }
    }

    #[test]
    fn what_is_not_a_log_file_is_hashed_and_reported() {
        let limits = Limits::default();
        let cases: [(&str, Vec<u8>, &str); 6] = [
            (
                "another shape",
                gzip(b"{\"Other\": [1, {\"a\": \"]\"}]}"),
                "no Records",
            ),
            ("not JSON", gzip(b"hello"), "expected an object"),
            (
                "Records not an array",
                gzip(b"{\"Records\": 5}"),
                "not an array",
            ),
            (
                "cut short",
                gzip(b"{\"Records\": [{\"eventName\": \"a\""),
                "ends early",
            ),
            ("garbage after", gzip(b"{\"Records\": []} x"), "data after"),
            ("empty", gzip(b""), "empty"),
        ];
        for (name, body, why) in cases {
            let (_, s) = split(&body, &limits);
            let s = s.unwrap();
            let malformed = s.malformed.unwrap_or_default();
            assert!(malformed.contains(why), "{name}: {malformed}");
        }
        // Cut inside the gzip stream: the records before the cut are read, the hash is of
        // the bytes as stored (it cannot match a digest), and the file is reported.
        let whole = gzip(FILE.as_bytes());
        let cut = &whole[..whole.len() - 12];
        let (records, s) = split(cut, &limits);
        let s = s.unwrap();
        assert!(s.malformed.unwrap().contains("not valid gzip"));
        assert_eq!(s.sha256, crate::integrity::digest::sha256_hex(cut));
        assert!(records.len() <= 2);
        // Not gzip at all (a transport already decompressed it): read as is.
        let (records, s) = split(FILE.as_bytes(), &limits);
        assert_eq!(records.len(), 2);
        assert_eq!(s.unwrap().malformed, None);
    }

    #[test]
    fn caps_bound_what_a_hostile_file_costs() {
        let limits = Limits {
            max_inflated: 1 << 20,
            max_record: 200,
            max_records: 3,
        };
        // A gzip bomb: far more inflated than the cap.
        let bomb = gzip(&vec![b' '; 8 << 20]);
        assert!(bomb.len() < 64 << 10);
        let (_, s) = split(&bomb, &limits);
        assert!(s.unwrap_err().0.contains("inflates past 1 MiB"));
        assert!(hash(&bomb, limits.max_inflated).is_err());
        // A record over the cap is skipped and reported; the others are read.
        let big = format!(
            r#"{{"Records":[{{"eventSource":"a","eventName":"b","x":"{}"}},{{"eventSource":"c","eventName":"d"}}]}}"#,
            "y".repeat(1000)
        );
        let (records, s) = split(&gzip(big.as_bytes()), &limits);
        assert_eq!(
            records[0],
            "#0: not JSON: larger than 0 KiB (limit bucket.max_record_size)"
        );
        assert_eq!(records[1], "c/d");
        assert!(s.unwrap().malformed.unwrap().contains("1 record(s) larger"));
        // Records past the count cap are not handed out.
        let many = format!(
            "{{\"Records\":[{}]}}",
            [r#"{"eventSource":"a","eventName":"b"}"#; 5].join(",")
        );
        let (records, s) = split(&gzip(many.as_bytes()), &limits);
        assert_eq!(records.len(), 3);
        assert!(
            s.unwrap()
                .malformed
                .unwrap()
                .contains("more than 3 records")
        );
    }

    #[test]
    fn trailing_gzip_members_are_seen() {
        let mut twice = gzip(FILE.as_bytes());
        twice.extend(gzip(b"more"));
        let (_, s) = split(&twice, &Limits::default());
        assert!(s.unwrap().trailing_data);
        assert!(hash(&twice, 1 << 20).unwrap().1);
    }
}
