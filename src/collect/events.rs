//! CloudTrail LookupEvents: the write events of a time window, page by page, within the API's
//! limit of 2 calls per second per account and region.
//!
//! One query for every write event (`ReadOnly=false`) costs fewer calls than one per event
//! source the detections name, and leaves out the reads (the daemon's own included) that make
//! up most of an account's history. The SDK's own retries are off for this call: they would
//! not wait for the limiter. Throttling and server errors are retried here, through it.

use super::aws::{error_code, unavailable};
use crate::posture::Unavailable;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces calls at least `interval` apart.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn per_second(calls: u32) -> RateLimiter {
        RateLimiter {
            interval: Duration::from_secs(1) / calls.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits for this call's slot.
    pub async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + self.interval);
        drop(next);
        tokio::time::sleep_until(at).await;
    }
}

/// One entry of a page: the id LookupEvents gives and the record text.
#[derive(Debug, Clone)]
pub struct LookedUp {
    pub event_id: Option<String>,
    pub record: Option<String>,
}

/// Attempts per page before the poll gives up (it resumes from its checkpoint next time).
const PAGE_ATTEMPTS: u32 = 6;

/// Reads every write event from `start` to `end`, handing each page to `page` as it comes.
/// Returns the number of calls made, or the failure that stopped it (pages already handed
/// over stay handed over).
pub async fn lookup_write_events(
    client: &aws_sdk_cloudtrail::Client,
    limiter: &RateLimiter,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    page: impl FnMut(Vec<LookedUp>),
) -> Result<u32, Unavailable> {
    let writes = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::ReadOnly)
        .attribute_value("false")
        .build()
        .expect("key and value are set");
    lookup(client, limiter, writes, start, end, page).await
}

/// Every event named `name` from `start` to `end`, through `limiter`.
pub async fn lookup_by_name(
    client: &aws_sdk_cloudtrail::Client,
    limiter: &RateLimiter,
    name: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<LookedUp>, Unavailable> {
    let attribute = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::EventName)
        .attribute_value(name)
        .build()
        .expect("key and value are set");
    let mut all = Vec::new();
    lookup(client, limiter, attribute, start, end, |p| all.extend(p)).await?;
    Ok(all)
}

async fn lookup(
    client: &aws_sdk_cloudtrail::Client,
    limiter: &RateLimiter,
    attribute: LookupAttribute,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    mut page: impl FnMut(Vec<LookedUp>),
) -> Result<u32, Unavailable> {
    let mut token: Option<String> = None;
    let mut calls = 0;
    loop {
        let mut attempt = 0;
        let out = loop {
            attempt += 1;
            limiter.wait().await;
            calls += 1;
            let sent = client
                .lookup_events()
                .lookup_attributes(attribute.clone())
                .start_time(to_smithy(start))
                .end_time(to_smithy(end))
                .max_results(50)
                .set_next_token(token.clone())
                .customize()
                .config_override(
                    aws_sdk_cloudtrail::config::Config::builder()
                        .retry_config(aws_smithy_types::retry::RetryConfig::disabled()),
                )
                .send()
                .await;
            match sent {
                Ok(out) => break out,
                Err(e) if attempt < PAGE_ATTEMPTS && retryable(&e) => {
                    let backoff = Duration::from_millis(500 * 2u64.pow(attempt - 1));
                    tracing::debug!(attempt, ?backoff, error = %unavailable("LookupEvents", &e), "retrying");
                    tokio::time::sleep(backoff.min(Duration::from_secs(8))).await;
                }
                Err(e) => return Err(unavailable("LookupEvents", &e)),
            }
        };
        page(
            out.events()
                .iter()
                .map(|e| LookedUp {
                    event_id: e.event_id().map(str::to_string),
                    record: e.cloud_trail_event().map(str::to_string),
                })
                .collect(),
        );
        token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            return Ok(calls);
        }
    }
}

type LookupError = aws_sdk_cloudtrail::error::SdkError<
    aws_sdk_cloudtrail::operation::lookup_events::LookupEventsError,
    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
>;

/// Throttling, 5xx, timeouts and dropped connections pass; AccessDenied and bad requests not.
fn retryable(e: &LookupError) -> bool {
    use aws_sdk_cloudtrail::error::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let code = error_code(e).unwrap_or_default();
            code.contains("Throttl")
                || code == "RequestLimitExceeded"
                || s.raw().status().is_server_error()
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

fn to_smithy(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn two_calls_per_second_at_most() {
        let limiter = RateLimiter::per_second(2);
        let started = Instant::now();
        for _ in 0..5 {
            limiter.wait().await;
        }
        // Slots at 0, 0.5, 1.0, 1.5, 2.0 s (the paused clock makes this exact).
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
