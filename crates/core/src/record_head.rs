//! A record's `eventSource` and `eventName`, read from its text without building anything.
//! Most records of a log file match no detection, and these two fields are all that decides
//! it, so this walk is what every record costs: the log file splitter walks each record in
//! place with it, once, finding its end and the two fields together.
//!
//! The walk goes through the top-level keys, passes over strings eight bytes at a time and
//! over nested values 64 bytes at a time ([`crate::json_nesting`]). Whatever it cannot read
//! plainly gives `None`: escapes in a key or in those two values, either key twice, a value
//! of another type, a token that is no JSON literal or number, anything but an object of
//! key-value pairs. The caller then takes the slow path (serde_json), whose error names what
//! is wrong. Nested values are not validated here: a record a detection looks at is parsed
//! whole later, and a broken one is reported then.

use std::ops::Range;

/// A record walked to its end: its length (from the start of the text given, spaces
/// included) and where its `eventSource` and `eventName` values are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    pub len: usize,
    pub source: Range<usize>,
    pub name: Range<usize>,
}

/// `(eventSource, eventName)` of a record, or `None` for the full parser to decide.
pub fn source_and_name(text: &str) -> Option<(&str, &str)> {
    let w = walk(text.as_bytes())?;
    if spaces(text.as_bytes(), w.len) != text.len() {
        return None;
    }
    // Both ranges lie between quotes: character boundaries.
    Some((text.get(w.source)?, text.get(w.name)?))
}

/// Walks the object at the start of `b` to its closing brace; what follows is not looked
/// at, so a log file's splitter can walk a record in place.
pub fn walk(b: &[u8]) -> Option<Walked> {
    let mut i = spaces(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = spaces(b, i + 1);
    let (mut source, mut name) = (None, None);
    loop {
        let key = plain_string(b, i)?;
        i = spaces(b, key.end + 1);
        if *b.get(i)? != b':' {
            return None;
        }
        i = spaces(b, i + 1);
        let slot = match &b[key] {
            b"eventSource" => Some(&mut source),
            b"eventName" => Some(&mut name),
            _ => None,
        };
        match slot {
            // Twice: which one counts is the full parser's call (it refuses the record).
            Some(Some(_)) => return None,
            Some(slot) => {
                let value = plain_string(b, i)?;
                i = value.end + 1;
                *slot = Some(value);
            }
            None => i = skip_value(b, i)?,
        }
        i = spaces(b, i);
        match *b.get(i)? {
            b',' => i = spaces(b, i + 1),
            b'}' => {
                return Some(Walked {
                    len: i + 1,
                    source: source?,
                    name: name?,
                });
            }
            _ => return None,
        }
    }
}

#[inline]
fn spaces(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The first quote or backslash in `b`. Eight bytes at a time: CloudTrail's strings are
/// short, and memchr's setup costs more than it saves on them.
#[inline]
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero exactly where the lowest set high bit of this mask is; bits
    // above the first zero byte may be false, but only the first is used.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while let Some(word) = b.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let w = u64::from_le_bytes(*word);
        let found =
            zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| i + p)
}

/// The text of the string at `i` when it has no escape (its closing quote is at `end`).
#[inline]
fn plain_string(b: &[u8], i: usize) -> Option<Range<usize>> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let len = quote_or_backslash(b.get(i + 1..)?)?;
    if b[i + 1 + len] == b'\\' {
        return None;
    }
    Some(i + 1..i + 1 + len)
}

/// The index after the string at `i` (escapes passed over).
#[inline]
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += quote_or_backslash(b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

/// The index after the value at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => crate::json_nesting::end_of_nested(b, i),
        _ => {
            let len = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(b.len() - i);
            let token = &b[i..i + len];
            let literal = matches!(token, b"true" | b"false" | b"null");
            let number = !token.is_empty()
                && token
                    .iter()
                    .all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
            (literal || number).then_some(i + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case, and what serde_json says of it: the walk agrees, or leaves it to serde.
    #[test]
    fn reads_plain_records_and_leaves_the_rest_to_the_full_parser() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","arn":"a\"b"},"eventTime":"2026-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","n":-1.5e3,"ok":true,"x":null,"list":[1,{"eventName":"Nested"}]}"#,
                Some(("s3.amazonaws.com", "GetObject")),
            ),
            (
                " { \"eventName\" : \"B\" , \"eventSource\" : \"a\" } \n",
                Some(("a", "B")),
            ),
            (r#"{"eventSource":"a"}"#, None),
            (
                r#"{"eventSource":"a","eventName":"b","eventName":"c"}"#,
                None,
            ),
            (
                r#"{"eventSource":"a","eventName":"St\u006fpLogging"}"#,
                None,
            ),
            (r#"{"eventSource":"a","eventName":5}"#, None),
            (r#"{"eventSource":"a","eventName":"b","x":tru}"#, None),
            (r#"{"eventSource":"a","eventName":"b","x":{"y":"]"}"#, None),
            (r#"{"eventSource":"a","eventName":"b"} trailing"#, None),
            (r#"{"eventSource":"a","eventName":"b",}"#, None),
            ("[1]", None),
            ("", None),
            (
                r#"{"eventSource":"a","eventName":"b","x":"unterminated}"#,
                None,
            ),
        ];
        for (text, expected) in cases {
            let walked = source_and_name(text);
            assert_eq!(walked, *expected, "{text}");
            // Where the walk answers, the full parser agrees on both fields.
            if let Some((source, name)) = walked {
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                assert_eq!(
                    (v["eventSource"].as_str(), v["eventName"].as_str()),
                    (Some(source), Some(name))
                );
            }
        }
    }

    #[test]
    fn walks_a_record_in_place_and_stops_at_its_end() {
        let text = br#"{"eventSource":"s","eventName":"n","x":[{"y":"}"}]} ,{"next":1}"#;
        let w = walk(text).unwrap();
        assert_eq!(
            &text[..w.len],
            br#"{"eventSource":"s","eventName":"n","x":[{"y":"}"}]}"#
        );
        assert_eq!(
            (&text[w.source.clone()], &text[w.name.clone()]),
            (&b"s"[..], &b"n"[..])
        );
        // Cut anywhere before its end, it is not walked: the splitter takes it byte by byte.
        for cut in 0..w.len {
            assert_eq!(walk(&text[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn finds_the_first_quote_or_backslash_at_any_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut b = vec![b'a'; len];
                let expected = (at < len).then(|| {
                    b[at] = if at % 2 == 0 { b'"' } else { b'\\' };
                    at
                });
                if let Some(at) = expected {
                    // A later match does not hide the first.
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                }
                assert_eq!(quote_or_backslash(&b), expected, "len {len}, at {at}");
            }
        }
        // Bytes that differ from a quote by one bit, and high bytes, are no match.
        assert_eq!(
            quote_or_backslash("#!\u{e9}\u{a2}cb]\x7f\x00\x21\x23".as_bytes()),
            None
        );
    }
}
