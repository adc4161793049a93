//! The condition language of custom policies and detections, as parsed from YAML.
//!
//! A condition is a test on one field of a document, or `all`, `any`, `not` of others. Custom
//! policies query the trail document; detections query a CloudTrail record. Which document a
//! condition reads is part of its type (`R`), so a path is checked against the right roots
//! when the file loads:
//!
//! ```yaml
//! condition:
//!   all:
//!     - { path: trail.sns_topic_arn, exists: true }
//!     - { path: status.latest_delivery_time, age_less_than: 1h }
//!     - not: { path: bucket.versioning, eq: suspended }
//! ```
//!
//! Evaluation lives in `evaluate::condition`; the trail document in `evaluate::document`.

use super::yaml::{HumanDuration, Pattern};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// The document a condition reads: the top-level fields its paths may start with.
pub trait PathRoots: fmt::Debug + Clone + PartialEq + 'static {
    const ROOTS: &'static [&'static str];
}

/// Paths into the trail document (custom policies).
#[derive(Debug, Clone, PartialEq)]
pub struct TrailPaths;

impl PathRoots for TrailPaths {
    const ROOTS: &'static [&'static str] =
        &["account", "trail", "status", "selectors", "bucket", "key"];
}

/// Paths into a CloudTrail record, plus `derived` facts computed from it (detections).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPaths;

impl PathRoots for RecordPaths {
    const ROOTS: &'static [&'static str] = &[
        "eventVersion",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "userIdentity",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "errorCode",
        "errorMessage",
        "readOnly",
        "eventType",
        "managementEvent",
        "recipientAccountId",
        "resources",
        "derived",
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition<R: PathRoots = TrailPaths> {
    All(Vec<Condition<R>>),
    Any(Vec<Condition<R>>),
    Not(Box<Condition<R>>),
    Test { path: FieldPath<R>, op: Operator },
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

impl<'de, R: PathRoots> Deserialize<'de> for Condition<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ConditionVisitor::<R>(PhantomData))
    }
}

struct ConditionVisitor<R>(PhantomData<R>);

impl<'de, R: PathRoots> Visitor<'de> for ConditionVisitor<R> {
    type Value = Condition<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition: all, any, not, or path with one operator")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Condition<R>, A::Error> {
        let mut combinators = Vec::new();
        let mut path: Option<FieldPath<R>> = None;
        let mut ops = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "all" => combinators.push(Condition::All(map.next_value()?)),
                "any" => combinators.push(Condition::Any(map.next_value()?)),
                "not" => combinators.push(Condition::Not(Box::new(map.next_value()?))),
                "path" => path = Some(map.next_value()?),
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

/// A dotted path such as `bucket.lifecycle_rules.0.expiration_days`, checked at load against
/// the roots of the document it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath<R> {
    pub text: String,
    roots: PhantomData<R>,
}

impl<R> From<&str> for FieldPath<R> {
    fn from(text: &str) -> Self {
        FieldPath {
            text: text.to_string(),
            roots: PhantomData,
        }
    }
}

impl<R> fmt::Display for FieldPath<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<R: PathRoots> super::yaml::ParseScalar for FieldPath<R> {
    const EXPECTING: &'static str = "a dotted path into the document";
    fn parse(text: &str) -> Result<Self, String> {
        let root = text.split('.').next().unwrap_or_default();
        if text.split('.').any(str::is_empty) {
            return Err(format!("path {text:?} has an empty segment"));
        }
        if !R::ROOTS.contains(&root) {
            return Err(format!(
                "path {text:?} must start with one of: {}",
                R::ROOTS.join(", ")
            ));
        }
        Ok(FieldPath::from(text))
    }
}

impl<'de, R: PathRoots> Deserialize<'de> for FieldPath<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::yaml::deserialize_scalar(d)
    }
}

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
