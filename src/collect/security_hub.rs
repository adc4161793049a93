//! Security Hub: findings imported with BatchImportFindings, a hundred at a time, as the
//! account's own product (`product/<account>/default`).

use super::aws::{Aws, unavailable};
use crate::asff::{AsffFinding, FINDING_TYPE, SCHEMA_VERSION};
use crate::posture::Unavailable;
use aws_sdk_securityhub::types::{
    AwsSecurityFinding, AwsSecurityFindingIdentifier, Compliance, ComplianceStatus, Resource,
    Severity, SeverityLabel, StatusReason, WorkflowUpdate,
};
use chrono::{DateTime, SecondsFormat, Utc};

/// Security Hub's largest batch.
const BATCH: usize = 100;

/// Imports `findings` of `account`; each finding's id with whether it was taken (else why).
pub async fn import(
    aws: &Aws,
    region: &str,
    account: &str,
    findings: &[AsffFinding],
    now: DateTime<Utc>,
) -> Vec<(String, Result<(), Unavailable>)> {
    let client = aws.security_hub(region);
    let product = format!("arn:aws:securityhub:{region}:{account}:product/{account}/default");
    let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut out = Vec::new();
    for chunk in findings.chunks(BATCH) {
        let batch: Vec<AwsSecurityFinding> = chunk
            .iter()
            .map(|f| build(f, &product, region, &time))
            .collect();
        let ids: Vec<String> = batch
            .iter()
            .filter_map(|b| b.id().map(str::to_string))
            .collect();
        match client
            .batch_import_findings()
            .set_findings(Some(batch))
            .send()
            .await
        {
            Ok(answer) => {
                for id in ids {
                    let failed = (answer.failed_findings().iter()).find(|f| f.id() == Some(&id));
                    let result = match failed {
                        Some(f) => Err(Unavailable::api_failure(format!(
                            "BatchImportFindings refused {id}: {} {}",
                            f.error_code().unwrap_or_default(),
                            f.error_message().unwrap_or_default()
                        ))),
                        None => Ok(()),
                    };
                    out.push((id, result));
                }
            }
            Err(e) => {
                let e = unavailable("BatchImportFindings", &e);
                out.extend(ids.into_iter().map(|id| (id, Err(e.clone()))));
            }
        }
    }
    out
}

/// Marks findings of `account` resolved (BatchUpdateFindings): Security Hub resolves only
/// its own controls' findings when they pass, an imported one stays open until updated.
pub async fn resolve(
    aws: &Aws,
    region: &str,
    account: &str,
    ids: &[String],
) -> Result<(), Unavailable> {
    let client = aws.security_hub(region);
    let product = format!("arn:aws:securityhub:{region}:{account}:product/{account}/default");
    for chunk in ids.chunks(BATCH) {
        let identifiers: Vec<AwsSecurityFindingIdentifier> = chunk
            .iter()
            .map(|id| {
                AwsSecurityFindingIdentifier::builder()
                    .id(id)
                    .product_arn(&product)
                    .build()
            })
            .collect();
        let answer = client
            .batch_update_findings()
            .set_finding_identifiers(Some(identifiers))
            .workflow(
                WorkflowUpdate::builder()
                    .status(aws_sdk_securityhub::types::WorkflowStatus::Resolved)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| unavailable("BatchUpdateFindings", &e))?;
        if let Some(u) = answer.unprocessed_findings().first() {
            return Err(Unavailable::api_failure(format!(
                "BatchUpdateFindings left {} findings open: {} {}",
                answer.unprocessed_findings().len(),
                u.error_code().unwrap_or_default(),
                u.error_message().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

fn build(f: &AsffFinding, product: &str, region: &str, time: &str) -> AwsSecurityFinding {
    let mut resource = Resource::builder()
        .r#type(f.resource_type)
        .id(&f.resource_id)
        .partition(aws_sdk_securityhub::types::Partition::Aws);
    if !f.resource_region.is_empty() {
        resource = resource.region(&f.resource_region);
    }
    let reason = StatusReason::builder()
        .reason_code("TRAILWARDEN_POLICY")
        .description(&f.reason)
        .build();
    AwsSecurityFinding::builder()
        .schema_version(SCHEMA_VERSION)
        .id(&f.id)
        .product_arn(product)
        .product_name("trailwarden")
        .company_name("trailwarden")
        .region(region)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.account)
        .types(FINDING_TYPE)
        .created_at(time)
        .updated_at(time)
        .severity(
            Severity::builder()
                .label(SeverityLabel::from(f.severity))
                .build(),
        )
        .title(&f.title)
        .description(&f.description)
        .resources(resource.build())
        .compliance(
            Compliance::builder()
                .status(ComplianceStatus::from(f.compliance))
                .status_reasons(reason)
                .build(),
        )
        .build()
}
