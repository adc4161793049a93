//! Event history: every recorded or injected record, queried by LookupEvents per account and
//! region, newest first, with AWS's filters, pagination and validation errors.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Event {
    /// Order of arrival, assigned by [`History::add`]: delivery cursors point into it.
    pub seq: u64,
    pub account: String,
    pub region: String,
    pub time: DateTime<Utc>,
    /// Event history lags: an event shows in LookupEvents only from this time on.
    pub visible_at: DateTime<Utc>,
    pub record: Value,
}

/// An AWS error answer: code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Event history keeps 90 days; older events are only in a trail's bucket.
pub const RETENTION_DAYS: i64 = 90;

const ATTRIBUTE_KEYS: &[&str] = &[
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

#[derive(Default)]
pub struct History {
    events: Vec<Event>,
    next_seq: u64,
}

impl History {
    /// Stores the event and returns its sequence number.
    pub fn add(&mut self, mut event: Event) -> u64 {
        self.next_seq += 1;
        event.seq = self.next_seq;
        self.events.push(event);
        self.next_seq
    }

    /// Events of `accounts` that arrived after `after` (a sequence number), in arrival order.
    pub fn since(&self, accounts: &[String], after: u64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.seq > after && accounts.contains(&e.account))
            .cloned()
            .collect()
    }

    /// The sequence number of the newest event (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// Regions in which `account` has events.
    pub fn regions_of(&self, account: &str) -> std::collections::BTreeSet<String> {
        self.events
            .iter()
            .filter(|e| e.account == account)
            .map(|e| e.region.clone())
            .collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    pub fn clear(&mut self) {
        self.events.clear();
    }

    /// Answers a LookupEvents request body for `account` in `region` at time `now`.
    pub fn lookup(
        &self,
        account: &str,
        region: &str,
        request: &Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let attributes = request["LookupAttributes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if attributes.len() > 1 {
            return Err(ApiError::new(
                "InvalidLookupAttributesException",
                "You cannot specify more than one lookup attribute.",
            ));
        }
        let filter = match attributes.first() {
            None => None,
            Some(a) => {
                let key = a["AttributeKey"].as_str().unwrap_or_default();
                let value = a["AttributeValue"].as_str().unwrap_or_default();
                if !ATTRIBUTE_KEYS.contains(&key) {
                    return Err(ApiError::new(
                        "InvalidLookupAttributesException",
                        format!("Invalid attribute key: {key}"),
                    ));
                }
                if value.is_empty() {
                    return Err(ApiError::new(
                        "InvalidLookupAttributesException",
                        "The attribute value must not be empty.",
                    ));
                }
                Some((key, value))
            }
        };
        let max = match request["MaxResults"].as_i64() {
            None => 50,
            Some(n @ 1..=50) => n as usize,
            Some(_) => {
                return Err(ApiError::new(
                    "InvalidMaxResultsException",
                    "MaxResults must be between 1 and 50.",
                ));
            }
        };
        let start = epoch(&request["StartTime"]);
        let end = epoch(&request["EndTime"]);
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(ApiError::new(
                "InvalidTimeRangeException",
                "Start time must be before end time.",
            ));
        }
        // The token binds the page to the query, as AWS's does, and to the events that
        // existed at the first page, so later arrivals do not shift the pages.
        let query_key = format!("{filter:?}|{start:?}|{end:?}");
        let (offset, horizon) = match request["NextToken"].as_str() {
            None => (0, self.next_seq),
            Some(token) => parse_token(token, &query_key)
                .ok_or_else(|| ApiError::new("InvalidNextTokenException", "Invalid NextToken."))?,
        };
        let mut matching: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.seq <= horizon)
            .filter(|e| e.account == account && e.region == region && e.visible_at <= now)
            .filter(|e| e.time >= now - chrono::Duration::days(RETENTION_DAYS))
            .filter(|e| start.is_none_or(|s| e.time >= s) && end.is_none_or(|t| e.time <= t))
            .filter(|e| filter.is_none_or(|(k, v)| matches(e, k, v)))
            .collect();
        matching.sort_by_key(|e| std::cmp::Reverse((e.time, e.seq)));
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(max)
            .map(|e| summary(e))
            .collect();
        let mut answer = json!({ "Events": page });
        if offset + max < matching.len() {
            answer["NextToken"] = json!(make_token(offset + max, horizon, &query_key));
        }
        Ok(answer)
    }
}

fn epoch(v: &Value) -> Option<DateTime<Utc>> {
    let secs = v.as_f64()?;
    Utc.timestamp_opt(secs.floor() as i64, ((secs.fract()) * 1e9) as u32)
        .single()
}

fn make_token(offset: usize, horizon: u64, query_key: &str) -> String {
    format!("{offset}-{horizon}-{:016x}", fnv(query_key))
}

fn parse_token(token: &str, query_key: &str) -> Option<(usize, u64)> {
    let mut parts = token.splitn(3, '-');
    let offset = parts.next()?.parse().ok()?;
    let horizon = parts.next()?.parse().ok()?;
    (parts.next()? == format!("{:016x}", fnv(query_key))).then_some((offset, horizon))
}

/// FNV-1a: a stable hash for tokens (std's hasher is randomly seeded per process).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn username(record: &Value) -> String {
    let id = &record["userIdentity"];
    id["userName"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            id["arn"]
                .as_str()
                .and_then(|a| a.rsplit('/').next())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn matches(e: &Event, key: &str, value: &str) -> bool {
    let r = &e.record;
    match key {
        "EventId" => r["eventID"] == value,
        "EventName" => r["eventName"] == value,
        "ReadOnly" => r["readOnly"].as_bool().map(|b| b.to_string()).as_deref() == Some(value),
        "Username" => username(r) == value,
        "EventSource" => r["eventSource"] == value,
        "AccessKeyId" => r["userIdentity"]["accessKeyId"] == value,
        "ResourceType" | "ResourceName" => r["resources"].as_array().is_some_and(|rs| {
            rs.iter().any(|res| {
                if key == "ResourceType" {
                    res["type"] == value
                } else {
                    res["ARN"] == value
                }
            })
        }),
        _ => false,
    }
}

/// One entry of a LookupEvents answer.
fn summary(e: &Event) -> Value {
    let r = &e.record;
    let resources: Vec<Value> = r["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|res| json!({"ResourceType": res["type"], "ResourceName": res["ARN"]}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "EventId": r["eventID"],
        "EventName": r["eventName"],
        "ReadOnly": r["readOnly"].as_bool().map(|b| b.to_string()),
        "AccessKeyId": r["userIdentity"]["accessKeyId"],
        "EventTime": e.time.timestamp() as f64 + f64::from(e.time.timestamp_subsec_millis()) / 1000.0,
        "EventSource": r["eventSource"],
        "Username": username(r),
        "Resources": resources,
        "CloudTrailEvent": r.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, name: &str, minutes_ago: i64, now: DateTime<Utc>) -> Event {
        let time = now - chrono::Duration::minutes(minutes_ago);
        Event {
            seq: 0,
            account: "111122223333".into(),
            region: "us-east-1".into(),
            time,
            visible_at: time,
            record: json!({"eventID": id, "eventName": name, "readOnly": false,
                           "eventSource": "cloudtrail.amazonaws.com",
                           "userIdentity": {"userName": "alice", "accessKeyId": "AKIA1"},
                           "resources": [{"type": "AWS::CloudTrail::Trail", "ARN": "arn:trail"}]}),
        }
    }

    fn history(now: DateTime<Utc>) -> History {
        let mut h = History::default();
        for i in 0..7 {
            let name = if i % 2 == 0 {
                "StopLogging"
            } else {
                "StartLogging"
            };
            h.add(event(&format!("e{i}"), name, i * 10, now));
        }
        h
    }

    fn ids(answer: &Value) -> Vec<String> {
        answer["Events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["EventId"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn newest_first_with_pages() {
        let now = Utc::now();
        let h = history(now);
        let a = h
            .lookup("111122223333", "us-east-1", &json!({"MaxResults": 3}), now)
            .unwrap();
        assert_eq!(ids(&a), ["e0", "e1", "e2"]);
        let token = a["NextToken"].as_str().unwrap();
        let b = h
            .lookup(
                "111122223333",
                "us-east-1",
                &json!({"MaxResults": 3, "NextToken": token}),
                now,
            )
            .unwrap();
        assert_eq!(ids(&b), ["e3", "e4", "e5"]);
        // Events arriving between pages do not shift them.
        let mut h = h;
        h.add(event("late", "StopLogging", 0, now));
        let b2 = h
            .lookup(
                "111122223333",
                "us-east-1",
                &json!({"MaxResults": 3, "NextToken": token}),
                now,
            )
            .unwrap();
        assert_eq!(ids(&b2), ["e3", "e4", "e5"]);
        // Other accounts and regions see nothing.
        let other = h
            .lookup("999999999999", "us-east-1", &json!({}), now)
            .unwrap();
        assert!(ids(&other).is_empty());
    }

    #[test]
    fn filters_by_attribute_and_time() {
        let now = Utc::now();
        let h = history(now);
        let q = json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "StartLogging"}]});
        assert_eq!(
            ids(&h.lookup("111122223333", "us-east-1", &q, now).unwrap()),
            ["e1", "e3", "e5"]
        );
        let q = json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": "arn:trail"}]});
        assert_eq!(
            ids(&h.lookup("111122223333", "us-east-1", &q, now).unwrap()).len(),
            7
        );
        let start = (now - chrono::Duration::minutes(25)).timestamp() as f64;
        let q = json!({"StartTime": start});
        assert_eq!(
            ids(&h.lookup("111122223333", "us-east-1", &q, now).unwrap()),
            ["e0", "e1", "e2"]
        );
    }

    #[test]
    fn every_attribute_kind() {
        let now = Utc::now();
        let mut h = History::default();
        let mut e = event("one", "DisableKey", 1, now);
        e.record = json!({"eventID": "one", "eventName": "DisableKey", "readOnly": false,
            "eventSource": "kms.amazonaws.com",
            "userIdentity": {"arn": "arn:aws:sts::1:assumed-role/r/session-x", "accessKeyId": "ASIA9"},
            "resources": [{"type": "AWS::KMS::Key", "ARN": "arn:aws:kms:us-east-1:1:key/k"}]});
        h.add(e);
        h.add(event("two", "GetTrailStatus", 2, now));
        for (key, value, expected) in [
            ("EventId", "one", vec!["one"]),
            ("EventName", "DisableKey", vec!["one"]),
            ("ReadOnly", "false", vec!["one", "two"]),
            ("Username", "session-x", vec!["one"]),
            ("Username", "alice", vec!["two"]),
            ("ResourceType", "AWS::KMS::Key", vec!["one"]),
            ("ResourceName", "arn:aws:kms:us-east-1:1:key/k", vec!["one"]),
            ("EventSource", "kms.amazonaws.com", vec!["one"]),
            ("AccessKeyId", "ASIA9", vec!["one"]),
        ] {
            let q = json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]});
            let a = h.lookup("111122223333", "us-east-1", &q, now).unwrap();
            assert_eq!(ids(&a), expected, "{key}={value}");
        }
    }

    #[test]
    fn older_than_ninety_days_is_gone() {
        let now = Utc::now();
        let mut h = History::default();
        h.add(event("recent", "StopLogging", 30 * 24 * 60, now));
        h.add(event("ancient", "StopLogging", 100 * 24 * 60, now));
        assert_eq!(
            ids(&h
                .lookup("111122223333", "us-east-1", &json!({}), now)
                .unwrap()),
            ["recent"]
        );
    }

    #[test]
    fn invisible_until_the_delay_passes() {
        let now = Utc::now();
        let mut h = History::default();
        let mut e = event("late", "StopLogging", 0, now);
        e.visible_at = now + chrono::Duration::minutes(5);
        h.add(e);
        assert!(
            ids(&h
                .lookup("111122223333", "us-east-1", &json!({}), now)
                .unwrap())
            .is_empty()
        );
        let later = now + chrono::Duration::minutes(6);
        assert_eq!(
            ids(&h
                .lookup("111122223333", "us-east-1", &json!({}), later)
                .unwrap()),
            ["late"]
        );
    }

    #[test]
    fn validation_errors_as_aws() {
        let now = Utc::now();
        let h = history(now);
        let two = json!({"LookupAttributes": [
            {"AttributeKey": "EventName", "AttributeValue": "a"},
            {"AttributeKey": "EventName", "AttributeValue": "b"}]});
        assert_eq!(
            h.lookup("1", "r", &two, now).unwrap_err().code,
            "InvalidLookupAttributesException"
        );
        let bad = json!({"LookupAttributes": [{"AttributeKey": "Color", "AttributeValue": "red"}]});
        assert_eq!(
            h.lookup("1", "r", &bad, now).unwrap_err().code,
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            h.lookup("1", "r", &json!({"MaxResults": 51}), now)
                .unwrap_err()
                .code,
            "InvalidMaxResultsException"
        );
        assert_eq!(
            h.lookup("1", "r", &json!({"StartTime": 10.0, "EndTime": 5.0}), now)
                .unwrap_err()
                .code,
            "InvalidTimeRangeException"
        );
        // A token from another query is refused.
        let a = h
            .lookup("111122223333", "us-east-1", &json!({"MaxResults": 1}), now)
            .unwrap();
        let token = a["NextToken"].as_str().unwrap();
        let q = json!({"MaxResults": 1, "NextToken": token, "StartTime": 1.0});
        assert_eq!(
            h.lookup("111122223333", "us-east-1", &q, now)
                .unwrap_err()
                .code,
            "InvalidNextTokenException"
        );
    }
}
