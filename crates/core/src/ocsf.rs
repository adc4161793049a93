//! Findings and detections as OCSF 1.8.0 events, for security data lakes and the new
//! Security Hub: a policy's finding is a Compliance Finding (class 2003), a detection's hit a
//! Detection Finding (class 2004). The tests validate both against the OCSF schema
//! (tests/ocsf/).
//!
//! trailwarden's four statuses map onto OCSF's compliance status without losing one: `pass`
//! is Pass, `fail` Fail, and `error` and `pending` are Other (99) with `status` naming them
//! and `status_detail` saying why: never a Pass, never a Fail.

use crate::config::Severity;
use crate::evaluate::detection::{Hit, Outcome};
use crate::evaluate::{Finding, Status};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// The OCSF schema version the events follow.
pub const OCSF_VERSION: &str = "1.8.0";

const FINDINGS_CATEGORY: u32 = 2;
const COMPLIANCE_FINDING: u32 = 2003;
const DETECTION_FINDING: u32 = 2004;
const ACTIVITY_CREATE: u32 = 1;

fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// OCSF's compliance status: (status_id, status).
fn compliance_status(s: Status) -> (u32, &'static str) {
    match s {
        Status::Pass => (1, "Pass"),
        Status::Fail => (3, "Fail"),
        Status::Error => (99, "Error"),
        Status::Pending => (99, "Pending"),
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// What every event carries: class, activity, severity, time, metadata, cloud.
fn base(
    class_uid: u32,
    class_name: &str,
    severity_of: Severity,
    time: DateTime<Utc>,
    product_version: &str,
    account: &str,
    region: &str,
) -> Map<String, Value> {
    let (severity_id, severity_name) = severity(severity_of);
    let mut cloud = json!({"provider": "AWS"});
    if !region.is_empty() {
        cloud["region"] = json!(region);
    }
    if !account.is_empty() {
        cloud["account"] = json!({"uid": account, "type_id": 10, "type": "AWS Account"});
    }
    let event = json!({
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": FINDINGS_CATEGORY,
        "category_name": "Findings",
        "class_uid": class_uid,
        "class_name": class_name,
        "type_uid": class_uid * 100 + ACTIVITY_CREATE,
        "type_name": format!("{class_name}: Create"),
        "severity_id": severity_id,
        "severity": severity_name,
        "time": millis(time),
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": ["cloud"],
            "product": {
                "name": "trailwarden",
                "uid": "trailwarden",
                "vendor_name": "trailwarden",
                "version": product_version,
            },
        },
        "cloud": cloud,
    });
    match event {
        Value::Object(m) => m,
        _ => unreachable!("json! of an object"),
    }
}

/// The AWS resource type of a finding's resource: a trail, else the account or region.
fn resource_type(resource: &str) -> &'static str {
    if resource.starts_with("arn:") && resource.contains(":cloudtrail:") {
        "AWS::CloudTrail::Trail"
    } else if resource.starts_with("account/") {
        "AWS::::Account"
    } else {
        "AWS::Region"
    }
}

/// One policy's finding as a Compliance Finding. `since` is when it entered its status (the
/// daemon's state store; `None` in `check`), `evaluated_at` when it was judged.
pub fn compliance_finding(
    f: &Finding,
    description: Option<&str>,
    since: Option<DateTime<Utc>>,
    evaluated_at: DateTime<Utc>,
    product_version: &str,
) -> Value {
    let mut event = base(
        COMPLIANCE_FINDING,
        "Compliance Finding",
        f.severity,
        evaluated_at,
        product_version,
        &f.account,
        &f.region,
    );
    let (status_id, status) = compliance_status(f.status);
    // The finding itself is resolved once the policy passes; otherwise it is open.
    let (finding_status_id, finding_status) = if f.status == Status::Pass {
        (4, "Resolved")
    } else {
        (1, "New")
    };
    let mut compliance = json!({
        "control": f.policy,
        "standards": ["trailwarden"],
        "status_id": status_id,
        "status": status,
        "status_details": [f.message],
    });
    let mut finding_info = json!({
        "uid": f.uid(),
        "title": description.unwrap_or(&f.policy),
        "types": ["CloudTrail compliance"],
        "analytic": {"uid": f.policy, "name": f.policy, "type_id": 1, "type": "Rule"},
        "last_seen_time": millis(evaluated_at),
    });
    if let Some(d) = description {
        compliance["desc"] = json!(d);
        finding_info["desc"] = json!(d);
    }
    if let Some(since) = since {
        finding_info["first_seen_time"] = json!(millis(since));
    }
    let mut resource = json!({
        "uid": f.resource,
        "name": f.resource_name,
        "type": resource_type(&f.resource),
    });
    if !f.region.is_empty() {
        resource["region"] = json!(f.region);
    }
    event.insert("status_id".into(), json!(finding_status_id));
    event.insert("status".into(), json!(finding_status));
    event.insert("message".into(), json!(f.message));
    event.insert("compliance".into(), compliance);
    event.insert("finding_info".into(), finding_info);
    event.insert("resources".into(), json!([resource]));
    event.insert(
        "unmapped".into(),
        json!({"trailwarden": {"status": f.status.as_str()}}),
    );
    Value::Object(event)
}

/// One detection's hit as a Detection Finding: the CloudTrail event's API call, who made it
/// and from where, as the finding's evidence.
pub fn detection_finding(hit: &Hit, product_version: &str) -> Value {
    let mut event = base(
        DETECTION_FINDING,
        "Detection Finding",
        hit.severity,
        hit.event_time,
        product_version,
        &hit.account,
        &hit.region,
    );
    let mut api = json!({
        "operation": hit.event_name,
        "service": {"name": hit.event_source},
    });
    if hit.outcome == Outcome::Failure {
        api["response"] = json!({"error": hit.error_code.as_deref().unwrap_or("failure")});
    }
    let mut evidence = json!({"name": hit.event_name, "uid": hit.event_id, "api": api});
    if let Some(actor) = &hit.actor {
        let mut user = json!({"uid": actor});
        if let Some(kind) = &hit.actor_type {
            user["type"] = json!(kind);
        }
        evidence["actor"] = json!({"user": user});
        // The top-level actor belongs to OCSF's host profile.
        event.insert("actor".into(), evidence["actor"].clone());
        event["metadata"]["profiles"] = json!(["cloud", "host"]);
    }
    if let Some(source) = &hit.source_ip {
        // CloudTrail names an AWS service here when one made the call: not an address.
        let endpoint = if source.parse::<std::net::IpAddr>().is_ok() {
            json!({"ip": source})
        } else {
            json!({"hostname": source})
        };
        // A Detection Finding keeps where the call came from in its evidence only.
        evidence["src_endpoint"] = endpoint;
    }
    if let Some(agent) = &hit.user_agent {
        evidence["http_request"] = json!({"user_agent": agent});
    }
    let title = hit
        .sigma
        .as_ref()
        .map_or(hit.detection.as_str(), |(title, _)| title.as_str());
    let target = hit.resource.as_deref().unwrap_or("its target");
    let message = format!(
        "{title}: {} by {} on {target} ({})",
        hit.event_name,
        hit.actor.as_deref().unwrap_or("an unknown actor"),
        hit.outcome.as_str()
    );
    let analytic_type = if hit.sigma.is_some() {
        "Sigma rule"
    } else {
        "Rule"
    };
    event.insert("status_id".into(), json!(1));
    event.insert("status".into(), json!("New"));
    event.insert("is_alert".into(), json!(true));
    event.insert("message".into(), json!(message));
    event.insert("api".into(), evidence["api"].clone());
    event.insert(
        "finding_info".into(),
        json!({
            "uid": format!("{}/{}", hit.event_id, hit.detection),
            "title": title,
            "types": ["CloudTrail tampering"],
            "analytic": {"uid": hit.detection, "name": hit.detection, "type_id": 1,
                         "type": analytic_type},
            "first_seen_time": millis(hit.event_time),
            "last_seen_time": millis(hit.event_time),
        }),
    );
    if let Some(resource) = &hit.resource {
        let mut r = json!({"uid": resource});
        if resource.starts_with("arn:") && resource.contains(":cloudtrail:") {
            r["type"] = json!("AWS::CloudTrail::Trail");
        }
        event.insert("resources".into(), json!([r]));
    }
    event.insert("evidences".into(), json!([evidence]));
    let mut unmapped = json!({
        "event_id": hit.event_id,
        "outcome": hit.outcome.as_str(),
        "request_parameters": hit.request,
    });
    if let Some((_, Some(author))) = &hit.sigma {
        unmapped["sigma_author"] = json!(author);
    }
    event.insert("unmapped".into(), json!({"trailwarden": unmapped}));
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(status: Status) -> Finding {
        Finding {
            policy: "trail-logging".into(),
            severity: Severity::Critical,
            status,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            resource: "arn:aws:cloudtrail:us-east-1:123456789012:trail/org".into(),
            resource_name: "org".into(),
            message: "why".into(),
        }
    }

    #[test]
    fn every_status_keeps_its_meaning() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        // (trailwarden status, compliance.status_id, compliance.status, finding status_id)
        let cases = [
            (Status::Pass, 1, "Pass", 4),
            (Status::Fail, 3, "Fail", 1),
            (Status::Error, 99, "Error", 1),
            (Status::Pending, 99, "Pending", 1),
        ];
        for (status, id, name, finding_status) in cases {
            let e = compliance_finding(&finding(status), None, None, t, "0.1.0");
            assert_eq!(e["compliance"]["status_id"], id, "{status:?}");
            assert_eq!(e["compliance"]["status"], name, "{status:?}");
            assert_eq!(e["compliance"]["status_details"][0], "why");
            assert_eq!(e["status_id"], finding_status, "{status:?}");
        }
    }

    #[test]
    fn a_findings_uid_is_the_same_at_every_evaluation() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = compliance_finding(&finding(Status::Fail), None, None, t, "0.1.0");
        let b = compliance_finding(
            &finding(Status::Pass),
            Some("d"),
            Some(t),
            t + chrono::Duration::hours(1),
            "0.1.0",
        );
        assert_eq!(a["finding_info"]["uid"], b["finding_info"]["uid"]);
        assert_eq!(a["type_uid"], 200301);
        assert_eq!(a["severity_id"], 5);
        assert_eq!(a["resources"][0]["type"], "AWS::CloudTrail::Trail");
    }

    #[test]
    fn a_service_as_source_is_a_hostname_not_an_address() {
        let mut hit = Hit {
            detection: "stop".into(),
            severity: Severity::High,
            outcome: Outcome::Failure,
            event_id: "e1".into(),
            event_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            event_source: "cloudtrail.amazonaws.com".into(),
            event_name: "StopLogging".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            actor: None,
            actor_type: None,
            source_ip: Some("cloudformation.amazonaws.com".into()),
            user_agent: None,
            resource: None,
            request: "{}".into(),
            error_code: Some("AccessDenied".into()),
            recollect: false,
            sigma: None,
        };
        let e = detection_finding(&hit, "0.1.0");
        let evidence = &e["evidences"][0];
        assert_eq!(
            evidence["src_endpoint"]["hostname"],
            "cloudformation.amazonaws.com"
        );
        assert_eq!(e["api"]["response"]["error"], "AccessDenied");
        assert!(e.get("actor").is_none() && e.get("resources").is_none());
        hit.source_ip = Some("198.51.100.7".into());
        let e = detection_finding(&hit, "0.1.0");
        assert_eq!(e["evidences"][0]["src_endpoint"]["ip"], "198.51.100.7");
    }
}
