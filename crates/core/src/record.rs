//! One CloudTrail record as a plain value: the fields detections and `/status` use, read
//! leniently from what AWS really writes (eventVersion 1.0x, optional fields that come and go,
//! bracketed user agents), with the whole record kept for conditions.
//!
//! A record without a name, source or time cannot be processed: it is an error naming
//! what is missing, never a panic and never a silent drop.

use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `eventID`; records of event version 1.0 have none, and get `fnv-` and a stable hash
    /// of their text instead.
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub event_source: String,
    pub event_name: String,
    pub region: String,
    /// The account the event was delivered to (`recipientAccountId`, else the caller's).
    pub account: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `None` when the record does not say (older event versions).
    pub read_only: Option<bool>,
    pub actor: Actor,
    pub source_ip: Option<String>,
    /// Without the brackets S3 puts around it.
    pub user_agent: Option<String>,
    /// The record as written, for conditions on any field.
    pub raw: Value,
}

/// Who made the call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Actor {
    /// `IAMUser`, `AssumedRole`, `Root`, `AWSService`, ...
    pub kind: Option<String>,
    /// The principal's ARN; for an AWS service, the service (`invokedBy`).
    pub arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no {0}")]
    Missing(&'static str),
    #[error("eventTime {0:?} is not an RFC 3339 time")]
    BadTime(String),
}

impl Record {
    pub fn parse(text: &str) -> Result<Record, RecordError> {
        let raw: Value =
            serde_json::from_str(text).map_err(|e| RecordError::NotJson(e.to_string()))?;
        Record::from_value(raw)
    }

    pub fn from_value(raw: Value) -> Result<Record, RecordError> {
        if !raw.is_object() {
            return Err(RecordError::NotAnObject);
        }
        let text = |field: &str| {
            raw[field]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let required = |field: &'static str| text(field).ok_or(RecordError::Missing(field));
        let event_id =
            text("eventID").unwrap_or_else(|| format!("fnv-{:016x}", fnv1a(&raw.to_string())));
        let event_name = required("eventName")?;
        let event_source = required("eventSource")?;
        let time_text = required("eventTime")?;
        let event_time = DateTime::parse_from_rfc3339(&time_text)
            .map_err(|_| RecordError::BadTime(time_text.clone()))?
            .with_timezone(&Utc);
        let identity = &raw["userIdentity"];
        let identity_text = |field: &str| identity[field].as_str().map(str::to_string);
        let account = text("recipientAccountId")
            .or_else(|| identity_text("accountId"))
            .unwrap_or_default();
        let read_only = match &raw["readOnly"] {
            Value::Bool(b) => Some(*b),
            // Some older records carry it as a string.
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let actor = Actor {
            kind: identity_text("type"),
            arn: identity_text("arn")
                .or_else(|| identity_text("invokedBy"))
                .or_else(|| identity_text("principalId")),
        };
        let user_agent = text("userAgent").map(|ua| {
            ua.strip_prefix('[')
                .and_then(|u| u.strip_suffix(']'))
                .map(str::to_string)
                .unwrap_or(ua)
        });
        Ok(Record {
            event_id,
            event_time,
            event_source,
            event_name,
            region: text("awsRegion").unwrap_or_default(),
            account,
            error_code: text("errorCode"),
            error_message: text("errorMessage"),
            read_only,
            actor,
            source_ip: text("sourceIPAddress"),
            user_agent,
            raw,
        })
    }

    /// A failed attempt: the record carries an error code.
    pub fn failed(&self) -> bool {
        self.error_code.is_some()
    }

    /// What the call acted on: the trail, bucket, key, log group, ... named in the request,
    /// else the first resource listed, else nothing.
    pub fn resource(&self) -> Option<String> {
        const NAMING: &[&str] = &[
            "name",
            "trailName",
            "bucketName",
            "keyId",
            "logGroupName",
            "configurationRecorderName",
            "deliveryChannelName",
            "detectorId",
            "resolverQueryLogConfigId",
        ];
        let request = &self.raw["requestParameters"];
        NAMING
            .iter()
            .find_map(|k| request[*k].as_str().filter(|s| !s.is_empty()))
            .map(str::to_string)
            .or_else(|| {
                request["flowLogIds"]
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| self.raw["resources"][0]["ARN"].as_str().map(str::to_string))
    }

    /// The request in one short line: its parameters as compact JSON, cut at `max` bytes.
    pub fn request_summary(&self, max: usize) -> String {
        let request = &self.raw["requestParameters"];
        if request.is_null() {
            return String::new();
        }
        let mut text = request.to_string();
        if text.len() > max {
            let mut cut = max;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

/// An id for a record that has none: `fnv-` and a hash of its text, stable across builds
/// (unlike the standard hasher), since ids are kept in the state store.
pub fn stable_id(text: &str) -> String {
    format!("fnv-{:016x}", fnv1a(text))
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "eventVersion": "1.09",
            "eventID": "e1",
            "eventTime": "2023-07-10T12:01:02Z",
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutBucketLifecycle",
            "awsRegion": "us-east-1",
            "recipientAccountId": "123456789012",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/bert"},
            "userAgent": "[aws-cli/2.0]",
            "requestParameters": {"bucketName": "logs"}
        })
    }

    #[test]
    fn reads_what_aws_writes() {
        let r = Record::from_value(base()).unwrap();
        assert_eq!(r.user_agent.as_deref(), Some("aws-cli/2.0"), "brackets go");
        assert_eq!(r.resource().as_deref(), Some("logs"));
        assert_eq!(r.actor.kind.as_deref(), Some("IAMUser"));
        assert_eq!(r.read_only, None, "absent is unknown, not false");
        assert!(!r.failed());
        assert_eq!(r.request_summary(10), "{\"bucketNa…");
    }

    #[test]
    fn older_and_odd_shapes() {
        let mut v = base();
        v["eventVersion"] = json!("1.02");
        v["readOnly"] = json!("true");
        v["errorCode"] = json!("AccessDenied");
        v["userIdentity"] = json!({"type": "AWSService", "invokedBy": "config.amazonaws.com"});
        v.as_object_mut().unwrap().remove("recipientAccountId");
        let r = Record::from_value(v).unwrap();
        assert_eq!(r.read_only, Some(true));
        assert!(r.failed());
        assert_eq!(r.actor.arn.as_deref(), Some("config.amazonaws.com"));
        assert_eq!(r.account, "");
        let mut v = base();
        v.as_object_mut().unwrap().remove("eventID");
        let a = Record::from_value(v.clone()).unwrap();
        assert!(
            a.event_id.starts_with("fnv-"),
            "version 1.0 records have no id"
        );
        assert_eq!(
            a.event_id,
            Record::from_value(v).unwrap().event_id,
            "stable"
        );
    }

    #[test]
    fn what_cannot_be_processed_says_why() {
        assert!(matches!(Record::parse("{"), Err(RecordError::NotJson(_))));
        assert_eq!(Record::parse("[1]"), Err(RecordError::NotAnObject));
        let mut v = base();
        v.as_object_mut().unwrap().remove("eventName");
        assert_eq!(
            Record::from_value(v),
            Err(RecordError::Missing("eventName"))
        );
        let mut v = base();
        v["eventTime"] = json!("yesterday");
        assert_eq!(
            Record::from_value(v).unwrap_err().to_string(),
            "eventTime \"yesterday\" is not an RFC 3339 time"
        );
    }
}
