//! Injected faults, per operation (or every operation), optionally only for S3 objects under a
//! key prefix or for one account's calls, for a number of calls or a duration.

use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    ServerError,
    Throttling,
    AccessDenied,
    Latency(Duration),
    /// The connection is closed without an answer.
    Drop,
}

#[derive(Debug, Clone)]
struct Fault {
    operation: String,
    /// Only S3 data calls whose object key (or listing prefix) starts with this.
    key_prefix: Option<String>,
    /// Only calls signed by this account's credentials.
    account: Option<String>,
    kind: FaultKind,
    remaining: Option<u32>,
    until: Option<Instant>,
}

#[derive(Default)]
pub struct Faults {
    list: Vec<Fault>,
}

impl Faults {
    /// Adds a fault from its control-API form:
    /// `{"operation": "LookupEvents" | "GetObject" | "*", "kind": "server_error" | "throttling" |
    ///   "access_denied" | "latency" | "drop", "count": 3, "seconds": 10, "latency_ms": 500,
    ///   "key_prefix": "AWSLogs/…/CloudTrail-Digest/", "account": "123456789012"}`.
    pub fn add(&mut self, spec: &Value, now: Instant) -> Result<(), String> {
        let operation = spec["operation"].as_str().unwrap_or("*").to_string();
        let text = |name: &str| -> Result<Option<String>, String> {
            match &spec[name] {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                other => Err(format!("{name} must be a string, not {other}")),
            }
        };
        let key_prefix = text("key_prefix")?;
        let account = text("account")?;
        let kind = match spec["kind"].as_str() {
            Some("server_error") => FaultKind::ServerError,
            Some("throttling") => FaultKind::Throttling,
            Some("access_denied") => FaultKind::AccessDenied,
            Some("drop") => FaultKind::Drop,
            Some("latency") => FaultKind::Latency(Duration::from_millis(
                spec["latency_ms"]
                    .as_u64()
                    .ok_or("latency needs latency_ms")?,
            )),
            other => return Err(format!("unknown fault kind {other:?}")),
        };
        let remaining = spec["count"].as_u64().map(|n| n as u32);
        let until = match spec["seconds"].as_f64() {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                Some(now + Duration::from_secs_f64(s))
            }
            Some(s) => return Err(format!("seconds must be in (0, 86400], got {s}")),
        };
        if remaining.is_none() && until.is_none() {
            return Err("a fault needs count or seconds".into());
        }
        self.list.push(Fault {
            operation,
            key_prefix,
            account,
            kind,
            remaining,
            until,
        });
        Ok(())
    }

    /// The fault to apply to this call, if any (using up one of its count). `key` is the S3
    /// object or listing prefix of a data call, `account` the caller's.
    pub fn take(
        &mut self,
        operation: &str,
        key: Option<&str>,
        account: &str,
        now: Instant,
    ) -> Option<FaultKind> {
        self.list
            .retain(|f| f.remaining != Some(0) && f.until.is_none_or(|u| now < u));
        let fault = self.list.iter_mut().find(|f| {
            (f.operation == "*" || f.operation == operation)
                && f.key_prefix
                    .as_deref()
                    .is_none_or(|p| key.is_some_and(|k| k.starts_with(p)))
                && f.account.as_deref().is_none_or(|a| a == account)
        })?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        Some(fault.kind.clone())
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }

    /// Clears the faults limited to `account`; the others stay.
    pub fn clear_account(&mut self, account: &str) {
        self.list.retain(|f| f.account.as_deref() != Some(account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counted_and_timed_faults() {
        let mut f = Faults::default();
        let t = Instant::now();
        f.add(
            &json!({"operation": "LookupEvents", "kind": "throttling", "count": 2}),
            t,
        )
        .unwrap();
        let take = |f: &mut Faults, op: &str, t| f.take(op, None, "1", t);
        assert_eq!(take(&mut f, "DescribeTrails", t), None);
        assert_eq!(take(&mut f, "LookupEvents", t), Some(FaultKind::Throttling));
        assert_eq!(take(&mut f, "LookupEvents", t), Some(FaultKind::Throttling));
        assert_eq!(take(&mut f, "LookupEvents", t), None);

        f.add(&json!({"kind": "server_error", "seconds": 1.0}), t)
            .unwrap();
        assert_eq!(take(&mut f, "Anything", t), Some(FaultKind::ServerError));
        assert_eq!(take(&mut f, "Anything", t + Duration::from_secs(2)), None);
    }

    #[test]
    fn faults_limited_to_a_key_prefix_or_an_account() {
        let mut f = Faults::default();
        let t = Instant::now();
        f.add(
            &json!({"operation": "GetObject", "kind": "access_denied", "seconds": 60.0,
                    "key_prefix": "AWSLogs/1/CloudTrail-Digest/", "account": "1"}),
            t,
        )
        .unwrap();
        let digest = Some("AWSLogs/1/CloudTrail-Digest/us-east-1/d.json.gz");
        let log = Some("AWSLogs/1/CloudTrail/us-east-1/l.json.gz");
        assert_eq!(
            f.take("GetObject", digest, "1", t),
            Some(FaultKind::AccessDenied)
        );
        assert_eq!(f.take("GetObject", log, "1", t), None);
        assert_eq!(f.take("GetObject", digest, "2", t), None, "another account");
        assert_eq!(f.take("GetTrailStatus", None, "1", t), None, "no key");
        f.add(&json!({"kind": "drop", "seconds": 60.0, "account": "2"}), t)
            .unwrap();
        f.clear_account("1");
        assert_eq!(f.take("GetObject", digest, "1", t), None);
        assert_eq!(f.take("Anything", None, "2", t), Some(FaultKind::Drop));
        assert!(
            f.add(&json!({"kind": "drop", "count": 1, "key_prefix": 3}), t)
                .is_err()
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut f = Faults::default();
        let t = Instant::now();
        assert!(f.add(&json!({"kind": "gremlins", "count": 1}), t).is_err());
        assert!(f.add(&json!({"kind": "drop"}), t).is_err());
        assert!(f.add(&json!({"kind": "latency", "count": 1}), t).is_err());
        assert!(f.add(&json!({"kind": "drop", "seconds": -1.0}), t).is_err());
        assert!(
            f.add(&json!({"kind": "drop", "seconds": 1e300}), t)
                .is_err()
        );
    }
}
