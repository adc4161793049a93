//! CloudTrail: ListTrails and DescribeTrails by ARN (shadow trails included, deduplicated by
//! ARN), GetTrailStatus and GetEventSelectors, each asked in the trail's home region.

use super::aws::{Aws, unavailable};
use super::{nonempty, to_utc};
use crate::posture::{
    AdvancedSelector, BasicSelector, EventSelectors, Fetched, FieldSelector, ReadWriteType, Trail,
    TrailState, TrailStatus, Unavailable, arn_account, arn_region,
};
use aws_sdk_cloudtrail::types as ct;
use std::collections::BTreeMap;

/// ARNs per DescribeTrails call.
const DESCRIBE_BATCH: usize = 20;

/// Lists the account's trails with the fewest calls: ListTrails (it names every trail with
/// its home region, whichever region is asked; shadow and organization trails included),
/// then DescribeTrails by ARN, which describes trails of any region. Asked in the first
/// configured region that answers. Kept: multi-region trails, and single-region trails
/// homed in a configured region.
pub async fn list_trails(aws: &Aws, regions: &[String]) -> Fetched<Vec<Trail>> {
    let mut failures = Vec::new();
    for region in regions {
        match listed_trails(aws, region).await {
            Ok(trails) => {
                for (r, e) in &failures {
                    tracing::warn!(region = %r, error = %e, "trail listing failed here; listed from {region}");
                }
                return trails.map(|list| {
                    list.into_iter()
                        .filter(|t| t.is_multi_region_trail || regions.contains(&t.home_region))
                        .collect()
                });
            }
            Err(e) => failures.push((region.clone(), e)),
        }
    }
    let reasons: Vec<String> = failures.iter().map(|(r, e)| format!("{r}: {e}")).collect();
    Err(Unavailable::api_failure(reasons.join("; ")))
}

/// ListTrails page by page, then DescribeTrails of what it named, in `region`. `Err`: the
/// listing failed there (another region may answer); `Ok(Err)`: the listing answered but a
/// describe failed.
async fn listed_trails(aws: &Aws, region: &str) -> Result<Fetched<Vec<Trail>>, Unavailable> {
    let client = aws.cloudtrail(region);
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_trails()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| unavailable("ListTrails", &e))?;
        arns.extend(page.trails().iter().filter_map(|t| nonempty(t.trail_arn())));
        token = nonempty(page.next_token());
        if token.is_none() {
            break;
        }
    }
    arns.sort();
    arns.dedup();
    let mut by_arn: BTreeMap<String, Trail> = BTreeMap::new();
    for batch in arns.chunks(DESCRIBE_BATCH) {
        match client
            .describe_trails()
            .set_trail_name_list(Some(batch.to_vec()))
            .include_shadow_trails(true)
            .send()
            .await
        {
            Ok(out) => {
                for t in out.trail_list() {
                    if let Some(trail) = trail_from_sdk(t, region) {
                        by_arn.entry(trail.arn.clone()).or_insert(trail);
                    }
                }
            }
            Err(e) => return Ok(Err(unavailable("DescribeTrails", &e))),
        }
    }
    Ok(Ok(by_arn.into_values().collect()))
}

fn trail_from_sdk(t: &ct::Trail, asked_region: &str) -> Option<Trail> {
    let arn = nonempty(t.trail_arn())?;
    let home_region = nonempty(t.home_region())
        .or_else(|| arn_region(&arn).map(str::to_string))
        .unwrap_or_else(|| asked_region.to_string());
    Some(Trail {
        account: arn_account(&arn).unwrap_or_default().to_string(),
        name: nonempty(t.name()).unwrap_or_else(|| arn.rsplit('/').next().unwrap_or("").into()),
        arn,
        home_region,
        s3_bucket_name: nonempty(t.s3_bucket_name()),
        s3_key_prefix: nonempty(t.s3_key_prefix()),
        sns_topic_arn: nonempty(t.sns_topic_arn()),
        include_global_service_events: t.include_global_service_events().unwrap_or(false),
        is_multi_region_trail: t.is_multi_region_trail().unwrap_or(false),
        is_organization_trail: t.is_organization_trail().unwrap_or(false),
        log_file_validation_enabled: t.log_file_validation_enabled().unwrap_or(false),
        kms_key_id: nonempty(t.kms_key_id()),
        cloud_watch_logs_log_group_arn: nonempty(t.cloud_watch_logs_log_group_arn()),
        cloud_watch_logs_role_arn: nonempty(t.cloud_watch_logs_role_arn()),
        has_custom_event_selectors: t.has_custom_event_selectors().unwrap_or(false),
        has_insight_selectors: t.has_insight_selectors().unwrap_or(false),
    })
}

/// Status and selectors of one trail, asked in its home region by ARN.
pub async fn trail_state(aws: &Aws, trail: Trail) -> TrailState {
    let client = aws.cloudtrail(&trail.home_region);
    let (status, selectors) = tokio::join!(
        client.get_trail_status().name(&trail.arn).send(),
        client.get_event_selectors().trail_name(&trail.arn).send(),
    );
    let status = status
        .map(|s| TrailStatus {
            is_logging: s.is_logging().unwrap_or(false),
            latest_delivery_time: s.latest_delivery_time().and_then(to_utc),
            latest_delivery_error: nonempty(s.latest_delivery_error()),
            latest_digest_delivery_time: s.latest_digest_delivery_time().and_then(to_utc),
            latest_digest_delivery_error: nonempty(s.latest_digest_delivery_error()),
            latest_notification_error: nonempty(s.latest_notification_error()),
            latest_cloud_watch_logs_delivery_time: s
                .latest_cloud_watch_logs_delivery_time()
                .and_then(to_utc),
            latest_cloud_watch_logs_delivery_error: nonempty(
                s.latest_cloud_watch_logs_delivery_error(),
            ),
            start_logging_time: s.start_logging_time().and_then(to_utc),
            stop_logging_time: s.stop_logging_time().and_then(to_utc),
        })
        .map_err(|e| unavailable("GetTrailStatus", &e));
    let selectors = selectors
        .map(|s| selectors_from_sdk(s.event_selectors(), s.advanced_event_selectors()))
        .map_err(|e| unavailable("GetEventSelectors", &e));
    TrailState {
        trail,
        status,
        selectors,
    }
}

fn selectors_from_sdk(
    basic: &[ct::EventSelector],
    advanced: &[ct::AdvancedEventSelector],
) -> EventSelectors {
    // A trail uses one form or the other; AWS answers with the one that is set.
    if !advanced.is_empty() {
        return EventSelectors::Advanced(
            advanced
                .iter()
                .map(|a| AdvancedSelector {
                    name: nonempty(a.name()),
                    field_selectors: a
                        .field_selectors()
                        .iter()
                        .map(|f| FieldSelector {
                            field: f.field().to_string(),
                            equals: f.equals().to_vec(),
                            not_equals: f.not_equals().to_vec(),
                            starts_with: f.starts_with().to_vec(),
                            not_starts_with: f.not_starts_with().to_vec(),
                            ends_with: f.ends_with().to_vec(),
                            not_ends_with: f.not_ends_with().to_vec(),
                        })
                        .collect(),
                })
                .collect(),
        );
    }
    EventSelectors::Basic(
        basic
            .iter()
            .map(|b| BasicSelector {
                read_write_type: match b.read_write_type() {
                    // Absent means All, as AWS documents.
                    None | Some(ct::ReadWriteType::All) => ReadWriteType::All,
                    Some(ct::ReadWriteType::ReadOnly) => ReadWriteType::ReadOnly,
                    Some(ct::ReadWriteType::WriteOnly) => ReadWriteType::WriteOnly,
                    Some(_) => ReadWriteType::Unrecognized,
                },
                // AWS documents the default as true when the field is absent.
                include_management_events: b.include_management_events().unwrap_or(true),
                exclude_management_event_sources: b.exclude_management_event_sources().to_vec(),
                data_resource_count: b.data_resources().len(),
            })
            .collect(),
    )
}
