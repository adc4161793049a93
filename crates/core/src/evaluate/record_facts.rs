//! `derived` facts of a CloudTrail record: what a request means for the audit trail, computed
//! here once so detections can test it in one line of YAML.
//!
//! - `derived.lifecycle_shortest_days`, `derived.lifecycle_below_retention` (PutBucketLifecycle):
//!   the fewest days after which an enabled rule that reaches a trail's log files deletes them
//!   (current objects, dated expirations, noncurrent versions), and whether that is under the
//!   retention policy;
//! - `derived.records_management_reads`, `derived.records_management_writes`
//!   (PutEventSelectors): whether the new selectors, basic or advanced, still record management
//!   events, read by the same rules as the `management_events` policy.

use super::management_events::records_management;
use crate::posture::{
    AdvancedSelector, BasicSelector, EventSelectors, FieldSelector, ReadWriteType,
};
use crate::record::Record;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// What derived facts need to know of the watched trails.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Current log objects must be kept this many days (the retention policy's `min_days`).
    pub min_days: u64,
    /// Noncurrent versions, likewise.
    pub min_noncurrent_days: u64,
}

impl Default for Retention {
    /// Without a retention policy: at least what event history forgets.
    fn default() -> Self {
        Retention {
            min_days: crate::config::policies::MIN_RETENTION_DAYS,
            min_noncurrent_days: crate::config::policies::MIN_RETENTION_DAYS,
        }
    }
}

/// The `derived` object for `record`. `log_roots` are the key prefixes (`[prefix/]AWSLogs/`)
/// the trails write under in the record's bucket; empty when the bucket is no trail's.
pub fn derive(record: &Record, log_roots: &[String], retention: &Retention) -> Value {
    let mut facts = Map::new();
    let request = &record.raw["requestParameters"];
    match (record.event_source.as_str(), record.event_name.as_str()) {
        ("s3.amazonaws.com", "PutBucketLifecycle") => {
            let rules = one_or_many(&request["LifecycleConfiguration"]["Rule"]);
            let reaching: Vec<&Value> = rules
                .into_iter()
                .filter(|r| enabled(r) && reaches_logs(r, log_roots))
                .collect();
            let current = reaching
                .iter()
                .filter_map(|r| expiration_days(&r["Expiration"], record.event_time))
                .min();
            let noncurrent = reaching
                .iter()
                .filter_map(|r| number(&r["NoncurrentVersionExpiration"]["NoncurrentDays"]))
                .min();
            if let Some(days) = current.into_iter().chain(noncurrent).min() {
                facts.insert("lifecycle_shortest_days".into(), json!(days));
            }
            let below = current.is_some_and(|d| d < retention.min_days)
                || noncurrent.is_some_and(|d| d < retention.min_noncurrent_days);
            facts.insert("lifecycle_below_retention".into(), json!(below));
        }
        ("cloudtrail.amazonaws.com", "PutEventSelectors") => {
            if let Some(selectors) = requested_selectors(request) {
                let (read, write) = records_management(&selectors);
                facts.insert("records_management_reads".into(), json!(read));
                facts.insert("records_management_writes".into(), json!(write));
            }
        }
        _ => {}
    }
    Value::Object(facts)
}

/// S3 logs a single rule as an object and several as a list.
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(list) => list.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

fn enabled(rule: &Value) -> bool {
    rule["Status"].as_str().is_none_or(|s| s == "Enabled")
}

/// A number that S3's XML-to-JSON may have left as a string.
fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// Does the rule's prefix (old `Prefix`, `Filter.Prefix` or `Filter.And.Prefix`) reach any
/// log root? A prefix with `*` is taken as the wildcard its author meant: S3 reads it
/// literally, but the intent is what a tamper alert is about.
fn reaches_logs(rule: &Value, log_roots: &[String]) -> bool {
    let prefix = rule["Prefix"]
        .as_str()
        .or_else(|| rule["Filter"]["Prefix"].as_str())
        .or_else(|| rule["Filter"]["And"]["Prefix"].as_str())
        .unwrap_or("");
    if prefix.is_empty() || prefix.contains('*') {
        return true;
    }
    log_roots
        .iter()
        .any(|root| root.starts_with(prefix) || prefix.starts_with(root.as_str()))
}

/// Days after which `Expiration` deletes current objects: `Days`, or a `Date` counted from
/// the event (a date already past deletes at once).
fn expiration_days(expiration: &Value, at: DateTime<Utc>) -> Option<u64> {
    if let Some(days) = number(&expiration["Days"]) {
        return Some(days);
    }
    let date = expiration["Date"].as_str()?;
    let date = DateTime::parse_from_rfc3339(date).ok()?.with_timezone(&Utc);
    Some(date.signed_duration_since(at).num_days().max(0) as u64)
}

/// The selectors a PutEventSelectors request sets, in the shape the policies read.
fn requested_selectors(request: &Value) -> Option<EventSelectors> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    if let Some(list) = request["advancedEventSelectors"].as_array() {
        return Some(EventSelectors::Advanced(
            list.iter()
                .map(|s| AdvancedSelector {
                    name: s["name"].as_str().map(str::to_string),
                    field_selectors: s["fieldSelectors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| FieldSelector {
                            field: f["field"].as_str().unwrap_or_default().to_string(),
                            equals: strings(&f["equals"]),
                            not_equals: strings(&f["notEquals"]),
                            starts_with: strings(&f["startsWith"]),
                            not_starts_with: strings(&f["notStartsWith"]),
                            ends_with: strings(&f["endsWith"]),
                            not_ends_with: strings(&f["notEndsWith"]),
                        })
                        .collect(),
                })
                .collect(),
        ));
    }
    let list = request["eventSelectors"].as_array()?;
    Some(EventSelectors::Basic(
        list.iter()
            .map(|s| BasicSelector {
                read_write_type: match s["readWriteType"].as_str().unwrap_or("All") {
                    "All" => ReadWriteType::All,
                    "ReadOnly" => ReadWriteType::ReadOnly,
                    "WriteOnly" => ReadWriteType::WriteOnly,
                    _ => ReadWriteType::Unrecognized,
                },
                // AWS's default when the field is left out.
                include_management_events: s["includeManagementEvents"].as_bool().unwrap_or(true),
                exclude_management_event_sources: strings(&s["excludeManagementEventSources"]),
                data_resource_count: s["dataResources"].as_array().map_or(0, Vec::len),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &str, name: &str, request: Value) -> Record {
        Record::from_value(json!({
            "eventID": "e", "eventTime": "2026-11-24T10:00:00Z", "eventSource": source,
            "eventName": name, "requestParameters": request
        }))
        .unwrap()
    }

    fn lifecycle(rule: Value) -> Value {
        let r = record(
            "s3.amazonaws.com",
            "PutBucketLifecycle",
            json!({"bucketName": "logs", "LifecycleConfiguration": {"Rule": rule}}),
        );
        derive(&r, &["AWSLogs/".into()], &Retention::default())
    }

    #[test]
    fn lifecycle_rules_as_object_or_list() {
        let one = lifecycle(
            json!({"Status": "Enabled", "Filter": {"Prefix": "*"}, "Expiration": {"Days": 1}}),
        );
        assert_eq!(one["lifecycle_shortest_days"], 1);
        assert_eq!(one["lifecycle_below_retention"], true);
        let many = lifecycle(json!([
            {"Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": "800"}},
            {"Status": "Disabled", "Expiration": {"Days": 1}},
            {"Status": "Enabled", "Filter": {"Prefix": "other/"}, "Expiration": {"Days": 2}}
        ]));
        assert_eq!(
            many["lifecycle_shortest_days"], 800,
            "disabled and elsewhere don't count"
        );
        assert_eq!(many["lifecycle_below_retention"], false);
    }

    #[test]
    fn noncurrent_versions_and_dates_count() {
        let v = lifecycle(json!({"Status": "Enabled", "Prefix": "AWSLogs/123/",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}));
        assert_eq!(v["lifecycle_below_retention"], true);
        let v =
            lifecycle(json!({"Status": "Enabled", "Expiration": {"Date": "2026-12-04T00:00:00Z"}}));
        assert_eq!(v["lifecycle_shortest_days"], 9);
        let v = lifecycle(
            json!({"Status": "Enabled", "Transition": {"Days": 1, "StorageClass": "GLACIER"}}),
        );
        assert_eq!(
            v["lifecycle_below_retention"], false,
            "a transition deletes nothing"
        );
        assert!(v.get("lifecycle_shortest_days").is_none());
    }

    #[test]
    fn event_selectors_basic_and_advanced() {
        let facts = |request: Value| {
            derive(
                &record("cloudtrail.amazonaws.com", "PutEventSelectors", request),
                &[],
                &Retention::default(),
            )
        };
        let off = facts(json!({"trailName": "t", "eventSelectors": [
            {"readWriteType": "ReadOnly", "includeManagementEvents": false, "dataResources": []}]}));
        assert_eq!(off["records_management_writes"], false);
        assert_eq!(off["records_management_reads"], false);
        let all = facts(json!({"trailName": "t", "eventSelectors": [
            {"readWriteType": "All", "includeManagementEvents": true}]}));
        assert_eq!(all["records_management_writes"], true);
        let reads = facts(json!({"trailName": "t", "advancedEventSelectors": [
            {"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]},
                                {"field": "readOnly", "equals": ["true"]}]}]}));
        assert_eq!(reads["records_management_writes"], false);
        assert_eq!(reads["records_management_reads"], true);
    }
}
