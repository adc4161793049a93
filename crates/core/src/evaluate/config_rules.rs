//! AWS Config's managed CloudTrail rules against trailwarden's verdicts: where Config says an
//! account is compliant while trailwarden finds it failing (the digests do not verify, the
//! trail is stopped), or the other way round, the two disagree and one of them is wrong.
//!
//! Each managed rule is compared with the checks that look at what it looks at, judged the way
//! the rule judges: `cloudtrail-enabled`, `multi-region-cloudtrail-enabled` and
//! `cloudtrail-security-trail-enabled` ask for one good trail, so trailwarden's verdict is
//! `pass` when some trail passes every compared check (an account-wide finding counts for
//! each trail) and `fail` when every trail fails one; the encryption and validation rules ask
//! it of every trail, so any failure is `fail` and all passing is `pass`. Otherwise (an
//! `error`, a `pending`, no policy with such a check) there is no verdict to compare, and no
//! disagreement is claimed. Config's is NON_COMPLIANT when any of
//! the rule's results in the account is, COMPLIANT when some are and none is not; anything
//! else (INSUFFICIENT_DATA, NOT_APPLICABLE, no result) is not compared either.

use crate::config::PolicySet;
use crate::evaluate::{Finding, Status};
use serde::Serialize;

/// How a rule judges an account: by one good trail, or by every trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    SomeTrail,
    EveryTrail,
}

/// The managed rules compared: source identifier, the name Config gives it by default, the
/// trailwarden checks that look at the same thing, and how the rule judges.
pub const MANAGED_RULES: [(&str, &str, &[&str], Judged); 5] = [
    (
        "CLOUD_TRAIL_ENABLED",
        "cloudtrail-enabled",
        &["trail_logging"],
        Judged::SomeTrail,
    ),
    (
        "MULTI_REGION_CLOUD_TRAIL_ENABLED",
        "multi-region-cloudtrail-enabled",
        &["trail_logging", "management_events"],
        Judged::SomeTrail,
    ),
    (
        "CLOUD_TRAIL_ENCRYPTION_ENABLED",
        "cloud-trail-encryption-enabled",
        &["sse_kms"],
        Judged::EveryTrail,
    ),
    (
        "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED",
        "cloud-trail-log-file-validation-enabled",
        &["log_file_validation", "digest_integrity"],
        Judged::EveryTrail,
    ),
    (
        "CLOUDTRAIL_SECURITY_TRAIL_ENABLED",
        "cloudtrail-security-trail-enabled",
        &[
            "trail_logging",
            "management_events",
            "log_file_validation",
            "sse_kms",
        ],
        Judged::SomeTrail,
    ),
];

/// The checks a managed rule (by source identifier) is compared with, and how it judges;
/// `None` for other rules.
pub fn checks_of(source_identifier: &str) -> Option<(&'static [&'static str], Judged)> {
    MANAGED_RULES
        .iter()
        .find(|(id, _, _, _)| *id == source_identifier)
        .map(|(_, _, checks, judged)| (*checks, *judged))
}

/// `Some(true)` all pass, `Some(false)` one fails, `None` otherwise.
fn all_pass(found: &[&Finding]) -> Option<bool> {
    if found.iter().any(|f| f.status == Status::Fail) {
        Some(false)
    } else if !found.is_empty() && found.iter().all(|f| f.status == Status::Pass) {
        Some(true)
    } else {
        None
    }
}

/// trailwarden's verdict over `found`, judged as the rule judges.
fn verdict(found: &[&Finding], judged: Judged) -> Option<&'static str> {
    let word = |passed| if passed { "pass" } else { "fail" };
    match judged {
        Judged::EveryTrail => all_pass(found).map(word),
        Judged::SomeTrail => {
            let (account_wide, per_trail): (Vec<&Finding>, Vec<&Finding>) = found
                .iter()
                .partition(|f| f.resource.starts_with("account/"));
            let mut trails: Vec<&str> = per_trail.iter().map(|f| f.resource.as_str()).collect();
            trails.sort();
            trails.dedup();
            if trails.is_empty() {
                return all_pass(&account_wide).map(word);
            }
            let each: Vec<Option<bool>> = trails
                .iter()
                .map(|t| {
                    let mut of_trail: Vec<&Finding> = per_trail
                        .iter()
                        .filter(|f| f.resource == *t)
                        .copied()
                        .collect();
                    of_trail.extend(account_wide.iter().copied());
                    all_pass(&of_trail)
                })
                .collect();
            if each.contains(&Some(true)) {
                Some("pass")
            } else if each.iter().all(|j| *j == Some(false)) {
                Some("fail")
            } else {
                None
            }
        }
    }
}

/// A deployed managed rule's results in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleResults {
    pub rule: String,
    pub source_identifier: String,
    pub account: String,
    /// Each result's compliance type (COMPLIANT, NON_COMPLIANT, ...).
    pub results: Vec<String>,
}

/// One rule in one account, compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub rule: String,
    pub source_identifier: String,
    pub account: String,
    /// COMPLIANT, NON_COMPLIANT, or what Config has instead (INSUFFICIENT_DATA, none).
    pub config: String,
    /// `pass`, `fail`, or `null` when trailwarden has no verdict to compare.
    pub trailwarden: Option<&'static str>,
    /// The policies compared, and those of them that fail.
    pub policies: Vec<String>,
    pub failing: Vec<String>,
    pub disagrees: bool,
}

fn config_verdict(results: &[String]) -> &str {
    if results.iter().any(|r| r == "NON_COMPLIANT") {
        "NON_COMPLIANT"
    } else if results.iter().any(|r| r == "COMPLIANT") {
        "COMPLIANT"
    } else {
        results.first().map_or("NO_RESULT", String::as_str)
    }
}

/// Each rule's results compared with the account's findings.
pub fn compare(
    policies: &PolicySet,
    findings: &[Finding],
    results: &[RuleResults],
) -> Vec<Comparison> {
    results
        .iter()
        .filter_map(|r| {
            let (checks, judged) = checks_of(&r.source_identifier)?;
            let compared: Vec<&str> = (policies.policies.iter())
                .filter(|p| checks.contains(&p.check.name()))
                .map(|p| p.id.as_str())
                .collect();
            let found: Vec<&Finding> = findings
                .iter()
                .filter(|f| f.account == r.account && compared.contains(&f.policy.as_str()))
                .collect();
            let mut failing: Vec<String> = (found.iter())
                .filter(|f| f.status == Status::Fail)
                .map(|f| f.policy.clone())
                .collect();
            failing.sort();
            failing.dedup();
            let trailwarden = verdict(&found, judged);
            let config = config_verdict(&r.results).to_string();
            let disagrees = matches!(
                (config.as_str(), trailwarden),
                ("COMPLIANT", Some("fail")) | ("NON_COMPLIANT", Some("pass"))
            );
            Some(Comparison {
                rule: r.rule.clone(),
                source_identifier: r.source_identifier.clone(),
                account: r.account.clone(),
                config,
                trailwarden,
                policies: compared.iter().map(|p| p.to_string()).collect(),
                failing,
                disagrees,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;

    fn policies() -> PolicySet {
        serde_yaml::from_str(
            "policies:\n\
             - {id: logging, check: trail_logging, severity: critical}\n\
             - {id: validation, check: log_file_validation, severity: high}\n\
             - {id: digests, check: digest_integrity, severity: critical}\n",
        )
        .unwrap()
    }

    fn finding(policy: &str, status: Status) -> Finding {
        on_trail(policy, "t", status)
    }

    fn on_trail(policy: &str, trail: &str, status: Status) -> Finding {
        Finding {
            policy: policy.into(),
            severity: Severity::High,
            status,
            account: "111111111111".into(),
            region: "us-east-1".into(),
            resource: format!("arn:aws:cloudtrail:us-east-1:111111111111:trail/{trail}"),
            resource_name: trail.into(),
            message: String::new(),
        }
    }

    fn results(source: &str, results: &[&str]) -> RuleResults {
        RuleResults {
            rule: "r".into(),
            source_identifier: source.into(),
            account: "111111111111".into(),
            results: results.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn the_comparison_table() {
        use Status::*;
        const VALIDATION: &str = "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED";
        // (rule, Config's results, trailwarden's findings, trailwarden's verdict, disagrees)
        type Case<'a> = (
            &'a str,
            &'a [&'a str],
            &'a [(&'a str, Status)],
            Option<&'a str>,
            bool,
        );
        let cases: &[Case] = &[
            (
                "CLOUD_TRAIL_ENABLED",
                &["COMPLIANT"],
                &[("logging", Pass)],
                Some("pass"),
                false,
            ),
            (
                "CLOUD_TRAIL_ENABLED",
                &["COMPLIANT"],
                &[("logging", Fail)],
                Some("fail"),
                true,
            ),
            (
                "CLOUD_TRAIL_ENABLED",
                &["NON_COMPLIANT"],
                &[("logging", Pass)],
                Some("pass"),
                true,
            ),
            (
                "CLOUD_TRAIL_ENABLED",
                &["NON_COMPLIANT"],
                &[("logging", Fail)],
                Some("fail"),
                false,
            ),
            // Config validates that validation is on; the digests failing is the disagreement.
            (
                VALIDATION,
                &["COMPLIANT"],
                &[("validation", Pass), ("digests", Fail)],
                Some("fail"),
                true,
            ),
            // No verdict on either side: nothing is claimed.
            (
                VALIDATION,
                &["COMPLIANT"],
                &[("validation", Pass), ("digests", Error)],
                None,
                false,
            ),
            (
                VALIDATION,
                &["COMPLIANT"],
                &[("validation", Pass), ("digests", Pending)],
                None,
                false,
            ),
            (
                "CLOUD_TRAIL_ENABLED",
                &["INSUFFICIENT_DATA"],
                &[("logging", Fail)],
                Some("fail"),
                false,
            ),
            (
                "CLOUD_TRAIL_ENABLED",
                &[],
                &[("logging", Fail)],
                Some("fail"),
                false,
            ),
            (
                "CLOUD_TRAIL_ENABLED",
                &["COMPLIANT", "NON_COMPLIANT"],
                &[("logging", Pass)],
                Some("pass"),
                true,
            ),
            // No policy of ours looks at encryption.
            (
                "CLOUD_TRAIL_ENCRYPTION_ENABLED",
                &["COMPLIANT"],
                &[("logging", Fail)],
                None,
                false,
            ),
        ];
        for (source, config, found, verdict, disagrees) in cases {
            let findings: Vec<Finding> = found.iter().map(|(p, s)| finding(p, *s)).collect();
            let c = compare(&policies(), &findings, &[results(source, config)]);
            assert_eq!(c.len(), 1);
            assert_eq!(
                (c[0].trailwarden, c[0].disagrees),
                (*verdict, *disagrees),
                "{source} {config:?} {found:?}"
            );
        }
    }

    #[test]
    fn a_rule_that_asks_for_one_good_trail_is_judged_by_the_best_trail() {
        use Status::*;
        let compared = |source: &str, found: Vec<Finding>| {
            let c = compare(&policies(), &found, &[results(source, &["COMPLIANT"])]);
            (c[0].trailwarden, c[0].disagrees)
        };
        // One trail stopped, another logging: cloudtrail-enabled is right to pass.
        let two = vec![
            on_trail("logging", "a", Fail),
            on_trail("logging", "b", Pass),
        ];
        assert_eq!(compared("CLOUD_TRAIL_ENABLED", two), (Some("pass"), false));
        // Every trail stopped: a disagreement.
        let none = vec![
            on_trail("logging", "a", Fail),
            on_trail("logging", "b", Fail),
        ];
        assert_eq!(compared("CLOUD_TRAIL_ENABLED", none), (Some("fail"), true));
        // One trail unknown, the other stopped: no verdict.
        let unknown = vec![
            on_trail("logging", "a", Fail),
            on_trail("logging", "b", Error),
        ];
        assert_eq!(compared("CLOUD_TRAIL_ENABLED", unknown), (None, false));
        // Validation asks it of every trail: one trail's failing digests fail the account.
        let validation = vec![
            on_trail("validation", "a", Pass),
            on_trail("digests", "a", Pass),
            on_trail("validation", "b", Pass),
            on_trail("digests", "b", Fail),
        ];
        assert_eq!(
            compared("CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED", validation),
            (Some("fail"), true)
        );
    }

    #[test]
    fn other_rules_and_other_accounts_are_not_compared() {
        let c = compare(
            &policies(),
            &[finding("logging", Status::Fail)],
            &[results("S3_BUCKET_VERSIONING_ENABLED", &["COMPLIANT"])],
        );
        assert!(c.is_empty());
        let mut elsewhere = results("CLOUD_TRAIL_ENABLED", &["COMPLIANT"]);
        elsewhere.account = "222222222222".into();
        let c = compare(
            &policies(),
            &[finding("logging", Status::Fail)],
            &[elsewhere],
        );
        assert_eq!((c[0].trailwarden, c[0].disagrees), (None, false));
    }
}
