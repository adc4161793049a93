//! A record's `eventSource` and `eventName`, read from its text without building anything.
//! Most records of a log file match no detection, and these two fields are all that decides
//! it, so this walk is what every record costs.
//!
//! The walk goes through the top-level keys, jumps over strings with memchr and over nested
//! values by depth. Whatever it cannot read plainly gives `None`: escapes in a key or in
//! those two values, either key twice, a value of another type, anything but an object of
//! key-value pairs. The caller then parses the record with serde_json, whose error names
//! what is wrong. Nested values are not validated here: a record a detection looks at is
//! parsed whole later, and a broken one is reported then.

use memchr::memchr2;

/// `(eventSource, eventName)` of a record, or `None` for the full parser to decide.
pub fn source_and_name(text: &str) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    let mut i = spaces(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = spaces(b, i + 1);
    let (mut source, mut name) = (None, None);
    loop {
        let (key, next) = plain_string(text, i)?;
        i = spaces(b, next);
        if *b.get(i)? != b':' {
            return None;
        }
        i = spaces(b, i + 1);
        let slot = match key {
            "eventSource" => Some(&mut source),
            "eventName" => Some(&mut name),
            _ => None,
        };
        match slot {
            // Twice: which one counts is the full parser's call (it refuses the record).
            Some(Some(_)) => return None,
            Some(slot) => {
                let (value, next) = plain_string(text, i)?;
                *slot = Some(value);
                i = next;
            }
            None => i = skip_value(b, i)?,
        }
        i = spaces(b, i);
        match *b.get(i)? {
            b',' => i = spaces(b, i + 1),
            b'}' if spaces(b, i + 1) == b.len() => return Some((source?, name?)),
            _ => return None,
        }
    }
}

fn spaces(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The string at `i` when it has no escape: its text and the index after its closing quote.
fn plain_string(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    if *b.get(i)? != b'"' {
        return None;
    }
    let len = memchr2(b'"', b'\\', &b[i + 1..])?;
    if b[i + 1 + len] == b'\\' {
        return None;
    }
    // Both ends are at a quote: character boundaries.
    Some((text.get(i + 1..i + 1 + len)?, i + len + 2))
}

/// The index after the string at `i` (escapes passed over).
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

/// The index after the value at `i`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
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
}
