//! The event names a Sigma rule can match, read from its detection: a necessary condition
//! (a record of any other `eventName` cannot match), so a log file's records of other names
//! need not be parsed at all. Most CloudTrail rules select on `eventName`; a rule whose
//! condition does not pin it (a negation, keywords, a modifier, a wildcard) can match any
//! record, and says so with `None`. The analysis only ever widens: `None` is always sound.

use rsigma_parser::SigmaValue;
use rsigma_parser::ast::{ConditionExpr, Detection, Detections, Quantifier};
use std::collections::BTreeSet;

/// Event names, lowercased (Sigma matches case-insensitively); `None`: any name.
pub type Names = Option<BTreeSet<String>>;

const FIELD: &str = "eventName";

/// The names any of the rule's conditions needs.
pub fn required(detections: &Detections) -> Names {
    any(detections
        .conditions
        .iter()
        .map(|c| of_condition(c, detections)))
}

fn of_condition(condition: &ConditionExpr, detections: &Detections) -> Names {
    match condition {
        ConditionExpr::Identifier(name) => detections.named.get(name).and_then(of_detection),
        ConditionExpr::And(parts) => all(parts.iter().map(|p| of_condition(p, detections))),
        ConditionExpr::Or(parts) => any(parts.iter().map(|p| of_condition(p, detections))),
        // What a negation excludes says nothing about what matches.
        ConditionExpr::Not(_) => None,
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let chosen: Vec<Names> = detections
                .named
                .iter()
                // The evaluator's own choice of names: the two cannot disagree.
                .filter(|(name, _)| pattern.matches_detection_name(name))
                .map(|(_, d)| of_detection(d))
                .collect();
            match quantifier {
                // All of none is true of every record.
                Quantifier::All if chosen.is_empty() => None,
                Quantifier::All => all(chosen.into_iter()),
                Quantifier::Count(0) => None,
                Quantifier::Any | Quantifier::Count(_) => any(chosen.into_iter()),
            }
        }
    }
}

fn of_detection(detection: &Detection) -> Names {
    match detection {
        // Every item must hold: any item on eventName pins it.
        Detection::AllOf(items) => all(items.iter().map(|item| {
            let plain =
                item.field.name.as_deref() == Some(FIELD) && item.field.modifiers.is_empty();
            if !plain {
                return None;
            }
            // One of the values (a list is an OR); a wildcard or another type: any name.
            item.values
                .iter()
                .map(|v| match v {
                    SigmaValue::String(s) => s.as_plain().map(|p| p.to_lowercase()),
                    _ => None,
                })
                .collect::<Option<BTreeSet<String>>>()
        })),
        Detection::AnyOf(parts) => any(parts.iter().map(of_detection)),
        Detection::And(parts) => all(parts.iter().map(of_detection)),
        // Keywords search every value; array blocks and their conditions look inside one
        // element, never at the record's eventName.
        Detection::Keywords(_) | Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
            None
        }
    }
}

/// Each part must hold: the names every pinned part allows.
fn all(parts: impl Iterator<Item = Names>) -> Names {
    parts
        .flatten()
        .reduce(|a, b| a.intersection(&b).cloned().collect())
}

/// One part must hold: any pinned name of any part, unless some part allows any name.
fn any(mut parts: impl Iterator<Item = Names>) -> Names {
    parts.try_fold(BTreeSet::new(), |mut names, part| {
        names.extend(part?);
        Some(names)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(detection: &str) -> Option<Vec<String>> {
        let text = format!(
            "title: t\nid: 5f0cb3f5-7f6e-4d3b-9d8e-1c1e4e1e1e1e\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n{detection}\nlevel: high\n"
        );
        let collection = rsigma_parser::parse_sigma_yaml(&text).unwrap();
        assert!(collection.errors.is_empty(), "{:?}", collection.errors);
        required(&collection.rules[0].detection).map(|n| n.into_iter().collect())
    }

    #[test]
    fn the_names_a_rule_needs_or_none() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            (
                "  selection:\n    eventSource: cloudtrail.amazonaws.com\n    eventName:\n      - StopLogging\n      - DeleteTrail\n  condition: selection",
                Some(&["deletetrail", "stoplogging"]),
            ),
            (
                "  selection:\n    eventName: StopLogging\n  filter:\n    userIdentity.type: AWSService\n  condition: selection and not filter",
                Some(&["stoplogging"]),
            ),
            (
                "  a:\n    eventName: A\n  b:\n    eventName: B\n  condition: a or b",
                Some(&["a", "b"]),
            ),
            (
                "  a:\n    eventName: A\n  b:\n    userIdentity.type: Root\n  condition: a or b",
                None,
            ),
            (
                "  a:\n    eventName: [A, B]\n  b:\n    eventName: [B, C]\n  condition: a and b",
                Some(&["b"]),
            ),
            (
                "  selection_a:\n    eventName: A\n  selection_b:\n    eventName: B\n  condition: 1 of selection_*",
                Some(&["a", "b"]),
            ),
            (
                "  selection_a:\n    eventName: A\n  other:\n    sourceIPAddress: 1.2.3.4\n  condition: all of them",
                Some(&["a"]),
            ),
            (
                "  selection:\n    - eventName: A\n    - eventName: B\n      errorCode: AccessDenied\n  condition: selection",
                Some(&["a", "b"]),
            ),
            (
                "  selection:\n    - eventName: A\n    - errorCode: AccessDenied\n  condition: selection",
                None,
            ),
            (
                "  selection:\n    eventName|startswith: Delete\n  condition: selection",
                None,
            ),
            (
                "  selection:\n    eventName: Delete*\n  condition: selection",
                None,
            ),
            (
                "  selection:\n    eventName: StopLogging\n  condition: not selection",
                None,
            ),
            (
                "  keywords:\n    - StopLogging\n  condition: keywords",
                None,
            ),
            (
                "  selection:\n    userIdentity.type: Root\n  condition: selection",
                None,
            ),
        ];
        for (detection, expected) in cases {
            let expected = expected.map(|n| n.iter().map(|s| s.to_string()).collect());
            assert_eq!(names_of(detection), expected, "{detection}");
        }
    }
}
