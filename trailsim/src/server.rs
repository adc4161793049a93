//! The HTTP endpoint: AWS calls are identified, checked against injected faults, answered
//! here (LookupEvents) or forwarded to moto, and recorded as CloudTrail events. The control
//! API lives under `/_trailsim/`.

use crate::call::{self, Call};
use crate::delivery::{self, Deliveries};
use crate::faults::{FaultKind, Faults};
use crate::history::{ApiError, Event, History};
use crate::identity::Identities;
use crate::limiter::Limiter;
use crate::record::{self, Outcome};
use crate::upstream::Upstream;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request body accepted (S3 object uploads pass through).
const MAX_BODY: usize = 256 * 1024 * 1024;

pub struct Options {
    /// moto's base URL, e.g. `http://127.0.0.1:5000`.
    pub upstream: String,
    /// Enforce LookupEvents' 2 requests per second per account and region.
    pub throttle: bool,
    /// How long an event stays out of LookupEvents after it happened.
    pub visibility_delay: Duration,
    /// Answer repeated S3 reads from memory ([`crate::read_cache`]); only when every write
    /// goes through trailsim.
    pub s3_read_cache: bool,
    /// How long every AWS request waits before it is answered: a network round trip (S3 and
    /// CloudTrail endpoints are tens of milliseconds away, loopback none).
    pub latency: Duration,
}

pub struct Sim {
    pub(crate) upstream: Upstream,
    pub(crate) identities: Mutex<Identities>,
    pub(crate) deliveries: Mutex<Deliveries>,
    pub(crate) digests: Mutex<crate::digest::Digests>,
    pub(crate) signer: crate::digest::Signer,
    /// One delivery run at a time (timer and control API).
    pub(crate) delivering: tokio::sync::Mutex<()>,
    pub(crate) history: Mutex<History>,
    pub(crate) limiter: Mutex<Limiter>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) clock_offset_ms: AtomicI64,
    pub(crate) throttle: AtomicBool,
    pub(crate) visibility_delay: Duration,
    /// [`Options::latency`], in microseconds; settable through the control API.
    pub(crate) latency_us: AtomicU64,
}

impl Sim {
    pub fn new(options: Options) -> Arc<Sim> {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        Arc::new(Sim {
            upstream: Upstream {
                base: options.upstream.trim_end_matches('/').to_string(),
                client,
                cache: options
                    .s3_read_cache
                    .then(|| Arc::new(crate::read_cache::ReadCache::default())),
            },
            identities: Mutex::default(),
            deliveries: Mutex::default(),
            digests: Mutex::default(),
            signer: crate::digest::Signer::generate(Utc::now()),
            delivering: tokio::sync::Mutex::new(()),
            history: Mutex::default(),
            limiter: Mutex::default(),
            faults: Mutex::default(),
            clock_offset_ms: AtomicI64::new(0),
            throttle: AtomicBool::new(options.throttle),
            visibility_delay: options.visibility_delay,
            latency_us: AtomicU64::new(options.latency.as_micros().try_into().unwrap_or(u64::MAX)),
        })
    }

    /// trailsim's clock: real time plus the offset set through the control API.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Stores a record in event history; returns its sequence number.
    pub(crate) fn record(
        &self,
        record: Value,
        time: DateTime<Utc>,
        account: &str,
        region: &str,
    ) -> u64 {
        let visible_at = time
            + chrono::Duration::from_std(self.visibility_delay).unwrap_or(chrono::Duration::zero());
        self.history.lock().expect("history lock").add(Event {
            seq: 0,
            account: account.to_string(),
            region: region.to_string(),
            time,
            visible_at,
            record,
        })
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/_trailsim/reset", post(reset))
        .route("/_trailsim/records", post(inject_records).get(list_records))
        .route("/_trailsim/faults", post(add_fault).delete(clear_faults))
        .route("/_trailsim/clock", post(set_clock))
        .route("/_trailsim/throttle", post(set_throttle))
        .route("/_trailsim/latency", post(set_latency))
        .route("/_trailsim/deliver", post(deliver_now))
        .route("/_trailsim/digest", post(digest_now))
        .route("/_trailsim/health", get(|| async { "ok\n" }))
        .fallback(aws)
        .with_state(sim)
}

async fn aws(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let latency = sim.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("unreadable body: {e}")).into_response();
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let call = call::identify(&call::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization: header("authorization"),
        target: header("x-amz-target"),
        host: header("host"),
        body: &body,
    });
    let user_agent = header("user-agent").unwrap_or_default().to_string();
    let source_ip = peer.ip().to_string();
    let json_protocol = header("x-amz-target").is_some();

    if let Some(call) = &call {
        let account = sim
            .identities
            .lock()
            .expect("identities lock")
            .of(&call.access_key_id)
            .account_id;
        let key = call.data.as_ref().map(|d| d.key.as_str());
        let fault = sim.faults.lock().expect("faults lock").take(
            &call.operation,
            key,
            &account,
            Instant::now(),
        );
        match fault {
            Some(FaultKind::Latency(d)) => tokio::time::sleep(d).await,
            Some(FaultKind::Drop) => return dropped(),
            Some(FaultKind::ServerError) => {
                return error(
                    json_protocol,
                    &call.service,
                    500,
                    "InternalFailure",
                    "injected by trailsim",
                );
            }
            Some(FaultKind::Throttling) => {
                return error(
                    json_protocol,
                    &call.service,
                    400,
                    throttling_code(&call.service),
                    "Rate exceeded",
                );
            }
            Some(FaultKind::AccessDenied) => {
                let (status, code) = access_denied(json_protocol);
                let message =
                    "User is not authorized to perform this operation (injected by trailsim)";
                let outcome = error_body(json_protocol, code, message);
                record_call(
                    &sim,
                    call,
                    status,
                    outcome.as_bytes(),
                    None,
                    &source_ip,
                    &user_agent,
                );
                return error(json_protocol, &call.service, status, code, message);
            }
            None => {}
        }
        if call.service == "cloudtrail" && call.operation == "LookupEvents" {
            return lookup_events(&sim, call, &source_ip, &user_agent);
        }
        if call.service == "cloudtrail" && call.operation == "ListPublicKeys" {
            let body = json!({"PublicKeyList": [sim.signer.list_entry()]}).to_string();
            record_call(
                &sim,
                call,
                200,
                body.as_bytes(),
                None,
                &source_ip,
                &user_agent,
            );
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/x-amz-json-1.1".parse().expect("valid header"),
            );
            return response;
        }
    }

    let forwarded = sim
        .upstream
        .pass(&parts.method, &parts.uri, &parts.headers, body)
        .await;
    let crate::read_cache::Answer {
        status,
        headers,
        body: mut answer,
    } = match forwarded {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("trailsim: upstream {}: {e}", sim.upstream.base),
            )
                .into_response();
        }
    };
    if let Some(call) = &call {
        if call.service == "sts" && call.operation == "AssumeRole" && status.is_success() {
            sim.identities
                .lock()
                .expect("identities lock")
                .learn_assume_role(&answer);
        }
        let request_id = headers
            .get("x-amzn-requestid")
            .or_else(|| headers.get("x-amz-request-id"))
            .and_then(|v| v.to_str().ok());
        let seq = record_call(
            &sim,
            call,
            status.as_u16(),
            &answer,
            request_id,
            &source_ip,
            &user_agent,
        );
        if status.is_success() && call.service == "cloudtrail" {
            answer = crate::answers::cloudtrail(&sim, call, answer, seq);
        }
        if status.is_success() && call.service == "s3" && call.operation == "GetBucketVersioning" {
            answer = crate::answers::bucket_versioning(answer);
        }
    }
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    for (name, value) in headers.iter() {
        if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// Records a management call in event history; returns its sequence number (0 for data
/// events, which are not recorded).
fn record_call(
    sim: &Sim,
    call: &Call,
    status: u16,
    body: &[u8],
    request_id: Option<&str>,
    source_ip: &str,
    user_agent: &str,
) -> u64 {
    if call.data.is_some() {
        return 0;
    }
    let identity = sim
        .identities
        .lock()
        .expect("identities lock")
        .of(&call.access_key_id);
    let time = sim.now();
    let outcome = Outcome {
        status,
        body,
        request_id,
    };
    let record = record::build(call, &identity, &outcome, time, source_ip, user_agent);
    sim.record(record, time, &identity.account_id, &call.region)
}

fn lookup_events(sim: &Sim, call: &Call, source_ip: &str, user_agent: &str) -> Response {
    let identity = sim
        .identities
        .lock()
        .expect("identities lock")
        .of(&call.access_key_id);
    let admitted = !sim.throttle.load(Ordering::Relaxed)
        || sim.limiter.lock().expect("limiter lock").admit(
            &identity.account_id,
            &call.region,
            Instant::now(),
        );
    let answer = if admitted {
        sim.history.lock().expect("history lock").lookup(
            &identity.account_id,
            &call.region,
            &call.parameters,
            sim.now(),
        )
    } else {
        Err(ApiError {
            code: "ThrottlingException",
            message: "Rate exceeded".into(),
        })
    };
    let (status, body) = match &answer {
        Ok(v) => (200, v.to_string()),
        Err(e) => (400, error_body(true, e.code, &e.message)),
    };
    // The lookup itself is a read event, recorded after answering so it never sees itself.
    record_call(
        sim,
        call,
        status,
        body.as_bytes(),
        None,
        source_ip,
        user_agent,
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).expect("valid status");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-amz-json-1.1".parse().expect("valid header"),
    );
    response
}

fn throttling_code(service: &str) -> &'static str {
    match service {
        "s3" => "SlowDown",
        "sts" => "Throttling",
        _ => "ThrottlingException",
    }
}

fn access_denied(json_protocol: bool) -> (u16, &'static str) {
    if json_protocol {
        (400, "AccessDeniedException")
    } else {
        (403, "AccessDenied")
    }
}

fn error_body(json_protocol: bool, code: &str, message: &str) -> String {
    if json_protocol {
        json!({"__type": code, "message": message}).to_string()
    } else {
        format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>trailsim</RequestId></ErrorResponse>"
        )
    }
}

/// An AWS-shaped error answer for the call's protocol.
fn error(json_protocol: bool, service: &str, status: u16, code: &str, message: &str) -> Response {
    let body = if service == "s3" && !json_protocol {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )
    } else {
        error_body(json_protocol, code, message)
    };
    let content_type = if json_protocol {
        "application/x-amz-json-1.1"
    } else {
        "text/xml"
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).expect("valid status");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.parse().expect("valid header"),
    );
    if status == 503 || code.contains("hrottl") || code == "SlowDown" {
        response
            .headers_mut()
            .insert("x-amzn-errortype", code.parse().expect("valid header"));
    }
    response
}

/// A response whose body fails: the client sees the connection drop mid-answer.
fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by trailsim"))
    });
    Response::new(Body::from_stream(stream))
}

// ---- control API ---------------------------------------------------------------------------

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

use axum::Json;

/// Clears events, faults, identities and the clock offset, and resets moto.
async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.history.lock().expect("history lock").clear();
    sim.faults.lock().expect("faults lock").clear();
    sim.identities.lock().expect("identities lock").clear();
    sim.clock_offset_ms.store(0, Ordering::Relaxed);
    *sim.deliveries.lock().expect("deliveries lock") = Deliveries::default();
    *sim.digests.lock().expect("digests lock") = Default::default();
    let uri: axum::http::Uri = "/moto-api/reset".parse().expect("valid uri");
    match sim
        .upstream
        .pass(
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
async fn inject_records(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
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

async fn list_records(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let history = sim.history.lock().expect("history lock");
    Json(json!({"records": history.all().map(|e| e.record.clone()).collect::<Vec<_>>()}))
}

async fn add_fault(State(sim): State<Arc<Sim>>, Json(spec): Json<Value>) -> Response {
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
async fn clear_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
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
async fn set_clock(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
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

/// `{"enabled": false}` turns LookupEvents' rate limit off.
/// Writes digests now (after any delivery) and reports them.
async fn digest_now(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match flag(&body, "backfill") {
        Ok(backfill) => Json(crate::digest_run::run(&sim, backfill).await).into_response(),
        Err(e) => bad_request(e),
    }
}

/// Runs a delivery now and reports what went where.
/// `{"late_account": ID}`: only that account's trails deliver, late.
async fn deliver_now(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
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
async fn set_latency(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
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

async fn set_throttle(State(sim): State<Arc<Sim>>, Json(body): Json<Value>) -> Response {
    let Some(enabled) = body["enabled"].as_bool() else {
        return bad_request("expected {\"enabled\": bool}");
    };
    sim.throttle.store(enabled, Ordering::Relaxed);
    Json(json!({"throttle": enabled})).into_response()
}
