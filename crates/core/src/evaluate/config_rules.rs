//! AWS Config's managed CloudTrail rules against trailwarden's verdicts: where Config says an
//! account is compliant while trailwarden finds it failing (the digests do not verify, the
//! trail is stopped), or the other way round, the two disagree and one of them is wrong.
//!
//! Each managed rule is compared with the checks that look at what it looks at. trailwarden's
//! verdict for an account is `fail` when any finding of those checks fails, `pass` when all
//! of them pass; otherwise (an `error`, a `pending`, no policy with such a check) there is no
//! verdict to compare, and no disagreement is claimed. Config's is NON_COMPLIANT when any of
//! the rule's results in the account is, COMPLIANT when some are and none is not; anything
//! else (INSUFFICIENT_DATA, NOT_APPLICABLE, no result) is not compared either.

use crate::config::PolicySet;
use crate::evaluate::{Finding, Status};
use serde::Serialize;

/// The managed rules compared: source identifier, the name Config gives it by default, and
/// the trailwarden checks that look at the same thing.
pub const MANAGED_RULES: [(&str, &str, &[&str]); 5] = [
    (
        "CLOUD_TRAIL_ENABLED",
        "cloudtrail-enabled",
        &["trail_logging"],
    ),
    (
        "MULTI_REGION_CLOUD_TRAIL_ENABLED",
        "multi-region-cloudtrail-enabled",
        &["trail_logging", "management_events"],
    ),
    (
        "CLOUD_TRAIL_ENCRYPTION_ENABLED",
        "cloud-trail-encryption-enabled",
        &["sse_kms"],
    ),
    (
        "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED",
        "cloud-trail-log-file-validation-enabled",
        &["log_file_validation", "digest_integrity"],
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
    ),
];

/// The checks a managed rule (by source identifier) is compared with; `None` for others.
pub fn checks_of(source_identifier: &str) -> Option<&'static [&'static str]> {
    MANAGED_RULES
        .iter()
        .find(|(id, _, _)| *id == source_identifier)
        .map(|(_, _, checks)| *checks)
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
            let checks = checks_of(&r.source_identifier)?;
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
            failing.dedup();
            let trailwarden = if !failing.is_empty() {
                Some("fail")
            } else if !found.is_empty() && found.iter().all(|f| f.status == Status::Pass) {
                Some("pass")
            } else {
                None
            };
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
        Finding {
            policy: policy.into(),
            severity: Severity::High,
            status,
            account: "111111111111".into(),
            region: "us-east-1".into(),
            resource: "arn:aws:cloudtrail:us-east-1:111111111111:trail/t".into(),
            resource_name: "t".into(),
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
