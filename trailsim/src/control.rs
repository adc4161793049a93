//! The control API under `/_trailsim/`: reset, injected records and faults, the clock, the
//! rate limit, latency, and delivery and digest runs on demand.

use crate::delivery::{self, Deliveries};
use crate::server::Sim;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

/// Clears events, faults, identities and the clock offset, and resets moto.
pub(crate) async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.history.lock().expect("history lock").clear();
    sim.faults.lock().expect("faults lock").clear();
    sim.identities.lock().expect("identities lock").clear();
    sim.clock_offset_ms.store(0, Ordering::Relaxed);
    *sim.deliveries.lock().expect("deliveries lock") = Deliveries::default();
    *sim.digests.lock().expect("digests lock") = Default::default();
    *sim.compliance.lock().expect("compliance lock") = Default::default();
    *sim.security_hub.lock().expect("security hub lock") = Default::default();
    let uri: axum::http::Uri = "/moto-api/reset".parse().expect("valid uri");
    match sim
        .upstream
        .pass(
            None,
            &axum::http::Method::POST,
            &uri,
            &HeaderMap::new(),
            Bytes::new(),
        )
        .await
    {
        Ok(_) => Json(json!({"reset": true})).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("moto reset failed: {e}")).into_response(),
    }
}

/// `{"records": [CloudTrail record, ...]}`: each needs `eventTime` and `awsRegion`, and its
/// account in `recipientAccountId` or `userIdentity.accountId`. Any `eventTime` is allowed,
/// so history older than the emulator can be tested.
pub(crate) async fn inject_records(
    State(sim): State<Arc<Sim>>,
    Json(body): Json<Value>,
) -> Response {
    let Some(records) = body["records"].as_array() else {
        return bad_request("expected {\"records\": [...]}");
    };
    let mut parsed = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let time = r["eventTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let account = r["recipientAccountId"]
            .as_str()
            .or(r["userIdentity"]["accountId"].as_str());
        let region = r["awsRegion"].as_str();
        let (Some(time), Some(account), Some(region)) = (time, account, region) else {
            return bad_request(format!(
                "records[{i}]: needs eventTime (RFC 3339), awsRegion and recipientAccountId"
            ));
        };
        let mut record = r.clone();
        if record["eventID"].is_null() {
            record["eventID"] = json!(uuid::Uuid::new_v4().to_string());
        }
        parsed.push((record, time, account.to_string(), region.to_string()));
    }
    let added = parsed.len();
    for (record, time, account, region) in parsed {
        let _ = sim.record(record, time, &account, &region);
    }
    Json(json!({"added": added})).into_response()
}

pub(crate) async fn list_records(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let history = sim.history.lock().expect("history lock");
    Json(json!({"records": history.all().map(|e| e.record.clone()).collect::<Vec<_>>()}))
}

pub(crate) async fn add_fault(State(sim): State<Arc<Sim>>, Json(spec): Json<Value>) -> Response {
    match sim
        .faults
        .lock()
        .expect("faults lock")
        .add(&spec, Instant::now())
    {
        Ok(()) => Json(json!({"added": spec})).into_response(),
        Err(e) => bad_request(e),
    }
}

/// Clears every fault, or with `{"account": ID}` only those limited to that account.
pub(crate) async fn clear_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let mut faults = sim.faults.lock().expect("faults lock");
    match field(&body, "account") {
        Ok(Value::Null) => faults.clear(),
        Ok(Value::String(account)) => faults.clear_account(&account),
        Ok(other) => return bad_request(format!("account must be an account id, not {other}")),
        Err(e) => return bad_request(e),
    }
    Json(json!({"cleared": true})).into_response()
}

/// `{"offset_seconds": -3600}`: trailsim's clock runs that far from real time.
pub(crate) async fn set_clock(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    // Ten years either way: enough for any history, far from overflowing the clock.
    let Some(offset) = body["offset_seconds"]
        .as_f64()
        .filter(|o| o.is_finite() && o.abs() <= 10.0 * 366.0 * 86_400.0)
    else {
        return bad_request("expected {\"offset_seconds\": number within ten years}");
    };
    sim.clock_offset_ms
        .store((offset * 1000.0) as i64, Ordering::Relaxed);
    Json(json!({"now": sim.now().to_rfc3339()})).into_response()
}

/// Writes digests now (after any delivery) and reports them.
pub(crate) async fn digest_now(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match flag(&body, "backfill") {
        Ok(backfill) => Json(crate::digest_run::run(&sim, backfill).await).into_response(),
        Err(e) => bad_request(e),
    }
}

/// Runs a delivery now and reports what went where.
/// `{"late_account": ID}`: only that account's trails deliver, late.
pub(crate) async fn deliver_now(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let late = match field(&body, "late_account") {
        Ok(Value::Null) => None,
        Ok(Value::String(account)) => Some(account),
        Ok(other) => {
            return bad_request(format!("late_account must be an account id, not {other}"));
        }
        Err(e) => return bad_request(e),
    };
    Json(delivery::run(&sim, late.as_deref()).await).into_response()
}

/// An optional boolean `name` of a JSON object body (no body: false).
fn flag(body: &[u8], name: &str) -> Result<bool, String> {
    match field(body, name)? {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(b),
        other => Err(format!("{name} must be true or false, not {other}")),
    }
}

/// Field `name` of a JSON object body; null when absent or when there is no body.
fn field(body: &[u8], name: &str) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("expected a JSON object: {e}"))?;
    Ok(value[name].take())
}

/// `{"milliseconds": 30}`: every AWS request from now on waits that long (0: none).
pub(crate) async fn set_latency(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    let Some(ms) = body["milliseconds"]
        .as_f64()
        .filter(|ms| (0.0..=60_000.0).contains(ms))
    else {
        return bad_request("expected {\"milliseconds\": 0 to 60000}");
    };
    sim.latency_us
        .store((ms * 1000.0) as u64, Ordering::Relaxed);
    Json(json!({"latency_ms": ms})).into_response()
}

/// `{"enabled": false}` turns LookupEvents' rate limit off.
pub(crate) async fn set_throttle(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    let Some(enabled) = body["enabled"].as_bool() else {
        return bad_request("expected {\"enabled\": bool}");
    };
    sim.throttle.store(enabled, Ordering::Relaxed);
    Json(json!({"throttle": enabled})).into_response()
}

/// A managed Config rule's result for one resource, as AWS's evaluator would record it:
/// `{"account", "region", "rule", "resource_type", "resource_id", "compliance",
/// "annotation"?, "source_identifier"?}`.
pub(crate) async fn set_config_result(
    State(sim): State<Arc<Sim>>,
    Json(body): Json<Value>,
) -> Response {
    match crate::compliance::SetResult::from_json(&body) {
        Ok(set) => {
            let now = sim.now();
            sim.compliance
                .lock()
                .expect("compliance lock")
                .set_result(&set, now);
            Json(json!({"set": true})).into_response()
        }
        Err(e) => bad_request(e),
    }
}
