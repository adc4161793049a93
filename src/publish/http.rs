//! HTTP: `/metrics`, `/status`, `/findings` (JSON or OCSF), `/healthz`, `/readyz`.

use super::health::{Progress, stalled};
use super::metrics::Metrics;
use super::status::StatusDocument;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use parking_lot::RwLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The scheduler's heartbeat job runs every few seconds; older than this means it is stuck.
pub const HEARTBEAT_STALE_SECONDS: i64 = 60;

/// What the endpoints read. Pollers write it; handlers never call AWS.
pub struct Published {
    pub metrics: Metrics,
    pub status: RwLock<StatusDocument>,
    /// The first evaluation (trails and posture) has finished.
    pub ready: AtomicBool,
    /// Unix time of the scheduler's last heartbeat.
    pub heartbeat: AtomicI64,
    /// Each poller's progress (set once the pollers exist): one stuck in a run makes the
    /// daemon unhealthy.
    pub progress: std::sync::OnceLock<Vec<Arc<Progress>>>,
    /// Seconds a run may go without progress.
    pub stall_after: i64,
}

pub fn router(published: Arc<Published>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/findings", get(findings))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(index))
        .with_state(published)
}

async fn metrics(State(p): State<Arc<Published>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        p.metrics.render(),
    )
        .into_response()
}

async fn status(State(p): State<Arc<Published>>) -> Json<StatusDocument> {
    Json(p.status.read().clone())
}

#[derive(serde::Deserialize)]
struct FindingsQuery {
    format: Option<String>,
}

/// The findings and the detections of the newest events: as in `/status` (`format=json`, the
/// default), or as OCSF 1.8.0 Compliance and Detection Findings (`format=ocsf`, an array).
async fn findings(
    State(p): State<Arc<Published>>,
    axum::extract::Query(q): axum::extract::Query<FindingsQuery>,
) -> Response {
    let doc = p.status.read();
    match q.format.as_deref().unwrap_or("json") {
        "json" => Json(serde_json::json!({
            "evaluated_at": doc.evaluated_at,
            "findings": doc.findings,
            "events": doc.events,
        }))
        .into_response(),
        "ocsf" => {
            let evaluated_at = doc.evaluated_at.unwrap_or(doc.started_at);
            let mut events: Vec<serde_json::Value> = doc
                .findings
                .iter()
                .map(|e| {
                    let description = doc.descriptions.get(&e.finding.policy);
                    crate::ocsf::compliance_finding(
                        &e.finding,
                        description.map(String::as_str),
                        e.since,
                        evaluated_at,
                        env!("CARGO_PKG_VERSION"),
                    )
                })
                .collect();
            events.extend(doc.ocsf_events.iter().cloned());
            Json(events).into_response()
        }
        other => (
            StatusCode::BAD_REQUEST,
            format!("format {other:?}: json or ocsf\n"),
        )
            .into_response(),
    }
}

async fn healthz(State(p): State<Arc<Published>>) -> (StatusCode, String) {
    let now = chrono::Utc::now().timestamp();
    let age = now - p.heartbeat.load(Ordering::Relaxed);
    if age > HEARTBEAT_STALE_SECONDS {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "scheduler has not ticked for over a minute\n".into(),
        );
    }
    let stuck: Vec<String> = p
        .progress
        .get()
        .into_iter()
        .flatten()
        .filter_map(|poller| stalled(poller.name, poller.read(), now, p.stall_after))
        .collect();
    if stuck.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", stuck.join("\n")),
        )
    }
}

async fn readyz(State(p): State<Arc<Published>>) -> (StatusCode, &'static str) {
    if p.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "first evaluation not finished\n",
        )
    }
}

async fn index() -> &'static str {
    "trailwarden: /metrics /status /findings /healthz /readyz\n"
}
