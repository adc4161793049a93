//! S3 request bodies as CloudTrail shows them in `requestParameters`: an XML document becomes
//! JSON, elements with text become strings, repeated elements become lists (hence a lifecycle
//! `Rule` is an object or a list in real records), attributes such as `xmlns` become fields.

use serde_json::{Map, Value};
use xmlparser::{ElementEnd, Token, Tokenizer};

/// `text` as XML character data.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The root element's name and its content, or `None` if the body is not XML.
pub fn document(body: &[u8]) -> Option<(String, Value)> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('<') {
        return None;
    }
    // A stack of open elements: name, attributes/children, text.
    let mut stack: Vec<(String, Map<String, Value>, String)> = Vec::new();
    let mut root = None;
    for token in Tokenizer::from(text) {
        match token.ok()? {
            Token::ElementStart { local, .. } => {
                stack.push((local.to_string(), Map::new(), String::new()));
            }
            Token::Attribute {
                prefix,
                local,
                value,
                ..
            } => {
                let name = if prefix.is_empty() {
                    local.to_string()
                } else {
                    format!("{prefix}:{local}")
                };
                stack
                    .last_mut()?
                    .1
                    .insert(name, Value::String(value.to_string()));
            }
            Token::Text { text } => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(text.as_str());
                }
            }
            Token::ElementEnd { end, .. } => {
                if let ElementEnd::Open = end {
                    continue;
                }
                let (name, fields, text) = stack.pop()?;
                let value = if fields.is_empty() {
                    Value::String(text.trim().to_string())
                } else {
                    Value::Object(fields)
                };
                match stack.last_mut() {
                    Some(parent) => add_child(&mut parent.1, name, value),
                    None => root = Some((name, value)),
                }
            }
            _ => {}
        }
    }
    root
}

fn add_child(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            fields.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(escape("a&b<c>\"d'e"), "a&amp;b&lt;c&gt;&quot;d&apos;e");
        assert_eq!(
            escape("arn:aws:sts::1:assumed-role/r/s=1,a@b"),
            "arn:aws:sts::1:assumed-role/r/s=1,a@b"
        );
    }

    #[test]
    fn one_rule_is_an_object_two_are_a_list() {
        let (name, v) = document(
            b"<LifecycleConfiguration xmlns=\"x\"><Rule><ID>a</ID></Rule></LifecycleConfiguration>",
        )
        .unwrap();
        assert_eq!(name, "LifecycleConfiguration");
        assert_eq!(v, json!({"xmlns": "x", "Rule": {"ID": "a"}}));
        let (_, v) = document(
            b"<LifecycleConfiguration><Rule><ID>a</ID></Rule><Rule><ID>b</ID></Rule></LifecycleConfiguration>",
        )
        .unwrap();
        assert_eq!(v["Rule"], json!([{"ID": "a"}, {"ID": "b"}]));
    }

    #[test]
    fn not_xml_is_none() {
        assert!(document(b"").is_none());
        assert!(document(b"{\"a\":1}").is_none());
        assert!(document(b"<unclosed").is_none());
    }
}
