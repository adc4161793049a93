//! Where a nested JSON value (an object or an array) ends, found 64 bytes at a time.
//!
//! Most of a CloudTrail record's bytes lie in nested values that nothing reads at first
//! (`userIdentity`, `requestParameters`, `responseElements`, `resources`), and the log file
//! splitter has to pass over them to find where the record ends ([`crate::record_head`]).
//! Going byte by byte, or string by string, costs several instructions a byte. Here each
//! 64-byte block is turned into bitmasks of its quotes, backslashes, opening and closing
//! brackets (with SSE2 on x86-64, 16 bytes per comparison), the bytes inside strings are
//! found from the quotes at once (a prefix XOR, as simdjson's first stage does), and a block
//! whose closing brackets cannot bring the depth to zero is passed over whole.
//!
//! Nested values are not validated: `{` and `[` count alike, and so do `}` and `]`. A record
//! a detection looks at is parsed whole later, and a broken one reported then.

/// The bitmasks of one block: bit `i` is byte `i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Classes {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

const BLOCK: usize = 64;

/// The index after the object or array that opens at `b[open]` (a `{` or `[`), or `None`
/// when it does not end within `b` (it continues in the next chunk, or is not closed).
pub fn end_of_nested(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0u32;
    // Carried from one block to the next: inside a string (all ones or zero), and whether
    // the block's first byte is escaped by a backslash ending the one before.
    let mut in_string = 0u64;
    let mut escaped_first = false;
    let mut start = open;
    while start < b.len() {
        let rest = &b[start..];
        let classes = match rest.first_chunk::<BLOCK>() {
            Some(block) => classify(block),
            None => {
                // The tail, padded with spaces: no class of its own.
                let mut block = [b' '; BLOCK];
                block[..rest.len()].copy_from_slice(rest);
                classify(&block)
            }
        };
        let escaped = escaped_bytes(classes.backslash, &mut escaped_first);
        let quotes = classes.quote & !escaped;
        // Bit `i` is set when byte `i` lies in a string, its opening quote included and its
        // closing quote not: brackets there are text.
        let strings = prefix_xor(quotes) ^ in_string;
        in_string = ((strings as i64) >> 63) as u64;
        let opens = classes.open & !strings;
        let closes = classes.close & !strings;
        if opens | closes == 0 {
            // Most blocks of a record: text, with no bracket to count.
        } else if depth > closes.count_ones() {
            // The depth cannot reach zero in this block.
            depth = depth + opens.count_ones() - closes.count_ones();
        } else {
            let mut brackets = opens | closes;
            while brackets != 0 {
                let at = brackets.trailing_zeros();
                brackets &= brackets - 1;
                if opens >> at & 1 == 1 {
                    depth += 1;
                } else {
                    depth -= 1;
                    if depth == 0 {
                        return Some(start + at as usize + 1);
                    }
                }
            }
        }
        start += BLOCK;
    }
    None
}

/// Bytes escaped by a backslash: each backslash that is not itself escaped escapes the byte
/// after it. `escaped_first` says whether bit 0 is escaped, and is set for the next block.
/// Backslashes are rare in CloudTrail's text, so one step per backslash is cheap.
#[inline]
fn escaped_bytes(backslash: u64, escaped_first: &mut bool) -> u64 {
    let mut escaped = u64::from(*escaped_first);
    *escaped_first = false;
    let mut rest = backslash;
    while rest != 0 {
        let at = rest.trailing_zeros();
        rest &= rest - 1;
        if escaped >> at & 1 == 0 {
            if at == 63 {
                *escaped_first = true;
            } else {
                escaped |= 1 << (at + 1);
            }
        }
    }
    escaped
}

/// Bit `i` of the result is the XOR of bits `0..=i` of `x`.
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The classes of a block, 16 bytes per comparison. SSE2 is part of every x86-64;
/// `safe_arch` wraps its intrinsics (and their loads) safely, so this crate keeps
/// `unsafe_code = "forbid"`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn classify(block: &[u8; BLOCK]) -> Classes {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let (quote, backslash) = (
        set_splat_i8_m128i(b'"' as i8),
        set_splat_i8_m128i(b'\\' as i8),
    );
    // `[` and `{` differ by 0x20 alone, as do `]` and `}`: one comparison each after an OR.
    let (case, open, close) = (
        set_splat_i8_m128i(0x20),
        set_splat_i8_m128i(b'{' as i8),
        set_splat_i8_m128i(b'}' as i8),
    );
    let mut c = Classes::default();
    let (parts, _) = block.as_chunks::<16>();
    for (k, part) in parts.iter().enumerate() {
        let v = load_unaligned_m128i(part);
        let folded = bitor_m128i(v, case);
        let mask = |m| u64::from(move_mask_i8_m128i(m) as u16) << (16 * k);
        c.quote |= mask(cmp_eq_mask_i8_m128i(v, quote));
        c.backslash |= mask(cmp_eq_mask_i8_m128i(v, backslash));
        c.open |= mask(cmp_eq_mask_i8_m128i(folded, open));
        c.close |= mask(cmp_eq_mask_i8_m128i(folded, close));
    }
    c
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn classify(block: &[u8; BLOCK]) -> Classes {
    classify_bytewise(block)
}

/// The same classes, one byte at a time: elsewhere than x86-64, and what the tests hold the
/// fast version to.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn classify_bytewise(block: &[u8; BLOCK]) -> Classes {
    let mut c = Classes::default();
    for (i, byte) in block.iter().enumerate() {
        let bit = 1u64 << i;
        match byte {
            b'"' => c.quote |= bit,
            b'\\' => c.backslash |= bit,
            b'{' | b'[' => c.open |= bit,
            b'}' | b']' => c.close |= bit,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The simple reading the block version must agree with: byte by byte.
    fn end_bytewise(b: &[u8], i: usize) -> Option<usize> {
        let (mut depth, mut in_string, mut escape) = (0u32, false, false);
        for (at, &c) in b.iter().enumerate().skip(i) {
            if in_string {
                match (escape, c) {
                    (true, _) => escape = false,
                    (false, b'\\') => escape = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(at + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }

    #[test]
    fn finds_the_end_of_nested_values() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{}"#, Some(r#"{}"#)),
            (r#"[1,[2],{"a":[]}] ,"#, Some(r#"[1,[2],{"a":[]}]"#)),
            (r#"{"a":"}]"}}"#, Some(r#"{"a":"}]"}"#)),
            (r#"{"a":"\"}"}}"#, Some(r#"{"a":"\"}"}"#)),
            (r#"{"a":"\\"}}"#, Some(r#"{"a":"\\"}"#)),
            (r#"{"a":"\\\"}"}}"#, Some(r#"{"a":"\\\"}"}"#)),
            (r#"{"a":"\\\\"}, {"#, Some(r#"{"a":"\\\\"}"#)),
            // Not closed within the text: the next chunk has the rest.
            (r#"{"a":[1,2]"#, None),
            (r#"{"a":"}"#, None),
            (r#"{"a":"\"#, None),
        ];
        for (text, expected) in cases {
            let end = end_of_nested(text.as_bytes(), 0);
            assert_eq!(end.map(|e| &text[..e]), *expected, "{text}");
        }
    }

    /// Each top-level nested value of a record, with strings holding brackets and quotes
    /// between them, at every offset from a block boundary.
    #[test]
    fn finds_the_end_of_each_nested_value_of_a_record() {
        for pad in 0..BLOCK + 2 {
            let text = format!(
                r#"{{"a":{{"b":"]"}},"s":"{{[\"{}","c":[1,{{}}],"l":"{}","d":{{"e":"}}"}},"f":[]}}"#,
                " ".repeat(pad),
                "y".repeat(70)
            );
            let b = text.as_bytes();
            // The top-level nested values, found byte by byte.
            let mut opens = Vec::new();
            let mut at = 1;
            while let Some(next) = b[at..].iter().position(|c| matches!(c, b'{' | b'[' | b'"')) {
                at += next;
                if b[at] == b'"' {
                    // Past the string: a backslash takes the byte after it.
                    at += 1;
                    while b[at] != b'"' {
                        at += if b[at] == b'\\' { 2 } else { 1 };
                    }
                    at += 1;
                    continue;
                }
                opens.push(at);
                at = end_bytewise(b, at).unwrap();
            }
            assert_eq!(opens.len(), 4, "{text}");
            for open in opens {
                assert_eq!(
                    end_of_nested(b, open),
                    end_bytewise(b, open),
                    "{text} at {open}"
                );
            }
        }
    }

    /// Values laid across block boundaries at every offset: strings holding brackets,
    /// backslash runs of each length (a run ending a block escapes the next block's first
    /// byte), brackets nested deeper than a block's closes.
    #[test]
    fn agrees_with_the_bytewise_reading_across_block_boundaries() {
        let pieces: &[&str] = &[
            r#"{"k":"v"}"#,
            r#""}]{[""#,
            r#""a\"b""#,
            r#""\\""#,
            r#""\\\\\\""#,
            r#""\\\"}""#,
            r#"[[[[[[[[[[1]]]]]]]]]]"#,
            r#"{"policy":"{\"Statement\":[{\"Effect\":\"Allow\"}]}"}"#,
            "123",
            " \n\t",
        ];
        for pad in 0..BLOCK + 3 {
            for (n, piece) in pieces.iter().enumerate() {
                let mut text = String::from("{\"x\":[");
                text.push_str(&" ".repeat(pad));
                for other in pieces.iter().cycle().skip(n).take(pieces.len()) {
                    text.push_str(other);
                    text.push(',');
                }
                text.push_str(piece);
                text.push_str("]} ,{\"next\":1}");
                let b = text.as_bytes();
                assert_eq!(end_of_nested(b, 0), end_bytewise(b, 0), "{text}");
                assert!(end_of_nested(b, 0).is_some(), "{text}");
                for cut in [b.len() / 2, b.len() - 14] {
                    assert_eq!(
                        end_of_nested(&b[..cut], 0),
                        end_bytewise(&b[..cut], 0),
                        "{text} cut at {cut}"
                    );
                }
            }
        }
    }

    /// A JSON value of strings made of the bytes that matter here, and of nested values.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let text = prop::collection::vec(
            prop::sample::select(vec!['"', '\\', '{', '}', '[', ']', 'a', ' ', 'é']),
            0..12,
        )
        .prop_map(|chars| serde_json::Value::String(chars.into_iter().collect()));
        text.prop_recursive(5, 80, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-z\\\\\"{}]{0,4}", inner), 0..6)
                    .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any array, at any offset from a block boundary, ends where serde_json wrote it to.
        #[test]
        fn ends_where_serde_json_wrote_the_value_to(
            value in prop::collection::vec(json_value(), 0..4),
            pad in 0..BLOCK,
        ) {
            let written = serde_json::to_string(&value).unwrap_or_default();
            let text = format!("{}{written} ,[\"after\"]", " ".repeat(pad));
            let end = end_of_nested(text.as_bytes(), pad);
            prop_assert_eq!(end, Some(pad + written.len()), "{}", text);
            // Cut before its end, it is not found.
            let cut = pad + written.len() - 1;
            prop_assert_eq!(end_of_nested(&text.as_bytes()[..cut], pad), None);
        }

        /// Whatever the bytes, no panic, and agreement with the bytewise reading wherever
        /// backslashes stay inside strings (the only place JSON has them).
        #[test]
        fn arbitrary_bytes_do_not_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            bytes.insert(0, b'[');
            let end = end_of_nested(&bytes, 0);
            if !bytes.contains(&b'\\') {
                prop_assert_eq!(end, end_bytewise(&bytes, 0));
            }
        }
    }

    #[test]
    fn classifies_like_the_bytewise_reading() {
        // Every byte value at every position: high bytes that share bits with `"`, `\`,
        // brackets and 0x20-folded lookalikes (`;`, `=`, 0xdb) must not match.
        for offset in 0..4 {
            let mut block = [0u8; BLOCK];
            for byte in 0..=255u8 {
                let at = (usize::from(byte) + offset * 61) % BLOCK;
                block[at] = byte;
                if at == BLOCK - 1 || byte == 255 {
                    assert_eq!(classify(&block), classify_bytewise(&block), "{block:?}");
                }
            }
        }
    }

    #[test]
    fn escapes_follow_backslash_runs() {
        let cases: &[(u64, bool, u64, bool)] = &[
            // backslashes, first escaped, escaped bytes, next block's first escaped
            (0, false, 0, false),
            (0, true, 1, false),
            (0b1, false, 0b10, false),
            (0b11, false, 0b10, false),
            (0b111, false, 0b1010, false),
            (0b1, true, 0b1, false),
            (1 << 63, false, 0, true),
            (0b11 << 62, false, 1 << 63, false),
            (0b111 << 61, false, 1 << 62, true),
        ];
        for &(backslash, first, escaped, next) in cases {
            let mut carry = first;
            assert_eq!(
                escaped_bytes(backslash, &mut carry),
                escaped,
                "{backslash:b}"
            );
            assert_eq!(carry, next, "{backslash:b}");
        }
    }

    #[test]
    fn prefix_xor_marks_the_bytes_between_quotes() {
        assert_eq!(prefix_xor(0b1001), 0b0111);
        assert_eq!(prefix_xor(0b1), u64::MAX);
        assert_eq!(prefix_xor(1 << 63 | 1), u64::MAX >> 1);
    }
}
