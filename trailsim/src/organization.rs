//! Organizations as CloudTrail sees them. moto shows a trail only to the account that owns it;
//! AWS shows an organization trail to every active member account of its organization as a
//! shadow trail: in DescribeTrails and ListTrails (in the regions where its owner sees it: its
//! home region, or every region when it is multi-region), and GetTrailStatus and
//! GetEventSelectors by its ARN answer the owner's status and selectors.
//!
//! CloudTrail's delegated administrator (RegisterDelegatedAdministrator) creates and changes
//! organization trails, which AWS keeps in the management account: those calls reach moto as
//! the management account.
//!
//! Who is a member comes from moto's Organizations (DescribeOrganization as the caller,
//! ListAccounts as the management account): an account that is not ACTIVE (closed, suspended)
//! is no member. Every answer asks moto (or, with `--read-cache`, moto's answer kept since
//! the last write), so a StopLogging, a closed account or a new trail shows at once.

use crate::call::Call;
use crate::delivery::Organization;
use crate::server::Sim;
use crate::upstream::Upstream;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};

/// The organization `account` manages, with its active accounts; `None` when it manages none
/// (a member account, or no organization).
pub(crate) async fn managed_by(sim: &Sim, account: &str) -> Option<Organization> {
    let org = describe(sim, account).await?;
    if org["MasterAccountId"] != account {
        return None;
    }
    let accounts = accounts(sim, account)
        .await?
        .into_iter()
        .filter(|(_, active)| *active)
        .map(|(id, _)| id)
        .collect();
    Some(Organization {
        id: org["Id"].as_str()?.to_string(),
        accounts,
    })
}

/// The management account of the organization `account` is an active member of; `None` for
/// the management account itself and for accounts outside any organization.
async fn management_of(sim: &Sim, account: &str) -> Option<String> {
    let org = describe(sim, account).await?;
    let management = org["MasterAccountId"].as_str()?;
    if management == account {
        return None;
    }
    let accounts = accounts(sim, management).await?;
    accounts
        .iter()
        .any(|(id, active)| id == account && *active)
        .then(|| management.to_string())
}

/// DescribeOrganization as `account`: its organization, whether it manages it or is a member.
async fn describe(sim: &Sim, account: &str) -> Option<Value> {
    let mut org = sim
        .upstream
        .organizations_as(account, "DescribeOrganization", &json!({}))
        .await
        .ok()?;
    Some(org["Organization"].take())
}

/// Every account of the organization `management` manages, and whether it is active.
async fn accounts(sim: &Sim, management: &str) -> Option<Vec<(String, bool)>> {
    let mut accounts = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let body = match &token {
            Some(t) => json!({"NextToken": t}),
            None => json!({}),
        };
        // Only the management account may list the accounts.
        let page = sim
            .upstream
            .organizations_as(management, "ListAccounts", &body)
            .await
            .ok()?;
        for a in page["Accounts"].as_array().into_iter().flatten() {
            if let Some(id) = a["Id"].as_str() {
                // `State` supersedes `Status` (it knows CLOSED); older answers have `Status`.
                let state = a["State"].as_str().or(a["Status"].as_str());
                accounts.push((id.to_string(), state == Some("ACTIVE")));
            }
        }
        token = page["NextToken"].as_str().map(str::to_string);
        if token.is_none() {
            return Some(accounts);
        }
    }
}

/// The organization trails `account` sees in `region`, described as moto describes them to
/// their owner in that region.
async fn shadow_trails(sim: &Sim, account: &str, region: &str) -> Vec<Value> {
    let Some(management) = management_of(sim, account).await else {
        return Vec::new();
    };
    let all = json!({"includeShadowTrails": true});
    match sim
        .upstream
        .cloudtrail_as(&management, region, "DescribeTrails", &all)
        .await
    {
        Ok(mut v) => match v["trailList"].take() {
            Value::Array(list) => list
                .into_iter()
                .filter(|t| t["IsOrganizationTrail"] == true)
                .collect(),
            _ => Vec::new(),
        },
        Err(e) => {
            tracing::warn!(
                account,
                management,
                region,
                "organization trails unknown: {e}"
            );
            Vec::new()
        }
    }
}

/// DescribeTrails and ListTrails answers with the organization trails the caller sees as a
/// member; DescribeTrails also keeps only what `trailNameList` names (moto ignores it).
pub async fn with_shadow_trails(sim: &Sim, call: &Call, answer: Bytes) -> Bytes {
    let list_field = match call.operation.as_str() {
        "DescribeTrails" => "trailList",
        "ListTrails" => "Trails",
        _ => return answer,
    };
    let names: Vec<&str> = call.parameters["trailNameList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    // Without shadow trails, AWS leaves out organization trails in member accounts.
    let shadows = call.parameters["includeShadowTrails"] != false;
    let account = sim.caller_account(call);
    let found = if shadows {
        shadow_trails(sim, &account, &call.region).await
    } else {
        Vec::new()
    };
    if found.is_empty() && names.is_empty() {
        return answer;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&answer) else {
        return answer;
    };
    let Some(list) = v[list_field].as_array_mut() else {
        return answer;
    };
    for trail in found {
        if list.iter().any(|t| t["TrailARN"] == trail["TrailARN"]) {
            continue;
        }
        list.push(match list_field {
            "Trails" => json!({"TrailARN": trail["TrailARN"], "Name": trail["Name"],
                "HomeRegion": trail["HomeRegion"]}),
            _ => trail,
        });
    }
    if !names.is_empty() {
        list.retain(|t| named(t, &names, &account, &call.region));
    }
    Bytes::from(v.to_string())
}

/// Whether `trailNameList` names a trail: by ARN any trail, by name only the caller's own
/// trails of this region (AWS: another region's trail needs its ARN).
fn named(trail: &Value, names: &[&str], account: &str, region: &str) -> bool {
    let arn = trail["TrailARN"].as_str().unwrap_or_default();
    let own_here = arn.split(':').nth(4) == Some(account) && trail["HomeRegion"] == region;
    names
        .iter()
        .any(|n| *n == arn || (own_here && trail["Name"] == *n))
}

/// Calls answered as the organization trail's owner (the management account), in moto: the
/// request's headers changed to reach moto as the owner. `None`: the call goes as it came.
///
/// - GetTrailStatus or GetEventSelectors of an organization trail by its ARN, from a member
///   that sees it: in the trail's home region (a bare name resolves in the caller's own
///   account, as in AWS).
/// - From CloudTrail's delegated administrator: CreateTrail of an organization trail (AWS
///   creates it in the management account, whoever asks), and changes to an organization
///   trail by its ARN (start, stop, update, delete, selectors).
pub async fn as_owner(sim: &Sim, call: &Call, headers: &HeaderMap) -> Option<HeaderMap> {
    if call.service != "cloudtrail" {
        return None;
    }
    let p = &call.parameters;
    let (arn, managing) = match call.operation.as_str() {
        "GetTrailStatus" => (p["Name"].as_str(), false),
        "GetEventSelectors" => (p["TrailName"].as_str(), false),
        "CreateTrail" if p["IsOrganizationTrail"] == true => {
            let management = delegated_by(sim, &sim.caller_account(call)).await?;
            return Some(Upstream::headers_as(
                headers,
                &management,
                &call.region,
                "cloudtrail",
            ));
        }
        "StartLogging" | "StopLogging" | "DeleteTrail" | "UpdateTrail" => {
            (p["Name"].as_str(), true)
        }
        "PutEventSelectors" | "PutInsightSelectors" => (p["TrailName"].as_str(), true),
        _ => (None, false),
    };
    let arn = arn?;
    // arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME
    let owner = arn.strip_prefix("arn:")?.split(':').nth(3)?;
    let account = sim.caller_account(call);
    if owner == account {
        return None;
    }
    if managing && delegated_by(sim, &account).await.as_deref() != Some(owner) {
        return None;
    }
    let trail = shadow_trails(sim, &account, &call.region)
        .await
        .into_iter()
        .find(|t| t["TrailARN"] == arn)?;
    let home = trail["HomeRegion"].as_str().unwrap_or(&call.region);
    Some(Upstream::headers_as(headers, owner, home, "cloudtrail"))
}

/// The management account that registered `account` as CloudTrail's delegated administrator
/// (RegisterOrganizationDelegatedAdmin), while it is an active member; `None` otherwise.
async fn delegated_by(sim: &Sim, account: &str) -> Option<String> {
    let management = management_of(sim, account).await?;
    let admins = sim.delegated_admins.lock().expect("delegated admins lock");
    admins
        .get(&management)
        .is_some_and(|set| set.contains(account))
        .then_some(management)
}

/// CloudTrail's RegisterOrganizationDelegatedAdmin and DeregisterOrganizationDelegatedAdmin,
/// answered by trailsim (status and JSON body): only the management account may call them,
/// for an active member. `None` for any other operation.
pub async fn delegated_admin_call(sim: &Sim, call: &Call) -> Option<(u16, String)> {
    let (register, member) = match call.operation.as_str() {
        "RegisterOrganizationDelegatedAdmin" => (true, &call.parameters["MemberAccountId"]),
        "DeregisterOrganizationDelegatedAdmin" => {
            (false, &call.parameters["DelegatedAdminAccountId"])
        }
        _ => return None,
    };
    let refuse = |code: &str, message: String| {
        Some((400, json!({"__type": code, "message": message}).to_string()))
    };
    let account = sim.caller_account(call);
    let Some(org) = managed_by(sim, &account).await else {
        return refuse(
            "NotOrganizationManagementAccountException",
            format!("{account} is not the management account of an organization"),
        );
    };
    let member = member.as_str().unwrap_or_default().to_string();
    if !org.accounts.contains(&member) || member == account {
        return refuse(
            "AccountNotFoundException",
            format!("{member} is not an active member of {}", org.id),
        );
    }
    let mut admins = sim.delegated_admins.lock().expect("delegated admins lock");
    let set = admins.entry(account).or_default();
    if register {
        set.insert(member);
    } else {
        set.remove(&member);
    }
    Some((200, "{}".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_own_trails_of_the_region_and_arns_match_any() {
        let own = json!({"TrailARN": "arn:aws:cloudtrail:us-east-1:111111111111:trail/lab",
            "Name": "lab", "HomeRegion": "us-east-1"});
        let org = json!({"TrailARN": "arn:aws:cloudtrail:us-east-1:222222222222:trail/org",
            "Name": "org", "HomeRegion": "us-east-1"});
        let here = |t: &Value, names: &[&str]| named(t, names, "111111111111", "us-east-1");
        assert!(here(&own, &["lab"]));
        assert!(!named(&own, &["lab"], "111111111111", "eu-west-1"));
        assert!(
            !here(&org, &["org"]),
            "another account's trail needs its ARN"
        );
        assert!(here(
            &org,
            &["arn:aws:cloudtrail:us-east-1:222222222222:trail/org"]
        ));
        assert!(!here(&own, &["org"]));
    }
}
