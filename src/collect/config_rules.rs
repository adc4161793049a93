//! AWS Config rules: the conformance pack's rules as deployed, and a process check's
//! evaluation sent (PutExternalEvaluation).

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
