//! AWS Config rules: the conformance pack's rules as deployed, a process check's
//! evaluation sent (PutExternalEvaluation), and the managed rules with their results read.

use super::aws::{Aws, unavailable};
use crate::plan::config_evaluations::AccountVerdict;
use crate::posture::{Fetched, Unavailable};
use aws_sdk_config::types::{ComplianceType, ExternalEvaluation};
use aws_smithy_types::DateTime as SmithyTime;
use chrono::{DateTime, Utc};

/// The names of the pack's rules as deployed (`<name>-conformance-pack-<id>`).
pub async fn pack_rules(aws: &Aws, region: &str, pack: &str) -> Fetched<Vec<String>> {
    let client = aws.config(region);
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .describe_conformance_pack_compliance()
            .conformance_pack_name(pack)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| unavailable("DescribeConformancePackCompliance", &e))?;
        names.extend(
            out.conformance_pack_rule_compliance_list()
                .iter()
                .filter_map(|r| r.config_rule_name().map(str::to_string)),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(names);
        }
    }
}

/// One account's verdict for one process check.
pub async fn put_evaluation(
    aws: &Aws,
    region: &str,
    rule: &str,
    account: &str,
    verdict: &AccountVerdict,
    now: DateTime<Utc>,
) -> Result<(), Unavailable> {
    let evaluation = ExternalEvaluation::builder()
        .compliance_resource_type("AWS::::Account")
        .compliance_resource_id(account)
        .compliance_type(ComplianceType::from(verdict.compliance.as_str()))
        .annotation(&verdict.annotation)
        .ordering_timestamp(SmithyTime::from_millis(now.timestamp_millis()))
        .build()
        .map_err(|e| Unavailable::new(format!("PutExternalEvaluation: {e}")))?;
    aws.config(region)
        .put_external_evaluation()
        .config_rule_name(rule)
        .external_evaluation(evaluation)
        .send()
        .await
        .map_err(|e| unavailable("PutExternalEvaluation", &e))?;
    Ok(())
}

/// The managed rules of the region: (name, source identifier).
pub async fn managed_rules(aws: &Aws, region: &str) -> Fetched<Vec<(String, String)>> {
    let client = aws.config(region);
    let mut rules = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .describe_config_rules()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| unavailable("DescribeConfigRules", &e))?;
        for r in out.config_rules() {
            let source = r.source().filter(|s| s.owner().as_str() == "AWS");
            if let (Some(name), Some(id)) = (
                r.config_rule_name(),
                source.and_then(|s| s.source_identifier()),
            ) {
                rules.push((name.to_string(), id.to_string()));
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(rules);
        }
    }
}

/// The compliance type of each of a rule's results.
pub async fn rule_results(aws: &Aws, region: &str, rule: &str) -> Fetched<Vec<String>> {
    let client = aws.config(region);
    let mut results = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .get_compliance_details_by_config_rule()
            .config_rule_name(rule)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| unavailable("GetComplianceDetailsByConfigRule", &e))?;
        results.extend(
            out.evaluation_results()
                .iter()
                .filter_map(|r| r.compliance_type().map(|c| c.as_str().to_string())),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(results);
        }
    }
}
