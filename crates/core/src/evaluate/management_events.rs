//! Management events, read and write, in every region: a multi-region trail with global
//! service events whose selectors (basic, or advanced read by their field conditions, never
//! by name) record every management event.
//!
//! This is a promise of the account, not of each trail: one trail that covers everything is
//! enough, and a second trail kept for data events does not make it fail.

use super::finding::{CheckResult, Verdict};
use crate::posture::{
    AdvancedSelector, BasicSelector, EventSelectors, ReadWriteType, TrailState, Unavailable,
};

/// Passes when any of `states` records every management event everywhere.
pub fn any_trail_covers(states: &[&TrailState]) -> CheckResult {
    let mut shortfalls = Vec::new();
    let mut unknown = Vec::new();
    for state in states {
        let name = &state.trail.name;
        match management_events(state) {
            Ok(v) if v.passed => return Ok(Verdict::pass(format!("trail {name}: {}", v.message))),
            Ok(v) => shortfalls.push(format!("trail {name}: {}", v.message)),
            Err(e) => unknown.push(format!("trail {name}: {e}")),
        }
    }
    if !unknown.is_empty() {
        return Err(Unavailable::new(format!(
            "no trail is known to record all management events; unknown: {}{}",
            unknown.join("; "),
            if shortfalls.is_empty() {
                String::new()
            } else {
                format!("; short: {}", shortfalls.join("; "))
            }
        )));
    }
    Ok(Verdict::fail(shortfalls.join("; ")))
}

/// What a set of selectors records of management events, unrestricted by event source.
#[derive(Debug, Default, PartialEq, Eq)]
struct Coverage {
    read: bool,
    write: bool,
    /// Why a selector that records management events does not count in full.
    restrictions: Vec<String>,
}

pub fn management_events(state: &TrailState) -> CheckResult {
    let trail = &state.trail;
    let mut problems = Vec::new();
    if !trail.is_multi_region_trail {
        problems.push("trail is not multi-region".to_string());
    }
    if !trail.include_global_service_events {
        problems.push("global service events (IAM, STS, CloudFront) are not included".to_string());
    }
    let coverage = match &state.selectors {
        Ok(EventSelectors::Basic(selectors)) => basic_coverage(selectors),
        Ok(EventSelectors::Advanced(selectors)) => advanced_coverage(selectors),
        // What the trail description shows is enough to fail; unknown selectors add to it.
        Err(e) if !problems.is_empty() => {
            problems.push(format!("event selectors unknown ({e})"));
            return Ok(Verdict::fail(problems.join("; ")));
        }
        Err(e) => return Err(e.clone()),
    };
    match (coverage.read, coverage.write) {
        (true, true) => {}
        (false, false) => problems.push("management events are not recorded".to_string()),
        (true, false) => problems.push("write management events are not recorded".to_string()),
        (false, true) => problems.push("read management events are not recorded".to_string()),
    }
    if !(coverage.read && coverage.write) {
        problems.extend(coverage.restrictions);
    }
    if problems.is_empty() {
        Ok(Verdict::pass(
            "multi-region trail records all read and write management events, global services included",
        ))
    } else {
        Ok(Verdict::fail(problems.join("; ")))
    }
}

/// Whether `selectors` record (read, write) management events of every source. Detections use
/// it on the selectors a PutEventSelectors call sets.
pub fn records_management(selectors: &EventSelectors) -> (bool, bool) {
    let c = match selectors {
        EventSelectors::Basic(s) => basic_coverage(s),
        EventSelectors::Advanced(s) => advanced_coverage(s),
    };
    (c.read, c.write)
}

fn basic_coverage(selectors: &[BasicSelector]) -> Coverage {
    let mut c = Coverage::default();
    for s in selectors.iter().filter(|s| s.include_management_events) {
        if !s.exclude_management_event_sources.is_empty() {
            c.restrictions.push(format!(
                "a selector excludes management events from {}",
                s.exclude_management_event_sources.join(", ")
            ));
            continue;
        }
        let (read, write) = match s.read_write_type {
            ReadWriteType::All => (true, true),
            ReadWriteType::ReadOnly => (true, false),
            ReadWriteType::WriteOnly => (false, true),
            ReadWriteType::Unrecognized => {
                c.restrictions
                    .push("a selector has a ReadWriteType this version does not know".into());
                continue;
            }
        };
        c.read |= read;
        c.write |= write;
    }
    c
}

/// Advanced selectors are OR-ed; within one, field conditions are AND-ed.
fn advanced_coverage(selectors: &[AdvancedSelector]) -> Coverage {
    let mut c = Coverage::default();
    for s in selectors {
        let label = s.name.as_deref().unwrap_or("unnamed");
        let mut management = false;
        let (mut read, mut write) = (true, true);
        let mut restricted = Vec::new();
        for f in &s.field_selectors {
            match f.field.as_str() {
                "eventCategory" => {
                    management = f.equals.iter().any(|v| v == "Management")
                        && !f.not_equals.iter().any(|v| v == "Management");
                }
                "readOnly" => {
                    let allows = |v: &str| {
                        (f.equals.is_empty() || f.equals.iter().any(|e| e == v))
                            && !f.not_equals.iter().any(|e| e == v)
                    };
                    read &= allows("true");
                    write &= allows("false");
                }
                field => restricted.push(format!("selector {label:?} limits {field}")),
            }
        }
        if !management {
            continue;
        }
        if !restricted.is_empty() {
            c.restrictions.extend(restricted);
            continue;
        }
        c.read |= read;
        c.write |= write;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::logging_trail;
    use crate::posture::FieldSelector;

    fn with(selectors: EventSelectors) -> TrailState {
        let mut s = logging_trail();
        s.selectors = Ok(selectors);
        s
    }

    fn field(name: &str, equals: &[&str], not_equals: &[&str]) -> FieldSelector {
        FieldSelector {
            field: name.into(),
            equals: equals.iter().map(|s| s.to_string()).collect(),
            not_equals: not_equals.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn basic(rw: ReadWriteType, include: bool, exclude: &[&str]) -> BasicSelector {
        BasicSelector {
            read_write_type: rw,
            include_management_events: include,
            exclude_management_event_sources: exclude.iter().map(|s| s.to_string()).collect(),
            data_resource_count: 0,
        }
    }

    #[test]
    fn basic_all_passes() {
        let s = with(EventSelectors::Basic(vec![basic(
            ReadWriteType::All,
            true,
            &[],
        )]));
        assert!(management_events(&s).unwrap().passed);
    }

    #[test]
    fn read_and_write_from_two_selectors_pass() {
        let s = with(EventSelectors::Basic(vec![
            basic(ReadWriteType::ReadOnly, true, &[]),
            basic(ReadWriteType::WriteOnly, true, &[]),
        ]));
        assert!(management_events(&s).unwrap().passed);
    }

    #[test]
    fn write_only_or_excluded_sources_fail() {
        let s = with(EventSelectors::Basic(vec![basic(
            ReadWriteType::WriteOnly,
            true,
            &[],
        )]));
        let v = management_events(&s).unwrap();
        assert_eq!(v.message, "read management events are not recorded");

        let s = with(EventSelectors::Basic(vec![basic(
            ReadWriteType::All,
            true,
            &["kms.amazonaws.com"],
        )]));
        let v = management_events(&s).unwrap();
        assert!(!v.passed);
        assert!(v.message.contains("kms.amazonaws.com"), "{}", v.message);
    }

    #[test]
    fn no_selectors_fail() {
        // moto answers a new trail with no selectors at all.
        let v = management_events(&with(EventSelectors::Basic(vec![]))).unwrap();
        assert_eq!(v.message, "management events are not recorded");
    }

    #[test]
    fn advanced_management_passes_whatever_its_name() {
        let s = with(EventSelectors::Advanced(vec![AdvancedSelector {
            name: Some("data events only, honest".into()),
            field_selectors: vec![field("eventCategory", &["Management"], &[])],
        }]));
        assert!(management_events(&s).unwrap().passed);
    }

    #[test]
    fn advanced_without_management_fails_whatever_its_name() {
        let s = with(EventSelectors::Advanced(vec![AdvancedSelector {
            name: Some("Log all management events".into()),
            field_selectors: vec![
                field("eventCategory", &["Data"], &[]),
                field("resources.type", &["AWS::S3::Object"], &[]),
            ],
        }]));
        let v = management_events(&s).unwrap();
        assert_eq!(v.message, "management events are not recorded");
    }

    #[test]
    fn advanced_read_only_and_source_exclusions_fail() {
        let s = with(EventSelectors::Advanced(vec![AdvancedSelector {
            name: None,
            field_selectors: vec![
                field("eventCategory", &["Management"], &[]),
                field("readOnly", &["true"], &[]),
            ],
        }]));
        assert_eq!(
            management_events(&s).unwrap().message,
            "write management events are not recorded"
        );

        let s = with(EventSelectors::Advanced(vec![AdvancedSelector {
            name: Some("no kms".into()),
            field_selectors: vec![
                field("eventCategory", &["Management"], &[]),
                field("eventSource", &[], &["kms.amazonaws.com"]),
            ],
        }]));
        let v = management_events(&s).unwrap();
        assert!(!v.passed);
        assert!(v.message.contains("limits eventSource"), "{}", v.message);
    }

    #[test]
    fn one_covering_trail_is_enough() {
        let good = logging_trail();
        let mut data_only = logging_trail();
        data_only.trail.name = "data".into();
        data_only.trail.is_multi_region_trail = false;
        let v = any_trail_covers(&[&data_only, &good]).unwrap();
        assert!(v.passed, "{}", v.message);
        assert!(v.message.starts_with("trail lab:"), "{}", v.message);

        let v = any_trail_covers(&[&data_only]).unwrap();
        assert!(!v.passed);
        assert!(
            v.message.contains("trail data: trail is not multi-region"),
            "{}",
            v.message
        );

        // An unreadable trail might be the covering one: unknown, not fail.
        let mut unreadable = logging_trail();
        unreadable.selectors = Err(crate::evaluate::testing::unavailable(
            "GetEventSelectors: denied",
        ));
        assert!(any_trail_covers(&[&data_only, &unreadable]).is_err());
    }

    #[test]
    fn single_region_fails_and_unknown_selectors_error() {
        let mut s = logging_trail();
        s.trail.is_multi_region_trail = false;
        assert!(
            management_events(&s)
                .unwrap()
                .message
                .contains("not multi-region")
        );
        s.selectors = Err(crate::evaluate::testing::unavailable(
            "GetEventSelectors: denied",
        ));
        let v = management_events(&s).unwrap();
        assert!(
            !v.passed,
            "a single-region trail fails whatever its selectors"
        );
        assert!(
            v.message.contains("GetEventSelectors: denied"),
            "{}",
            v.message
        );
        s.trail.is_multi_region_trail = true;
        assert!(management_events(&s).is_err());
    }
}
