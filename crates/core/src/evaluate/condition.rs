//! Three-valued evaluation of conditions (see `config::condition`) over a document: the trail
//! document for custom policies, a CloudTrail record for detections.
//!
//! A test on a field that could not be collected is unknown; an unknown that decides the
//! result stays unknown, so missing data never passes.

use crate::config::condition::{Condition, Operator, PathRoots};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The answer to a path lookup.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    Found(&'a Value),
    /// Collected, but the field is absent or null.
    Missing,
    Unavailable(String),
}

/// What a condition can read.
pub trait Document {
    fn lookup(&self, path: &str) -> Lookup<'_>;
}

/// A plain JSON value is a document with nothing unavailable. Numeric segments index lists.
impl Document for Value {
    fn lookup(&self, path: &str) -> Lookup<'_> {
        let mut at = self;
        for segment in path.split('.') {
            let next = match at {
                Value::Object(m) => m.get(segment),
                Value::Array(list) => segment.parse::<usize>().ok().and_then(|i| list.get(i)),
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => return Lookup::Missing,
            }
        }
        if at.is_null() {
            Lookup::Missing
        } else {
            Lookup::Found(at)
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Truth {
    True(String),
    False(String),
    Unknown(String),
}

pub fn eval<R: PathRoots>(c: &Condition<R>, doc: &impl Document, now: DateTime<Utc>) -> Truth {
    match c {
        Condition::All(items) => {
            let mut unknown = None;
            let mut reasons = Vec::new();
            for item in items {
                match eval(item, doc, now) {
                    Truth::False(why) => return Truth::False(why),
                    Truth::Unknown(why) => unknown = unknown.or(Some(why)),
                    Truth::True(why) => reasons.push(why),
                }
            }
            match unknown {
                Some(why) => Truth::Unknown(why),
                None => Truth::True(reasons.join("; ")),
            }
        }
        Condition::Any(items) => {
            let mut unknown = None;
            let mut reasons = Vec::new();
            for item in items {
                match eval(item, doc, now) {
                    Truth::True(why) => return Truth::True(why),
                    Truth::Unknown(why) => unknown = unknown.or(Some(why)),
                    Truth::False(why) => reasons.push(why),
                }
            }
            match unknown {
                Some(why) => Truth::Unknown(why),
                None => Truth::False(format!("none holds: {}", reasons.join("; "))),
            }
        }
        Condition::Not(inner) => match eval(inner, doc, now) {
            Truth::True(why) => Truth::False(format!("not expected: {why}")),
            Truth::False(why) => Truth::True(format!("as expected, {why}")),
            unknown => unknown,
        },
        Condition::Test { path, op } => test(&path.text, op, doc, now),
    }
}

fn test(path: &str, op: &Operator, doc: &impl Document, now: DateTime<Utc>) -> Truth {
    let value = match doc.lookup(path) {
        Lookup::Unavailable(why) => return Truth::Unknown(why),
        Lookup::Missing => {
            return match op {
                Operator::Exists(false) => Truth::True(format!("{path} is absent")),
                _ => Truth::False(format!("{path} is absent")),
            };
        }
        Lookup::Found(v) => v,
    };
    let shown = show(value);
    let (holds, expectation) = match op {
        Operator::Exists(want) => (
            *want,
            if *want {
                "present".into()
            } else {
                "absent".into()
            },
        ),
        Operator::Eq(want) => (same(value, want), format!("equal to {}", show(want))),
        Operator::Ne(want) => (!same(value, want), format!("not equal to {}", show(want))),
        Operator::In(list) => (
            list.iter().any(|w| same(value, w)),
            format!(
                "one of {}",
                list.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
        ),
        Operator::Regex(p) => (
            p.0.is_match(&plain_text(value)),
            format!("matching /{}/", p.0.as_str()),
        ),
        Operator::Gte(n) | Operator::Lte(n) => {
            let Some(v) = value.as_f64() else {
                return Truth::False(format!("{path} is {shown}, not a number"));
            };
            match op {
                Operator::Gte(_) => (v >= *n, format!("at least {n}")),
                _ => (v <= *n, format!("at most {n}")),
            }
        }
        Operator::AgeLessThan(limit) => {
            let Some(t) = value
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            else {
                return Truth::False(format!("{path} is {shown}, not a time"));
            };
            let age = now.signed_duration_since(t.with_timezone(&Utc));
            let max = chrono::Duration::from_std(*limit).unwrap_or(chrono::Duration::MAX);
            (
                age < max,
                format!("younger than {}", humantime::format_duration(*limit)),
            )
        }
    };
    let text = format!("{path} is {shown}, expected {expectation}");
    if holds {
        Truth::True(text)
    } else {
        Truth::False(text)
    }
}

/// Equality that treats 5 and 5.0 alike and compares strings case-sensitively.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show(v: &Value) -> String {
    v.to_string()
}
