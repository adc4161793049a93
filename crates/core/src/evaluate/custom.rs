//! Custom policies: a condition (see `config::condition`) evaluated over the trail document.
//!
//! Three-valued: a test on a field that could not be collected is unknown, and an unknown
//! that decides the result makes the policy `error`, never `pass`.

use super::condition::{Truth, eval};
use super::document::TrailDocument;
use super::finding::{CheckResult, Verdict};
use crate::config::condition::Condition;
use crate::posture::Unavailable;
use chrono::{DateTime, Utc};

/// `pending_while`: while it holds, a condition that does not hold is `pending` (the trail is
/// too young for the evidence); when it cannot be told, the failure stands.
pub fn custom(
    condition: &Condition,
    pending_while: Option<&Condition>,
    doc: &TrailDocument,
    now: DateTime<Utc>,
) -> CheckResult {
    match eval(condition, doc, now) {
        Truth::True(why) => Ok(Verdict::pass(why)),
        Truth::False(why) => match pending_while.map(|p| eval(p, doc, now)) {
            Some(Truth::True(young)) => Ok(Verdict::pending(format!("{why}; pending: {young}"))),
            _ => Ok(Verdict::fail(why)),
        },
        Truth::Unknown(why) => Err(Unavailable::new(why)),
    }
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
        custom(&condition, None, &doc, crate::evaluate::testing::lab_now())
    }

    #[test]
    fn a_failing_condition_is_pending_while_the_trail_is_young() {
        let mut s = lab_snapshot();
        let condition: Condition = parse_str(
            Path::new("t.yaml"),
            "{ path: status.latest_delivery_time, age_less_than: 2h }",
        )
        .unwrap();
        let young: Condition = parse_str(
            Path::new("t.yaml"),
            "{ path: status.start_logging_time, age_less_than: 15m }",
        )
        .unwrap();
        let now = crate::evaluate::testing::lab_now();
        let verdict = |s: &crate::posture::Snapshot| {
            let state = &s.trails.as_ref().unwrap()[0];
            custom(
                &condition,
                Some(&young),
                &TrailDocument::build(state, s),
                now,
            )
            .unwrap()
        };
        assert!(verdict(&s).passed);
        let trails = s.trails.as_mut().unwrap();
        let status = trails[0].status.as_mut().unwrap();
        status.latest_delivery_time = None;
        status.start_logging_time = Some(now - chrono::Duration::minutes(2));
        let v = verdict(&s);
        assert!(v.pending, "{v:?}");
        let status = s.trails.as_mut().unwrap()[0].status.as_mut().unwrap();
        status.start_logging_time = Some(now - chrono::Duration::hours(3));
        let v = verdict(&s);
        assert!(!v.passed && !v.pending, "{v:?}");
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
        assert!(custom(&condition, None, &doc, soon).unwrap().passed);
        let v = custom(&condition, None, &doc, late).unwrap();
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
