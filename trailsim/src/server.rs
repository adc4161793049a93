//! The HTTP endpoint: AWS calls are identified, checked against injected faults (and
//! AssumeRole against the role), answered here (LookupEvents) or forwarded to moto, and
//! recorded as CloudTrail events. The control API (`/_trailsim/`) is routed here and served
//! by `control.rs`.

use crate::call::{self, Call};
use crate::control;
use crate::delivery::Deliveries;
use crate::faults::{FaultKind, Faults};
use crate::history::{ApiError, Event, History};
use crate::identity::Identities;
use crate::limiter::Limiter;
use crate::record::{self, Outcome};
use crate::upstream::Upstream;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
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
    /// Answer repeated reads from memory ([`crate::read_cache`]); only when every write goes
    /// through trailsim.
    pub read_cache: bool,
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
    /// CloudTrail's delegated administrators, by management account (moto's Organizations
    /// does not know CloudTrail as a delegated service).
    pub(crate) delegated_admins:
        Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>>,
    /// AWS Config's conformance packs and rule results (moto has neither).
    pub(crate) compliance: Mutex<crate::compliance::Compliance>,
    /// Security Hub's findings, checked against ASFF (moto checks nothing).
    pub(crate) security_hub: Mutex<crate::security_hub::Findings>,
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
                    .read_cache
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
            delegated_admins: Mutex::default(),
            compliance: Mutex::default(),
            security_hub: Mutex::default(),
        })
    }

    /// The account whose credentials signed `call`.
    pub(crate) fn caller_account(&self, call: &crate::call::Call) -> String {
        self.identities
            .lock()
            .expect("identities lock")
            .of(&call.access_key_id)
            .account_id
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
        .route("/_trailsim/reset", post(control::reset))
        .route(
            "/_trailsim/records",
            post(control::inject_records).get(control::list_records),
        )
        .route(
            "/_trailsim/faults",
            post(control::add_fault).delete(control::clear_faults),
        )
        .route("/_trailsim/clock", post(control::set_clock))
        .route("/_trailsim/throttle", post(control::set_throttle))
        .route("/_trailsim/latency", post(control::set_latency))
        .route("/_trailsim/deliver", post(control::deliver_now))
        .route("/_trailsim/digest", post(control::digest_now))
        .route(
            "/_trailsim/config/evaluations",
            post(control::set_config_result),
        )
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
        let account = sim.caller_account(call);
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
        if call.service == "sts"
            && call.operation == "AssumeRole"
            && let Some(message) = crate::trust::refusal(&sim, call).await
        {
            let body = error_body(false, "AccessDenied", &message);
            record_call(
                &sim,
                call,
                403,
                body.as_bytes(),
                None,
                &source_ip,
                &user_agent,
            );
            return error(false, &call.service, 403, "AccessDenied", &message);
        }
        if call.service == "cloudtrail" && call.operation == "LookupEvents" {
            return lookup_events(&sim, call, &source_ip, &user_agent);
        }
        if call.service == "cloudtrail"
            && let Some((status, body)) =
                crate::organization::delegated_admin_call(&sim, call).await
        {
            record_call(
                &sim,
                call,
                status,
                body.as_bytes(),
                None,
                &source_ip,
                &user_agent,
            );
            return json_answer(status, body);
        }
        if let Some((status, body)) = crate::compliance::answer(&sim, call)
            .or_else(|| crate::security_hub::answer(&sim, call, &body))
        {
            let request_id = uuid::Uuid::new_v4().to_string();
            record_call(
                &sim,
                call,
                status,
                body.as_bytes(),
                Some(&request_id),
                &source_ip,
                &user_agent,
            );
            return json_answer(status, body);
        }
        if call.service == "sts"
            && call.operation == "GetCallerIdentity"
            && let Some(body) = caller_identity(&sim, &call.access_key_id)
        {
            let request_id = uuid::Uuid::new_v4().to_string();
            record_call(
                &sim,
                call,
                200,
                body.as_bytes(),
                Some(&request_id),
                &source_ip,
                &user_agent,
            );
            return xml_answer(body, &request_id);
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
            return json_answer(200, body);
        }
    }

    // An organization trail's status asked by a member is answered as its owner.
    let as_owner = match &call {
        Some(call) => crate::organization::as_owner(&sim, call, &parts.headers).await,
        None => None,
    };
    let headers = as_owner.as_ref().unwrap_or(&parts.headers);
    // Answers are kept by account for keys trailsim issued (see `read_cache`).
    let principal = match (&call, &as_owner) {
        (Some(call), None) => {
            let identities = sim.identities.lock().expect("identities lock");
            identities
                .issued(&call.access_key_id)
                .then(|| identities.of(&call.access_key_id).account_id)
        }
        _ => None,
    };
    let forwarded = sim
        .upstream
        .pass(
            principal.as_deref(),
            &parts.method,
            &parts.uri,
            headers,
            body,
        )
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
            answer = crate::regions::across_regions(&sim, call, answer).await;
            answer = crate::organization::with_shadow_trails(&sim, call, answer).await;
            answer = crate::answers::cloudtrail(&sim, call, answer, seq);
        }
        if status.is_success() && call.service == "s3" && call.operation == "GetBucketVersioning" {
            answer = crate::answers::bucket_versioning(answer);
        }
    }
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    for (name, value) in headers.iter() {
        if name != header::CONTENT_LENGTH && !hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// Headers of one connection, not of the answer (RFC 9110, 7.6.1): moto's `Connection:
/// close`, passed on, made trailsim close every client's connection after each answer, so
/// each call paid a new connection, which AWS does not make a client pay.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
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

/// GetCallerIdentity of a key an AssumeRole through trailsim issued, answered here as STS
/// (and moto) answer it. moto looks the key up across every account's backend, about 11 ms a
/// call at a thousand accounts, one call at a time: a daemon's per-account check would
/// measure moto. Other keys are moto's to answer.
fn caller_identity(sim: &Sim, access_key_id: &str) -> Option<String> {
    let identities = sim.identities.lock().expect("identities lock");
    if !identities.issued(access_key_id) {
        return None;
    }
    let who = identities.of(access_key_id);
    Some(format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>\
         </GetCallerIdentityResult></GetCallerIdentityResponse>",
        crate::xml::escape(&who.arn),
        crate::xml::escape(&who.principal_id),
        crate::xml::escape(&who.account_id),
    ))
}

/// An answer trailsim makes itself, in the query protocol's XML.
fn xml_answer(body: String, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "text/xml".parse().expect("valid header"),
    );
    if let Ok(id) = request_id.parse() {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// An answer trailsim makes itself, in the JSON protocol.
fn json_answer(status: u16, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).expect("valid status");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-amz-json-1.1".parse().expect("valid header"),
    );
    response
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
