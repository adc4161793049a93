//! Injected faults, per operation (or every operation), for a number of calls or a duration.

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
    /// `{"operation": "LookupEvents" | "*", "kind": "server_error" | "throttling" |
    ///   "access_denied" | "latency" | "drop", "count": 3, "seconds": 10, "latency_ms": 500}`.
    pub fn add(&mut self, spec: &Value, now: Instant) -> Result<(), String> {
        let operation = spec["operation"].as_str().unwrap_or("*").to_string();
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
            kind,
            remaining,
            until,
        });
        Ok(())
    }

    /// The fault to apply to this call, if any (using up one of its count).
    pub fn take(&mut self, operation: &str, now: Instant) -> Option<FaultKind> {
        self.list
            .retain(|f| f.remaining != Some(0) && f.until.is_none_or(|u| now < u));
        let fault = self
            .list
            .iter_mut()
            .find(|f| f.operation == "*" || f.operation == operation)?;
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        Some(fault.kind.clone())
    }

    pub fn clear(&mut self) {
        self.list.clear();
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
        assert_eq!(f.take("DescribeTrails", t), None);
        assert_eq!(f.take("LookupEvents", t), Some(FaultKind::Throttling));
        assert_eq!(f.take("LookupEvents", t), Some(FaultKind::Throttling));
        assert_eq!(f.take("LookupEvents", t), None);

        f.add(&json!({"kind": "server_error", "seconds": 1.0}), t)
            .unwrap();
        assert_eq!(f.take("Anything", t), Some(FaultKind::ServerError));
        assert_eq!(f.take("Anything", t + Duration::from_secs(2)), None);
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
