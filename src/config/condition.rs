//! The condition language of custom policies, as parsed from YAML.
//!
//! A condition is a test on one field of the trail document, or `all`, `any`, `not` of others:
//!
//! ```yaml
//! condition:
//!   all:
//!     - { path: trail.sns_topic_arn, exists: true }
//!     - { path: status.latest_delivery_time, age_less_than: 1h }
//!     - not: { path: bucket.versioning, eq: suspended }
//! ```
//!
//! Evaluation lives in `evaluate::custom`; the document in `evaluate::document`.

use super::yaml::{HumanDuration, Pattern};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Top-level sections of the trail document a path may start with.
pub const DOCUMENT_ROOTS: &[&str] = &["account", "trail", "status", "selectors", "bucket", "key"];

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test { path: String, op: Operator },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Exists(bool),
    Regex(Pattern),
    Gte(f64),
    Lte(f64),
    /// An RFC 3339 time no older than this.
    AgeLessThan(Duration),
}

impl Operator {
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Eq(_) => "eq",
            Operator::Ne(_) => "ne",
            Operator::In(_) => "in",
            Operator::Exists(_) => "exists",
            Operator::Regex(_) => "regex",
            Operator::Gte(_) => "gte",
            Operator::Lte(_) => "lte",
            Operator::AgeLessThan(_) => "age_less_than",
        }
    }
}

const KEYS: &[&str] = &[
    "all",
    "any",
    "not",
    "path",
    "eq",
    "ne",
    "in",
    "exists",
    "regex",
    "gte",
    "lte",
    "age_less_than",
];

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ConditionVisitor)
    }
}

struct ConditionVisitor;

impl<'de> Visitor<'de> for ConditionVisitor {
    type Value = Condition;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition: all, any, not, or path with one operator")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Condition, A::Error> {
        let mut combinators = Vec::new();
        let mut path: Option<String> = None;
        let mut ops = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "all" => combinators.push(Condition::All(map.next_value()?)),
                "any" => combinators.push(Condition::Any(map.next_value()?)),
                "not" => combinators.push(Condition::Not(Box::new(map.next_value()?))),
                "path" => path = Some(map.next_value::<PathText>()?.0),
                "eq" => ops.push(Operator::Eq(map.next_value()?)),
                "ne" => ops.push(Operator::Ne(map.next_value()?)),
                "in" => ops.push(Operator::In(map.next_value()?)),
                "exists" => ops.push(Operator::Exists(map.next_value()?)),
                "regex" => ops.push(Operator::Regex(map.next_value()?)),
                "gte" => ops.push(Operator::Gte(map.next_value()?)),
                "lte" => ops.push(Operator::Lte(map.next_value()?)),
                "age_less_than" => {
                    ops.push(Operator::AgeLessThan(map.next_value::<HumanDuration>()?.0))
                }
                other => return Err(de::Error::unknown_field(other, KEYS)),
            }
        }
        match (combinators.len(), path, ops.len()) {
            (1, None, 0) => Ok(combinators.pop().expect("one combinator")),
            (0, Some(path), 1) => Ok(Condition::Test {
                path,
                op: ops.pop().expect("one operator"),
            }),
            (0, Some(path), 0) => Err(de::Error::custom(format!(
                "condition on {path} needs one operator: eq, ne, in, exists, regex, gte, lte or age_less_than"
            ))),
            (0, Some(path), _) => Err(de::Error::custom(format!(
                "condition on {path} has {} operators; use all: to combine tests",
                ops.len()
            ))),
            (0, None, _) => Err(de::Error::custom(
                "a condition needs path and one operator, or one of all, any, not",
            )),
            _ => Err(de::Error::custom(
                "a condition is either all, any, not, or a path test; write one per list item",
            )),
        }
    }
}

/// A dotted path such as `bucket.lifecycle_rules.0.expiration_days`, checked at load.
struct PathText(String);

impl super::yaml::ParseScalar for PathText {
    const EXPECTING: &'static str = "a dotted path into the trail document";
    fn parse(text: &str) -> Result<Self, String> {
        let root = text.split('.').next().unwrap_or_default();
        if text.split('.').any(str::is_empty) {
            return Err(format!("path {text:?} has an empty segment"));
        }
        if !DOCUMENT_ROOTS.contains(&root) {
            return Err(format!(
                "path {text:?} must start with one of: {}",
                DOCUMENT_ROOTS.join(", ")
            ));
        }
        Ok(PathText(text.to_string()))
    }
}
super::yaml::scalar_deserialize!(PathText);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use std::path::Path;

    fn parse(text: &str) -> Result<Condition, crate::config::ConfigError> {
        parse_str(Path::new("p.yaml"), text)
    }

    #[test]
    fn nested_conditions() {
        let c = parse(
            "all:\n  - { path: trail.sns_topic_arn, exists: true }\n  - not: { path: bucket.versioning, in: [off, suspended] }\n  - { path: status.latest_delivery_time, age_less_than: 1h }\n",
        )
        .unwrap();
        let Condition::All(items) = c else {
            panic!("expected all")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[2],
            Condition::Test {
                path: "status.latest_delivery_time".into(),
                op: Operator::AgeLessThan(Duration::from_secs(3600))
            }
        );
    }

    #[test]
    fn errors_name_the_place() {
        let err = parse("all:\n  - { path: trial.name, eq: x }\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("must start with one of"), "{err}");

        let err = parse("path: trail.name\neq: a\nne: b\n").unwrap_err();
        assert!(err.message.contains("has 2 operators"), "{err}");

        let err = parse("path: trail.name\nregex: \"(\"\n").unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(8)));

        let err = parse("path: trail.name\nlike: x\n").unwrap_err();
        assert!(err.message.contains("unknown field `like`"), "{err}");
    }
}
