//! What the daemon tells AWS Config: one process check per policy in a conformance pack, one
//! evaluation per account (PutExternalEvaluation accepts only `AWS::::Account` resources), sent
//! when the verdict changes and again after `refresh`, never for `error` or `pending`.
//!
//! An account's verdict for a policy comes from all of its findings: any failure makes it
//! NON_COMPLIANT (the annotation names what fails); a finding that is `error` or `pending`
//! leaves it undecided, and nothing is sent, so Config keeps the last verdict it had rather
//! than a pass trailwarden cannot vouch for. Only a successful send counts as sent, so a call
//! that fails is sent again at the next run, and a restart sends everything once.

use crate::evaluate::{Finding, Status};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// The name a policy's process check has in the conformance pack template.
pub fn rule_name(policy: &str) -> String {
    format!("trailwarden-{policy}")
}

/// Config's longest annotation.
pub const MAX_ANNOTATION: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compliance {
    Compliant,
    NonCompliant,
}

impl Compliance {
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Compliant => "COMPLIANT",
            Compliance::NonCompliant => "NON_COMPLIANT",
        }
    }
}

/// One account's verdict for one policy, as Config is told it.
#[derive(Debug, Clone, Eq)]
pub struct AccountVerdict {
    pub compliance: Compliance,
    /// What fails (resource names, sorted): a change of it is a change of verdict.
    pub failing: Vec<String>,
    pub annotation: String,
}

/// The same verdict: the same compliance over the same failing resources. The annotation's
/// text is not compared: a message that carries an age would make every run a change.
impl PartialEq for AccountVerdict {
    fn eq(&self, other: &Self) -> bool {
        self.compliance == other.compliance && self.failing == other.failing
    }
}

/// (policy, account).
pub type Key = (String, String);

/// Each (policy, account) of the findings, with its verdict; `None` where a finding is
/// `error` or `pending` and none fails.
pub fn account_verdicts(findings: &[Finding]) -> BTreeMap<Key, Option<AccountVerdict>> {
    let mut by_key: BTreeMap<Key, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_key
            .entry((f.policy.clone(), f.account.clone()))
            .or_default()
            .push(f);
    }
    by_key
        .into_iter()
        .map(|(key, found)| {
            let failing: Vec<&&Finding> =
                found.iter().filter(|f| f.status == Status::Fail).collect();
            let verdict = if let Some(first) = failing.first() {
                let mut annotation = if failing.len() == 1 {
                    format!("{}: {}", first.resource_name, first.message)
                } else {
                    let names: Vec<&str> =
                        failing.iter().map(|f| f.resource_name.as_str()).collect();
                    format!("{} fail: {}", failing.len(), names.join(", "))
                };
                truncate(&mut annotation);
                let mut names: Vec<String> =
                    failing.iter().map(|f| f.resource_name.clone()).collect();
                names.sort();
                Some(AccountVerdict {
                    compliance: Compliance::NonCompliant,
                    failing: names,
                    annotation,
                })
            } else if found.iter().all(|f| f.status == Status::Pass) {
                let names: Vec<&str> = found.iter().map(|f| f.resource_name.as_str()).collect();
                let mut annotation = format!("passes: {}", names.join(", "));
                truncate(&mut annotation);
                Some(AccountVerdict {
                    compliance: Compliance::Compliant,
                    failing: Vec::new(),
                    annotation,
                })
            } else {
                None
            };
            (key, verdict)
        })
        .collect()
}

/// Cuts at a character boundary and marks the cut.
fn truncate(s: &mut String) {
    if s.chars().count() <= MAX_ANNOTATION {
        return;
    }
    let keep: String = s.chars().take(MAX_ANNOTATION - 1).collect();
    *s = keep + "…";
}

/// What was last sent for a key, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent<V = AccountVerdict> {
    pub verdict: V,
    pub at: DateTime<Utc>,
}

/// What to send now: each decided verdict that differs from the last one sent, or whose last
/// send is `refresh` old. (AWS Config's evaluations here; Security Hub's findings too.)
pub fn due<K: Ord + Clone, V: PartialEq + Clone>(
    verdicts: &BTreeMap<K, Option<V>>,
    sent: &BTreeMap<K, Sent<V>>,
    now: DateTime<Utc>,
    refresh: Duration,
) -> Vec<(K, V)> {
    verdicts
        .iter()
        .filter_map(|(key, verdict)| {
            let verdict = verdict.as_ref()?;
            let send = match sent.get(key) {
                None => true,
                Some(last) => last.verdict != *verdict || now - last.at >= refresh,
            };
            send.then(|| (key.clone(), verdict.clone()))
        })
        .collect()
}

/// The deployed rule of each policy: a conformance pack names its rules
/// `<name in the template>-conformance-pack-<id>`; a rule deployed on its own keeps its name.
pub fn deployed_rules<'a>(
    policies: impl IntoIterator<Item = &'a str>,
    deployed: &[String],
) -> BTreeMap<String, Option<String>> {
    policies
        .into_iter()
        .map(|policy| {
            let wanted = rule_name(policy);
            let found = deployed.iter().find(|name| {
                name.as_str() == wanted
                    || name
                        .strip_prefix(wanted.as_str())
                        .and_then(|rest| rest.strip_prefix("-conformance-pack-"))
                        .is_some_and(|id| !id.is_empty() && !id.contains('-'))
            });
            (policy.to_string(), found.cloned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;

    fn finding(policy: &str, account: &str, trail: &str, status: Status) -> Finding {
        Finding {
            policy: policy.into(),
            severity: Severity::High,
            status,
            account: account.into(),
            region: "us-east-1".into(),
            resource: format!("arn:aws:cloudtrail:us-east-1:{account}:trail/{trail}"),
            resource_name: trail.into(),
            message: format!("{trail} is {}", status.as_str()),
        }
    }

    fn compliance(v: &Option<AccountVerdict>) -> Option<&'static str> {
        v.as_ref().map(|v| v.compliance.as_str())
    }

    #[test]
    fn an_account_verdict_over_its_trails() {
        use Status::*;
        // (statuses of the account's trails, verdict sent)
        let cases: &[(&[Status], Option<&str>)] = &[
            (&[Pass], Some("COMPLIANT")),
            (&[Pass, Pass], Some("COMPLIANT")),
            (&[Fail], Some("NON_COMPLIANT")),
            (&[Pass, Fail], Some("NON_COMPLIANT")),
            (&[Error, Fail], Some("NON_COMPLIANT")),
            (&[Pending, Fail], Some("NON_COMPLIANT")),
            // Missing data is never a pass: nothing is sent.
            (&[Error], None),
            (&[Pass, Error], None),
            (&[Pending], None),
            (&[Pass, Pending], None),
        ];
        for (statuses, expected) in cases {
            let findings: Vec<Finding> = statuses
                .iter()
                .enumerate()
                .map(|(i, s)| finding("logging", "111111111111", &format!("t{i}"), *s))
                .collect();
            let verdicts = account_verdicts(&findings);
            assert_eq!(verdicts.len(), 1);
            let v = &verdicts[&("logging".into(), "111111111111".into())];
            assert_eq!(compliance(v), *expected, "{statuses:?}");
        }
    }

    #[test]
    fn accounts_and_policies_are_judged_apart() {
        let findings = [
            finding("logging", "111111111111", "a", Status::Fail),
            finding("logging", "222222222222", "b", Status::Pass),
            finding("sse", "111111111111", "a", Status::Pass),
        ];
        let v = account_verdicts(&findings);
        assert_eq!(
            compliance(&v[&("logging".into(), "111111111111".into())]),
            Some("NON_COMPLIANT")
        );
        assert_eq!(
            compliance(&v[&("logging".into(), "222222222222".into())]),
            Some("COMPLIANT")
        );
        assert_eq!(
            compliance(&v[&("sse".into(), "111111111111".into())]),
            Some("COMPLIANT")
        );
    }

    #[test]
    fn the_annotation_names_what_fails_within_configs_limit() {
        let one = account_verdicts(&[finding("logging", "1", "org", Status::Fail)]);
        let one = one.values().next().unwrap().as_ref().unwrap();
        assert_eq!(one.annotation, "org: org is fail");
        let many: Vec<Finding> = (0..100)
            .map(|i| finding("logging", "1", &format!("trail-number-{i}"), Status::Fail))
            .collect();
        let many = account_verdicts(&many);
        let many = many.values().next().unwrap().as_ref().unwrap();
        assert!(many.annotation.starts_with("100 fail: trail-number-0, "));
        assert_eq!(many.annotation.chars().count(), MAX_ANNOTATION);
        assert!(many.annotation.ends_with('…'));
    }

    #[test]
    fn what_is_due() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let refresh = Duration::hours(24);
        let key: Key = ("logging".into(), "1".into());
        let verdict = |c| AccountVerdict {
            compliance: c,
            failing: Vec::new(),
            annotation: "x".into(),
        };
        let sent = |c, at| {
            BTreeMap::from([(
                key.clone(),
                Sent {
                    verdict: verdict(c),
                    at,
                },
            )])
        };
        use Compliance::*;
        // (decided verdict now, last sent, due)
        let cases = [
            (Some(Compliant), None, true),
            (Some(Compliant), Some((Compliant, t0)), false),
            (Some(NonCompliant), Some((Compliant, t0)), true),
            (Some(Compliant), Some((NonCompliant, t0)), true),
            (Some(Compliant), Some((Compliant, t0 - refresh)), true),
            (
                Some(Compliant),
                Some((Compliant, t0 - refresh + Duration::seconds(1))),
                false,
            ),
            // Undecided (error, pending): nothing, however old the last send.
            (None, None, false),
            (None, Some((Compliant, t0 - refresh * 10)), false),
        ];
        for (now, last, expected) in cases {
            let verdicts = BTreeMap::from([(key.clone(), now.map(verdict))]);
            let last = last.map(|(c, at)| sent(c, at)).unwrap_or_default();
            assert_eq!(
                !due(&verdicts, &last, t0, refresh).is_empty(),
                expected,
                "now {now:?}, last {last:?}"
            );
        }
        // Another trail failing is sent although the compliance is the same.
        let mut changed = verdict(NonCompliant);
        changed.failing = vec!["other".into()];
        let verdicts = BTreeMap::from([(key.clone(), Some(changed))]);
        assert_eq!(
            due(&verdicts, &sent(NonCompliant, t0), t0, refresh).len(),
            1
        );
        // A message that only ages ("newest log 3m ago", then "4m ago") is not a change.
        let mut aged = verdict(NonCompliant);
        aged.annotation = "y".into();
        let verdicts = BTreeMap::from([(key.clone(), Some(aged))]);
        assert!(due(&verdicts, &sent(NonCompliant, t0), t0, refresh).is_empty());
    }

    #[test]
    fn deployed_rules_are_found_under_the_names_aws_gives_them() {
        let deployed = vec![
            "trailwarden-logging-conformance-pack-a1b2c3".to_string(),
            "trailwarden-sse".to_string(),
            "trailwarden-logging-extra-conformance-pack-zz".to_string(),
            "cloudtrail-enabled-conformance-pack-a1b2c3".to_string(),
        ];
        let found = deployed_rules(["logging", "sse", "validation", "logging-extra"], &deployed);
        assert_eq!(
            found["logging"].as_deref(),
            Some("trailwarden-logging-conformance-pack-a1b2c3")
        );
        assert_eq!(found["sse"].as_deref(), Some("trailwarden-sse"));
        assert_eq!(found["validation"], None);
        assert_eq!(
            found["logging-extra"].as_deref(),
            Some("trailwarden-logging-extra-conformance-pack-zz")
        );
    }
}
