//! Security Hub findings as AWS keeps them, which moto 5.2.5 does not: BatchImportFindings
//! checks each finding against the AWS Security Finding Format (its required attributes, the
//! caller's own product and account, at most 100 a call) and upserts it by (ProductArn, Id),
//! the workflow reset to NEW when its compliance stops passing (AWS resolves only its own
//! controls' findings: an imported one is resolved with BatchUpdateFindings); GetFindings
//! filters on `Id`, `GeneratorId`, `ComplianceStatus`, `WorkflowStatus` and `RecordState`
//! (EQUALS) and pages with NextToken. Kept per account and region.

use crate::call::Call;
use crate::server::Sim;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Findings by (account, region), then by (ProductArn, Id), in import order.
#[derive(Debug, Default)]
pub struct Findings {
    by_place: BTreeMap<(String, String), BTreeMap<(String, String), Value>>,
}

type Answer = (u16, String);

fn fault(code: &str, message: &str) -> Answer {
    (400, json!({"__type": code, "Message": message}).to_string())
}

/// The attributes BatchImportFindings requires of every finding.
const REQUIRED: [&str; 12] = [
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
];

/// BatchImportFindings and GetFindings; `None` for the other Security Hub calls (moto).
pub(crate) fn answer(sim: &Sim, call: &Call, body: &[u8]) -> Option<Answer> {
    if call.service != "securityhub" {
        return None;
    }
    let account = sim.caller_account(call);
    let place = (account.clone(), call.region.clone());
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut all = sim.security_hub.lock().expect("security hub lock");
    let findings = all.by_place.entry(place).or_default();
    Some(match call.operation.as_str() {
        "BatchImportFindings" => import(findings, &request, &account, &call.region),
        "GetFindings" => get(findings, &request),
        "BatchUpdateFindings" => update(findings, &request),
        _ => return None,
    })
}

/// Why a finding is refused, as Security Hub says it in FailedFindings.
fn refusal(f: &Value, account: &str, region: &str) -> Option<String> {
    if let Some(missing) = REQUIRED
        .iter()
        .find(|k| f.get(**k).is_none_or(Value::is_null))
    {
        return Some(format!(
            "Finding does not contain required attribute {missing}"
        ));
    }
    if f["SchemaVersion"] != "2018-10-08" {
        return Some("SchemaVersion must be 2018-10-08".into());
    }
    let own = format!("arn:aws:securityhub:{region}:{account}:product/{account}/default");
    if f["ProductArn"] != own.as_str() {
        return Some(format!(
            "ProductArn must be {own} for a finding the account imports itself"
        ));
    }
    if f["AwsAccountId"] != account {
        return Some("AwsAccountId must be the caller's account".into());
    }
    let resources = f["Resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if resources.is_empty() || resources.len() > 32 {
        return Some("Resources must hold 1 to 32 resources".into());
    }
    if resources
        .iter()
        .any(|r| !r["Id"].is_string() || !r["Type"].is_string())
    {
        return Some("each resource needs Id and Type".into());
    }
    let severity = &f["Severity"];
    let labels = ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"];
    if !severity["Label"]
        .as_str()
        .is_some_and(|l| labels.contains(&l))
    {
        return Some("Severity.Label must be INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL".into());
    }
    if let Some(status) = f["Compliance"]["Status"].as_str()
        && !["PASSED", "WARNING", "FAILED", "NOT_AVAILABLE"].contains(&status)
    {
        return Some(format!("Compliance.Status {status} is not valid"));
    }
    if f["Types"].as_array().is_none_or(Vec::is_empty) {
        return Some("Types needs at least one type".into());
    }
    for time in ["CreatedAt", "UpdatedAt"] {
        if f[time]
            .as_str()
            .is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_err())
        {
            return Some(format!("{time} must be an ISO 8601 time"));
        }
    }
    None
}

fn import(
    findings: &mut BTreeMap<(String, String), Value>,
    request: &Value,
    account: &str,
    region: &str,
) -> Answer {
    let Some(list) = request["Findings"].as_array() else {
        return fault("InvalidInputException", "Findings is required");
    };
    if list.is_empty() || list.len() > 100 {
        return fault(
            "InvalidInputException",
            "Findings must hold 1 to 100 findings",
        );
    }
    let mut failed = Vec::new();
    for f in list {
        if let Some(why) = refusal(f, account, region) {
            failed.push(json!({"Id": f["Id"], "ErrorCode": "InvalidInput", "ErrorMessage": why}));
            continue;
        }
        let key = (
            f["ProductArn"].as_str().unwrap_or_default().to_string(),
            f["Id"].as_str().unwrap_or_default().to_string(),
        );
        let mut stored = f.clone();
        // Security Hub keeps the first CreatedAt and the workflow the customer set, but resets
        // it to NEW when the compliance stops passing. A provider cannot set it on import.
        let old = findings.get(&key);
        if let Some(old) = old {
            stored["CreatedAt"] = old["CreatedAt"].clone();
        }
        let passed = |v: &Value| v["Compliance"]["Status"] == "PASSED";
        let workflow = match old {
            None => "NEW",
            Some(old) if !passed(f) && passed(old) => "NEW",
            Some(old) => old["Workflow"]["Status"].as_str().unwrap_or("NEW"),
        };
        stored["Workflow"] = json!({"Status": workflow});
        if stored["RecordState"].is_null() {
            stored["RecordState"] = json!("ACTIVE");
        }
        findings.insert(key, stored);
    }
    (
        200,
        json!({
            "FailedCount": failed.len(),
            "SuccessCount": list.len() - failed.len(),
            "FailedFindings": failed,
        })
        .to_string(),
    )
}

/// BatchUpdateFindings: the workflow status of findings named by (Id, ProductArn).
fn update(findings: &mut BTreeMap<(String, String), Value>, request: &Value) -> Answer {
    let Some(ids) = request["FindingIdentifiers"].as_array() else {
        return fault("InvalidInputException", "FindingIdentifiers is required");
    };
    let status = request["Workflow"]["Status"].as_str();
    if let Some(s) = status
        && !["NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"].contains(&s)
    {
        return fault("InvalidInputException", "Workflow.Status is not valid");
    }
    let (mut processed, mut unprocessed) = (Vec::new(), Vec::new());
    for id in ids {
        let key = (
            id["ProductArn"].as_str().unwrap_or_default().to_string(),
            id["Id"].as_str().unwrap_or_default().to_string(),
        );
        match findings.get_mut(&key) {
            Some(f) => {
                if let Some(s) = status {
                    f["Workflow"] = json!({"Status": s});
                }
                processed.push(id.clone());
            }
            None => unprocessed.push(json!({
                "FindingIdentifier": id, "ErrorCode": "FindingNotFound",
                "ErrorMessage": "no such finding",
            })),
        }
    }
    (
        200,
        json!({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}).to_string(),
    )
}

/// The GetFindings filters trailsim knows.
const FILTERS: [&str; 5] = [
    "Id",
    "GeneratorId",
    "ComplianceStatus",
    "WorkflowStatus",
    "RecordState",
];

/// The value a GetFindings filter name reads.
fn field<'a>(f: &'a Value, filter: &str) -> &'a Value {
    match filter {
        "Id" => &f["Id"],
        "GeneratorId" => &f["GeneratorId"],
        "ComplianceStatus" => &f["Compliance"]["Status"],
        "WorkflowStatus" => &f["Workflow"]["Status"],
        "RecordState" => &f["RecordState"],
        _ => &Value::Null,
    }
}

fn get(findings: &BTreeMap<(String, String), Value>, request: &Value) -> Answer {
    let filters = request["Filters"].as_object().cloned().unwrap_or_default();
    for name in filters.keys() {
        if !FILTERS.contains(&name.as_str()) {
            return fault(
                "InvalidInputException",
                &format!(
                    "trailsim filters only Id, GeneratorId, ComplianceStatus, WorkflowStatus and RecordState, not {name}"
                ),
            );
        }
    }
    let matching: Vec<&Value> = findings
        .values()
        .filter(|f| {
            filters.iter().all(|(name, conditions)| {
                conditions.as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["Comparison"] == "EQUALS" && *field(f, name) == c["Value"])
                })
            })
        })
        .collect();
    let max = request["MaxResults"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let start: usize = request["NextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<&Value> = matching.iter().skip(start).take(max).copied().collect();
    let mut out = json!({"Findings": page});
    if start + max < matching.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    (200, out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "111111111111";
    const REGION: &str = "us-east-1";

    fn finding(id: &str, status: &str) -> Value {
        json!({
            "SchemaVersion": "2018-10-08", "Id": id,
            "ProductArn": format!("arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"),
            "GeneratorId": "trail-logging", "AwsAccountId": ACCOUNT,
            "Types": ["Software and Configuration Checks"],
            "CreatedAt": "2026-12-01T00:00:00Z", "UpdatedAt": "2026-12-01T00:00:00Z",
            "Severity": {"Label": "CRITICAL"}, "Title": "t", "Description": "d",
            "Resources": [{"Type": "AwsCloudTrailTrail", "Id": "arn:aws:cloudtrail:x"}],
            "Compliance": {"Status": status},
        })
    }

    fn import_one(store: &mut BTreeMap<(String, String), Value>, f: Value) -> Value {
        let (_, body) = import(store, &json!({"Findings": [f]}), ACCOUNT, REGION);
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn a_finding_is_upserted_by_id_and_keeps_its_first_creation() {
        let mut store = BTreeMap::new();
        assert_eq!(
            import_one(&mut store, finding("a", "FAILED"))["SuccessCount"],
            1
        );
        let mut again = finding("a", "PASSED");
        again["CreatedAt"] = json!("2026-12-02T00:00:00Z");
        import_one(&mut store, again);
        assert_eq!(store.len(), 1);
        let kept = store.values().next().unwrap();
        assert_eq!(kept["Compliance"]["Status"], "PASSED");
        assert_eq!(
            kept["Workflow"]["Status"], "NEW",
            "an imported finding is not resolved by AWS"
        );
        assert_eq!(kept["CreatedAt"], "2026-12-01T00:00:00Z");
        let product = kept["ProductArn"].clone();
        let (_, body) = update(
            &mut store,
            &json!({"FindingIdentifiers": [{"Id": "a", "ProductArn": product}],
                    "Workflow": {"Status": "RESOLVED"}}),
        );
        assert!(body.contains("ProcessedFindings"), "{body}");
        assert_eq!(
            store.values().next().unwrap()["Workflow"]["Status"],
            "RESOLVED"
        );
        // Failing again reopens it.
        import_one(&mut store, finding("a", "FAILED"));
        assert_eq!(store.values().next().unwrap()["Workflow"]["Status"], "NEW");
        let (_, body) = get(
            &store,
            &json!({"Filters": {"Id": [{"Value": "a", "Comparison": "EQUALS"}]}}),
        );
        let found: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(found["Findings"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn findings_that_break_the_format_are_refused_one_by_one() {
        let mut store = BTreeMap::new();
        let cases: [(&str, Value); 5] = [
            ("Title", json!(null)),
            (
                "ProductArn",
                json!("arn:aws:securityhub:us-east-1:222222222222:product/222222222222/default"),
            ),
            ("AwsAccountId", json!("222222222222")),
            ("Severity", json!({"Label": "SEVERE"})),
            ("Resources", json!([])),
        ];
        for (key, value) in cases {
            let mut f = finding("b", "FAILED");
            f[key] = value;
            let answer = import_one(&mut store, f);
            assert_eq!(answer["FailedCount"], 1, "{key}: {answer}");
        }
        assert!(store.is_empty());
    }
}
