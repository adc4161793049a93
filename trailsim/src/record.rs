//! CloudTrail records of the calls trailsim forwards, shaped as AWS writes them.

use crate::call::Call;
use crate::identity::Identity;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// What the upstream answered.
pub struct Outcome<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub request_id: Option<&'a str>,
}

pub fn event_source(service: &str) -> String {
    format!("{service}.amazonaws.com")
}

/// Reads are Get*, List*, Describe*, Lookup*, Head*: what CloudTrail marks `readOnly`.
pub fn is_read_only(operation: &str) -> bool {
    ["Get", "List", "Describe", "Lookup", "Head"]
        .iter()
        .any(|p| operation.starts_with(p))
}

pub fn build(
    call: &Call,
    identity: &Identity,
    outcome: &Outcome<'_>,
    time: DateTime<Utc>,
    source_ip: &str,
    user_agent: &str,
) -> Value {
    let read_only = is_read_only(&call.operation);
    let succeeded = (200..300).contains(&outcome.status);
    let mut record = json!({
        "eventVersion": "1.11",
        "userIdentity": identity.to_record(&call.access_key_id),
        "eventTime": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "eventSource": event_source(&call.service),
        "eventName": call.operation,
        "awsRegion": call.region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": request_parameters(call),
        "responseElements": if succeeded && !read_only { camel_keys(response_elements(outcome.body)) } else { Value::Null },
        "requestID": outcome.request_id.map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": identity.account_id,
        "eventCategory": "Management",
    });
    if !succeeded {
        let (code, message) = error_of(outcome.status, outcome.body);
        record["errorCode"] = json!(code);
        record["errorMessage"] = json!(message);
    }
    let resources = resources(call, &identity.account_id);
    if !resources.is_empty() {
        record["resources"] = Value::Array(resources);
    }
    record
}

/// CloudTrail writes JSON-protocol parameters in lowerCamelCase (`name`, `keyId`); S3 and
/// STS parameters are built in CloudTrail's form already.
fn request_parameters(call: &Call) -> Value {
    match call.service.as_str() {
        "s3" | "sts" => call.parameters.clone(),
        _ => camel_keys(call.parameters.clone()),
    }
}

fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let mut chars = k.chars();
                    let key = match chars.next() {
                        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
                        None => k,
                    };
                    (key, camel_keys(v))
                })
                .collect(),
        ),
        Value::Array(list) => Value::Array(list.into_iter().map(camel_keys).collect()),
        other => other,
    }
}

fn response_elements(body: &[u8]) -> Value {
    if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    crate::xml::document(body).map_or(Value::Null, |(_, v)| v)
}

/// The error code and message of a failed answer, JSON (`__type`) or XML (`<Code>`).
pub fn error_of(status: u16, body: &[u8]) -> (String, String) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let code = v["__type"]
            .as_str()
            .or(v["code"].as_str())
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
        let message = v["message"].as_str().or(v["Message"].as_str());
        if let Some(code) = code {
            return (code, message.unwrap_or_default().to_string());
        }
    }
    if let Some((_, doc)) = crate::xml::document(body) {
        let error = if doc["Error"].is_object() {
            &doc["Error"]
        } else {
            &doc
        };
        if let Some(code) = error["Code"].as_str() {
            return (
                code.to_string(),
                error["Message"].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    (format!("HTTP{status}"), format!("HTTP status {status}"))
}

/// The resources a call names, as CloudTrail lists them.
fn resources(call: &Call, account: &str) -> Vec<Value> {
    let p = &call.parameters;
    let region = &call.region;
    match call.service.as_str() {
        "cloudtrail" => ["Name", "TrailName"]
            .iter()
            .find_map(|k| p[k].as_str())
            .map(|name| {
                let arn = if name.starts_with("arn:") {
                    name.to_string()
                } else {
                    format!("arn:aws:cloudtrail:{region}:{account}:trail/{name}")
                };
                vec![json!({"accountId": account, "type": "AWS::CloudTrail::Trail", "ARN": arn})]
            })
            .unwrap_or_default(),
        "s3" => p["bucketName"]
            .as_str()
            .map(|b| {
                vec![json!({"accountId": account, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{b}")})]
            })
            .unwrap_or_default(),
        "kms" => p["KeyId"]
            .as_str()
            .filter(|k| !k.starts_with("alias/"))
            .map(|k| {
                let arn = if k.starts_with("arn:") {
                    k.to_string()
                } else {
                    format!("arn:aws:kms:{region}:{account}:key/{k}")
                };
                vec![json!({"accountId": account, "type": "AWS::KMS::Key", "ARN": arn})]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &str, operation: &str, parameters: Value) -> Call {
        Call {
            service: service.into(),
            operation: operation.into(),
            region: "us-east-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            parameters,
            data: None,
        }
    }

    #[test]
    fn a_stop_logging_record() {
        let c = call("cloudtrail", "StopLogging", json!({"Name": "lab"}));
        let id = Identity::default_user("AKIAEXAMPLE");
        let ok = Outcome {
            status: 200,
            body: b"{}",
            request_id: Some("r-1"),
        };
        let t = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = build(&c, &id, &ok, t, "127.0.0.1", "aws-sdk-rust");
        assert_eq!(r["eventSource"], "cloudtrail.amazonaws.com");
        assert_eq!(r["eventName"], "StopLogging");
        assert_eq!(r["eventTime"], "2026-11-24T08:00:00Z");
        assert_eq!(r["readOnly"], false);
        assert_eq!(r["requestID"], "r-1");
        assert_eq!(
            r["resources"][0]["ARN"],
            "arn:aws:cloudtrail:us-east-1:123456789012:trail/lab"
        );
        assert_eq!(
            r["requestParameters"],
            json!({"name": "lab"}),
            "lowerCamelCase, as CloudTrail"
        );
        assert!(r.get("errorCode").is_none());
    }

    #[test]
    fn failures_carry_the_error() {
        let c = call("cloudtrail", "StopLogging", json!({"Name": "missing"}));
        let id = Identity::default_user("AKIAEXAMPLE");
        let body = br#"{"__type":"TrailNotFoundException","message":"Unknown trail"}"#;
        let failed = Outcome {
            status: 400,
            body,
            request_id: None,
        };
        let r = build(&c, &id, &failed, Utc::now(), "127.0.0.1", "ua");
        assert_eq!(r["errorCode"], "TrailNotFoundException");
        assert_eq!(r["errorMessage"], "Unknown trail");
        assert_eq!(r["responseElements"], Value::Null);

        let s3 = br#"<?xml version="1.0"?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>"#;
        assert_eq!(error_of(404, s3), ("NoSuchBucket".into(), "gone".into()));
        let qs = br#"<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>"#;
        assert_eq!(error_of(403, qs).0, "AccessDenied");
        assert_eq!(error_of(500, b"<html>").0, "HTTP500");
    }

    #[test]
    fn reads_are_read_only() {
        assert!(is_read_only("GetTrailStatus"));
        assert!(is_read_only("DescribeTrails"));
        assert!(is_read_only("LookupEvents"));
        assert!(!is_read_only("StopLogging"));
        assert!(!is_read_only("PutBucketLifecycle"));
    }
}
