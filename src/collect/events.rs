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

/// The write events from `start` to `end`, a page at a time ([`Pages::next`]).
pub fn write_events<'a>(
    client: &'a aws_sdk_cloudtrail::Client,
    limiter: &'a RateLimiter,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Pages<'a> {
    let writes = LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::ReadOnly)
        .attribute_value("false")
        .build()
        .expect("key and value are set");
    Pages::new(client, limiter, writes, start, end)
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
    let mut pages = Pages::new(client, limiter, attribute, start, end);
    let mut all = Vec::new();
    while let Some(page) = pages.next().await? {
        all.extend(page);
    }
    Ok(all)
}

/// A LookupEvents query read page by page, so the caller can store each page's work before
/// asking for the next.
pub struct Pages<'a> {
    client: &'a aws_sdk_cloudtrail::Client,
    limiter: &'a RateLimiter,
    attribute: LookupAttribute,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    token: Option<String>,
    done: bool,
    /// Calls made so far, retries included.
    pub calls: u32,
}

impl<'a> Pages<'a> {
    fn new(
        client: &'a aws_sdk_cloudtrail::Client,
        limiter: &'a RateLimiter,
        attribute: LookupAttribute,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Pages<'a> {
        Pages {
            client,
            limiter,
            attribute,
            start,
            end,
            token: None,
            done: false,
            calls: 0,
        }
    }

    /// The next page; `None` after the last. Throttling, 5xx and dropped connections are
    /// retried through the limiter; a failure stops the query (pages already handed over
    /// stay handed over).
    pub async fn next(&mut self) -> Result<Option<Vec<LookedUp>>, Unavailable> {
        if self.done {
            return Ok(None);
        }
        let mut attempt = 0;
        let out = loop {
            attempt += 1;
            self.limiter.wait().await;
            self.calls += 1;
            let sent = self
                .client
                .lookup_events()
                .lookup_attributes(self.attribute.clone())
                .start_time(to_smithy(self.start))
                .end_time(to_smithy(self.end))
                .max_results(50)
                .set_next_token(self.token.clone())
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
        self.token = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        self.done = self.token.is_none();
        Ok(Some(
            out.events()
                .iter()
                .map(|e| LookedUp {
                    event_id: e.event_id().map(str::to_string),
                    record: e.cloud_trail_event().map(str::to_string),
                })
                .collect(),
        ))
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
