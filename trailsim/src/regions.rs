//! Trails across regions, as AWS answers for them and moto does not: ListTrails names every
//! trail of the account with its home region whichever region it is asked in, and
//! DescribeTrails describes a trail of another region when `trailNameList` names it by ARN.
//! moto answers with the multi-region trails and the asked region's own only.
//!
//! The regions looked in are those the account has made calls in (a trail is created by a
//! call, recorded in its home region) and us-east-1.

use crate::call::Call;
use crate::server::Sim;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The answer with the caller's trails of other regions added: every one for ListTrails,
/// those named by ARN for DescribeTrails.
pub async fn across_regions(sim: &Sim, call: &Call, answer: Bytes) -> Bytes {
    let (list_field, wanted) = match call.operation.as_str() {
        "ListTrails" => ("Trails", None),
        "DescribeTrails" => {
            let arns: BTreeSet<String> = call.parameters["trailNameList"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|n| n.starts_with("arn:") && arn_region(n) != Some(&call.region))
                .map(str::to_string)
                .collect();
            if arns.is_empty() {
                return answer;
            }
            ("trailList", Some(arns))
        }
        _ => return answer,
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(&answer) else {
        return answer;
    };
    let account = sim.caller_account(call);
    let regions: BTreeSet<String> = match &wanted {
        // Each named trail's home region.
        Some(arns) => arns
            .iter()
            .filter(|a| a.split(':').nth(4) == Some(account.as_str()))
            .filter_map(|a| arn_region(a).map(str::to_string))
            .collect(),
        None => {
            let mut r = sim
                .history
                .lock()
                .expect("history lock")
                .regions_of(&account);
            r.insert("us-east-1".to_string());
            r
        }
    };
    let mut found = Vec::new();
    for region in regions.iter().filter(|r| **r != call.region) {
        let body = match list_field {
            "Trails" => json!({}),
            _ => json!({"includeShadowTrails": false}),
        };
        match sim
            .upstream
            .cloudtrail(&call.access_key_id, region, &call.operation, &body)
            .await
        {
            Ok(mut other) => {
                if let Value::Array(list) = other[list_field].take() {
                    found.extend(list.into_iter().filter(|t| {
                        wanted
                            .as_ref()
                            .is_none_or(|w| t["TrailARN"].as_str().is_some_and(|a| w.contains(a)))
                    }));
                }
            }
            Err(e) => tracing::warn!(account, region, "trails of another region unknown: {e}"),
        }
    }
    let Some(list) = v[list_field].as_array_mut() else {
        return answer;
    };
    for trail in found {
        if !list.iter().any(|t| t["TrailARN"] == trail["TrailARN"]) {
            list.push(trail);
        }
    }
    Bytes::from(v.to_string())
}

fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}
