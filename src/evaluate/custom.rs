//! Custom policies: a condition (see `config::condition`) evaluated over the trail document.
//!
//! Three-valued: a test on a field that could not be collected is unknown, and an unknown
//! that decides the result makes the policy `error`, never `pass`.

use super::document::{Lookup, TrailDocument};
use super::finding::{CheckResult, Verdict};
use crate::config::condition::{Condition, Operator};
use crate::posture::Unavailable;
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, PartialEq)]
enum Truth {
    True(String),
    False(String),
    Unknown(String),
}

pub fn custom(condition: &Condition, doc: &TrailDocument, now: DateTime<Utc>) -> CheckResult {
    match eval(condition, doc, now) {
        Truth::True(why) => Ok(Verdict::pass(why)),
        Truth::False(why) => Ok(Verdict::fail(why)),
        Truth::Unknown(why) => Err(Unavailable::new(why)),
    }
}

fn eval(c: &Condition, doc: &TrailDocument, now: DateTime<Utc>) -> Truth {
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
        Condition::Test { path, op } => test(path, op, doc, now),
    }
}

fn test(path: &str, op: &Operator, doc: &TrailDocument, now: DateTime<Utc>) -> Truth {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use crate::evaluate::testing::{lab_snapshot, unavailable};
    use std::path::Path;

    fn run(yaml: &str, snap: &crate::posture::Snapshot) -> CheckResult {
        let condition: Condition = parse_str(Path::new("t.yaml"), yaml).unwrap();
        let state = &snap.trails.as_ref().unwrap()[0];
        let doc = TrailDocument::build(state, snap);
        custom(&condition, &doc, crate::evaluate::testing::lab_now())
    }

    #[test]
    fn operators() {
        let s = lab_snapshot();
        assert!(run("{ path: trail.name, eq: lab }", &s).unwrap().passed);
        assert!(!run("{ path: trail.name, ne: lab }", &s).unwrap().passed);
        assert!(
            run(
                "{ path: trail.home_region, in: [us-east-1, eu-west-1] }",
                &s
            )
            .unwrap()
            .passed
        );
        assert!(
            run("{ path: trail.sns_topic_arn, exists: false }", &s)
                .unwrap()
                .passed
        );
        assert!(
            run("{ path: key.aliases.0, regex: \"^alias/\" }", &s)
                .unwrap()
                .passed
        );
        assert!(
            run(
                "{ path: bucket.lifecycle_rules.0.expiration_days, gte: 365 }",
                &s
            )
            .unwrap()
            .passed
        );
        assert!(
            !run(
                "{ path: bucket.lifecycle_rules.0.expiration_days, lte: 365 }",
                &s
            )
            .unwrap()
            .passed
        );
        assert!(
            run(
                "{ path: status.latest_delivery_time, age_less_than: 1h }",
                &s
            )
            .unwrap()
            .passed
        );
    }

    #[test]
    fn age_uses_now() {
        let s = lab_snapshot();
        let condition: Condition = parse_str(
            Path::new("t.yaml"),
            "{ path: status.latest_delivery_time, age_less_than: 10m }",
        )
        .unwrap();
        let state = &s.trails.as_ref().unwrap()[0];
        let doc = TrailDocument::build(state, &s);
        let delivered = state.status.as_ref().unwrap().latest_delivery_time.unwrap();
        let soon = delivered + chrono::Duration::minutes(5);
        let late = delivered + chrono::Duration::minutes(15);
        assert!(custom(&condition, &doc, soon).unwrap().passed);
        let v = custom(&condition, &doc, late).unwrap();
        assert!(!v.passed);
        assert!(v.message.contains("younger than 10m"), "{}", v.message);
    }

    #[test]
    fn combinators_and_unknowns() {
        let mut s = lab_snapshot();
        assert!(
            run(
                "all: [{ path: trail.name, eq: lab }, not: { path: trail.name, eq: x }]",
                &s
            )
            .unwrap()
            .passed
        );
        assert!(
            run(
                "any: [{ path: trail.name, eq: x }, { path: trail.name, eq: lab }]",
                &s
            )
            .unwrap()
            .passed
        );
        s.trails.as_mut().unwrap()[0].status = Err(unavailable("GetTrailStatus: denied"));
        // Unknown decides: error.
        let e = run("{ path: status.is_logging, eq: true }", &s).unwrap_err();
        assert!(e.reason.contains("denied"));
        // A false elsewhere decides without the unknown part.
        assert!(
            !run(
                "all: [{ path: status.is_logging, eq: true }, { path: trail.name, eq: x }]",
                &s
            )
            .unwrap()
            .passed
        );
        // A true elsewhere decides an any.
        assert!(
            run(
                "any: [{ path: status.is_logging, eq: true }, { path: trail.name, eq: lab }]",
                &s
            )
            .unwrap()
            .passed
        );
    }

    #[test]
    fn absent_fields_fail_comparisons() {
        let s = lab_snapshot();
        let v = run("{ path: trail.sns_topic_arn, regex: \".\" }", &s).unwrap();
        assert!(!v.passed);
        assert_eq!(v.message, "trail.sns_topic_arn is absent");
    }
}
