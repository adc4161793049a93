//! The bucket poller in the daemon, against trailsim's deliveries: continuous digest
//! validation (a log file modified after it was read is still caught), tamper events found in
//! log files, a stale delivery once the bucket policy denies CloudTrail, and a two-day hole in
//! 100 days of history.
//!
//! trailsim's clock is global, so the tests here take turns (one lock).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

use aws_sdk_s3::primitives::ByteStream;
use flate2::read::GzDecoder;
use serde_json::{Value, json};
use std::io::Read;
use support::lab::{Lab, Options, finding};
use support::{Daemon, metric_value, trailsim, trailsim_control};

static CLOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn deliver_and_sign() -> (Value, Value) {
    (
        trailsim_control("/_trailsim/deliver", &json!({})),
        trailsim_control("/_trailsim/digest", &json!({})),
    )
}

/// A daemon on `lab` whose bucket poller runs every 2 s (trails hourly, events never after
/// the first run), with `policies` replacing the bucket policies' parameters.
fn start(lab: &Lab, fresh_for: &str, log: &str) -> Daemon {
    let port = support::free_port();
    let config = lab.write_events_config(
        port,
        trailsim(),
        "0 0 * * * *",
        "bucket:\n  concurrency: 4\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "events: \"*/2 * * * * *\"",
        "events: \"0 0 * * * *\"\n  bucket: \"*/2 * * * * *\"",
    );
    std::fs::write(&config, text).unwrap();
    let policies = lab.dir.path().join("policies.yaml");
    let text = std::fs::read_to_string(&policies)
        .unwrap()
        .replace("max_age: 30m", &format!("max_age: {fresh_for}"))
        .replace("tolerance: 6h", "tolerance: 30h");
    std::fs::write(&policies, text).unwrap();
    let mut d = Daemon::start(&lab.account, &config, port, lab.dir.path().join(log));
    d.wait_until("ready", |d| d.get("/readyz").is_some_and(|(c, _)| c == 200));
    d
}

fn bucket_polls(m: &str) -> f64 {
    metric_value(
        m,
        "trailwarden_poll_duration_seconds_count",
        &[("poller", "bucket")],
    )
    .unwrap_or(0.0)
}

/// Waits for two more bucket polls (one may have started before the change).
fn next_polls(d: &mut Daemon) {
    let from = bucket_polls(&d.metrics());
    d.wait_until("two more bucket polls", |d| {
        bucket_polls(&d.metrics()) >= from + 2.0
    });
}

fn policy(d: &Daemon, id: &str) -> Value {
    let status = d.status();
    status["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["policy"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id} finding in {status:#}"))
}

fn failures(m: &str, kind: &str) -> f64 {
    metric_value(
        m,
        "trailwarden_digest_validation_failures_total",
        &[("kind", kind)],
    )
    .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn digests_validate_continuously_and_log_files_feed_the_detections() {
    let _turn = CLOCK.lock().await;
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    for h in [3, 2, 1] {
        trailsim_control("/_trailsim/clock", &json!({"offset_seconds": -h * 3600}));
        lab.cloudtrail().describe_trails().send().await.unwrap();
        deliver_and_sign();
    }
    trailsim_control("/_trailsim/clock", &json!({"offset_seconds": 0}));
    let mut d = start(&lab, "30m", "bucket.log");
    next_polls(&mut d);
    let m = d.metrics();
    let labels = [
        ("account", lab.account.id.as_str()),
        ("region", "us-east-1"),
        ("trail", "lab"),
    ];
    let validated = metric_value(&m, "trailwarden_log_files_validated_total", &labels).unwrap();
    assert!(validated >= 3.0, "{m}");
    for kind in [
        "missing_digest",
        "modified_log",
        "broken_link",
        "unexplained_restart",
    ] {
        assert_eq!(failures(&m, kind), 0.0, "{kind} starts at 0:\n{m}");
    }
    let newest = metric_value(
        &m,
        "trailwarden_trail_latest_log_timestamp_seconds",
        &labels,
    )
    .unwrap();
    assert!(chrono::Utc::now().timestamp() as f64 - newest < 3.0 * 3600.0 + 600.0);
    assert!(
        metric_value(&m, "trailwarden_log_records_processed_total", &labels[..2]).unwrap() >= 3.0
    );
    assert_eq!(
        policy(&d, "log-integrity")["status"],
        "pass",
        "{}",
        d.log_text()
    );

    // StopLogging reaches the daemon through the log file only (event history is not
    // polled again): counted, with its actor in /status.
    lab.stop_logging().await;
    let (delivered, _) = deliver_and_sign();
    let key = delivered_key(&lab, &delivered);
    d.wait_until("StopLogging counted from the log file", |d| {
        support::event_watch::tamper(&d.metrics(), "cloudtrail_stop_logging", "success") == 1.0
    });
    let status = d.status();
    let event = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_name"] == "StopLogging")
        .unwrap();
    assert!(
        event["actor"]
            .as_str()
            .unwrap()
            .contains("trailwarden-test"),
        "{event:#}"
    );

    // A log file modified after the daemon read it, before its digest: still caught, since
    // the hash is only trusted while the object's ETag is unchanged.
    lab.cloudtrail()
        .start_logging()
        .name(&lab.trail_name)
        .send()
        .await
        .unwrap();
    let fresh = delivered_key(&lab, &trailsim_control("/_trailsim/deliver", &json!({})));
    assert_ne!(fresh, key);
    next_polls(&mut d);
    let o = lab
        .s3()
        .get_object()
        .bucket(&lab.bucket)
        .key(&fresh)
        .send()
        .await
        .unwrap();
    let mut raw = String::new();
    GzDecoder::new(&o.body.collect().await.unwrap().into_bytes()[..])
        .read_to_string(&mut raw)
        .unwrap();
    let forged = trailsim::delivery::gzip(raw.replace("StartLogging", "StartLoggin9").as_bytes());
    lab.s3()
        .put_object()
        .bucket(&lab.bucket)
        .key(&fresh)
        .body(ByteStream::from(forged))
        .send()
        .await
        .unwrap();
    trailsim_control("/_trailsim/digest", &json!({}));
    d.wait_until("the modified log file reported", |d| {
        failures(&d.metrics(), "modified_log") == 1.0
    });
    let f = policy(&d, "log-integrity");
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["message"].as_str().unwrap().contains("modified_log"),
        "{f:#}"
    );
    let status = d.status();
    let items = status["buckets"][0]["integrity"].as_array().unwrap();
    let item = items.iter().find(|i| i["class"] == "modified_log").unwrap();
    assert_eq!(item["object"], fresh.as_str());
    assert!(item["time"].is_string(), "{item:#}");
    // The stop and start in between made a new chain: explained, not a failure.
    assert!(
        items.iter().any(|i| i["class"] == "explained_restart"),
        "{items:#?}"
    );
    assert_eq!(failures(&d.metrics(), "unexplained_restart"), 0.0);
}

/// The us-east-1 log file a delivery wrote for the lab (keys of one minute differ only in
/// their random suffix, so "the newest" must come from the delivery itself).
fn delivered_key(lab: &Lab, answer: &Value) -> String {
    answer["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["bucket"] == lab.bucket.as_str())
        .find_map(|e| e["key"].as_str().filter(|k| k.contains("/us-east-1/")))
        .unwrap_or_else(|| panic!("no us-east-1 log file for the lab in {answer:#}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_goes_stale_when_the_bucket_policy_denies_cloudtrail() {
    let _turn = CLOCK.lock().await;
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    deliver_and_sign();
    let mut d = start(&lab, "20s", "stale.log");
    next_polls(&mut d);
    assert_eq!(policy(&d, "log-delivery-fresh")["status"], "pass");
    let deny = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"Service": "cloudtrail.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{}/*", lab.bucket)}]});
    lab.s3()
        .put_bucket_policy()
        .bucket(&lab.bucket)
        .policy(deny.to_string())
        .send()
        .await
        .unwrap();
    let labels = [
        ("account", lab.account.id.as_str()),
        ("region", "us-east-1"),
        ("trail", "lab"),
    ];
    let before = metric_value(
        &d.metrics(),
        "trailwarden_trail_latest_log_timestamp_seconds",
        &labels,
    )
    .unwrap();
    // Activity goes on, deliveries fail; the trail still says it is logging.
    d.wait_until("the newest log file older than max_age", |d| {
        let _ = trailsim_control("/_trailsim/deliver", &json!({}));
        policy(d, "log-delivery-fresh")["status"] == "fail"
    });
    let f = policy(&d, "log-delivery-fresh");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("us-east-1: newest log file delivered"),
        "{message}"
    );
    assert_eq!(d.status()["trails"][0]["is_logging"], true);
    let after = metric_value(
        &d.metrics(),
        "trailwarden_trail_latest_log_timestamp_seconds",
        &labels,
    )
    .unwrap();
    assert_eq!(before, after, "nothing new arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_day_hole_in_a_hundred_days_of_history() {
    let _turn = CLOCK.lock().await;
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let now = chrono::Utc::now();
    // One log file a day for 100 days, none on days 40 and 41 (counted back from today).
    for day in (0..=100i64).rev().filter(|d| !(40..42).contains(d)) {
        let at = now - chrono::Duration::days(day);
        let key = trailsim::delivery::log_key(
            None,
            None,
            &lab.account.id,
            "us-east-1",
            at,
            &trailsim::delivery::unique16(),
        );
        let body = trailsim::delivery::gzip(&trailsim::delivery::log_json(&[]));
        lab.s3()
            .put_object()
            .bucket(&lab.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    let mut d = start(&lab, "30h", "coverage.log");
    next_polls(&mut d);
    let f = policy(&d, "log-coverage");
    assert_eq!(f["status"], "fail", "{f:#}");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("uncovered:"), "{message}");
    let hole_start = (now - chrono::Duration::days(42)).date_naive().to_string();
    let hole_end = (now - chrono::Duration::days(39)).date_naive().to_string();
    assert!(
        message.contains(&hole_start) && message.contains(&hole_end),
        "{message}"
    );
    let status = d.status();
    let region = status["buckets"][0]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "us-east-1")
        .unwrap()
        .clone();
    let holes = region["holes"].as_array().unwrap();
    assert_eq!(holes.len(), 1, "{region:#}");
    assert!(holes[0]["start"].as_str().unwrap().starts_with(&hole_start));
    assert!(holes[0]["end"].as_str().unwrap().starts_with(&hole_end));
    assert!(
        region["oldest_log"]
            .as_str()
            .unwrap()
            .starts_with(&(now - chrono::Duration::days(100)).date_naive().to_string())
    );
    let m = d.metrics();
    let labels = [
        ("account", lab.account.id.as_str()),
        ("region", "us-east-1"),
        ("trail", "lab"),
    ];
    let gap = metric_value(&m, "trailwarden_log_coverage_gap_seconds", &labels).unwrap();
    assert!(
        (gap - 3.0 * 86_400.0).abs() < 120.0,
        "a three-day stretch between files: {gap}"
    );
    let oldest = metric_value(
        &m,
        "trailwarden_trail_oldest_log_timestamp_seconds",
        &labels,
    )
    .unwrap();
    assert!((now.timestamp() as f64 - oldest - 100.0 * 86_400.0).abs() < 120.0);
    let _ = finding;
}

/// The lab's bucket announcing new objects to a queue of the lab's account, each message
/// handed out again 3 s after a receive that did not delete it. Returns the queue's URL.
async fn announce_to_queue(lab: &Lab) -> String {
    let sqs = aws_sdk_sqs::Client::new(&lab.sdk);
    let url = sqs
        .create_queue()
        .queue_name(format!("{}-logs", lab.bucket))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "3",
        )
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .unwrap()
        .to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    set_notification(lab, Some(&arn)).await;
    url
}

/// The bucket's notification to `queue_arn`, or none.
async fn set_notification(lab: &Lab, queue_arn: Option<&str>) {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    let queues = queue_arn.map(|arn| {
        QueueConfiguration::builder()
            .queue_arn(arn)
            .events(Event::S3ObjectCreated)
            .build()
            .unwrap()
    });
    lab.s3()
        .put_bucket_notification_configuration()
        .bucket(&lab.bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .set_queue_configurations(queues.map(|q| vec![q]))
                .build(),
        )
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
}

/// Messages in the queue, visible or handed out.
async fn queued(lab: &Lab, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = aws_sdk_sqs::Client::new(&lab.sdk)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attributes = out.attributes().unwrap();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|a| attributes.get(a).map_or(0, |v| v.parse::<u64>().unwrap()))
    .sum()
}

fn counted(m: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(m, name, labels).unwrap_or(0.0)
}

fn listings(m: &str) -> f64 {
    [
        "success",
        "client_error",
        "server_error",
        "throttled",
        "transport_error",
    ]
    .iter()
    .map(|o| {
        counted(
            m,
            "trailwarden_aws_api_calls_total",
            &[
                ("service", "s3"),
                ("operation", "ListObjectsV2"),
                ("outcome", o),
            ],
        )
    })
    .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_bring_new_log_files_without_a_listing_and_the_listing_catches_a_lost_one() {
    let _turn = CLOCK.lock().await;
    let lab = Lab::build_at(trailsim(), Options::default()).await;
    let url = announce_to_queue(&lab).await;
    // Notifications every 2 s; the bucket listed and event history read only at start.
    let port = support::free_port();
    let config = lab.write_events_config(
        port,
        trailsim(),
        "*/5 * * * * *",
        &format!(
            "bucket:\n  queues: [{{url: '{url}', bucket: {}}}]\n  retry_backoff: 1s\n",
            lab.bucket
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "events: \"*/2 * * * * *\"",
        "events: \"0 0 0 1 1 *\"\n  bucket: \"0 0 0 1 1 *\"\n  notifications: \"*/2 * * * * *\"",
    );
    std::fs::write(&config, text).unwrap();
    let mut d = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir.path().join("queue.log"),
    );
    d.wait_until("the first bucket pass and a notifications run", |d| {
        let m = d.metrics();
        bucket_polls(&m) >= 1.0
            && counted(
                &m,
                "trailwarden_poll_duration_seconds_count",
                &[("poller", "notifications")],
            ) >= 1.0
    });
    let listed = listings(&d.metrics());
    let stops = |m: &str| {
        counted(
            m,
            "trailwarden_tamper_events_total",
            &[("detection", "cloudtrail_stop_logging")],
        )
    };
    let before = stops(&d.metrics());

    // --- A StopLogging in a new log file: announced, read, counted; no listing.
    lab.stop_logging().await;
    trailsim_control("/_trailsim/deliver", &json!({}));
    d.wait_until("the announced StopLogging counted", |d| {
        stops(&d.metrics()) > before
    });
    let m = d.metrics();
    assert!(counted(&m, "trailwarden_log_files_announced_total", &[]) >= 1.0);
    assert!(
        counted(
            &m,
            "trailwarden_event_claims_total",
            &[("source", "bucket")]
        ) >= 1.0
    );
    assert_eq!(listings(&m), listed, "read without listing the bucket");
    d.wait_until("the message deleted", |d| {
        counted(
            &d.metrics(),
            "trailwarden_queue_messages_total",
            &[("outcome", "deleted")],
        ) >= 1.0
    });

    // --- A log file that cannot be read: its message stays until it can.
    let fault = json!({"operation": "GetObject", "kind": "access_denied", "account": lab.account.id,
        "key_prefix": format!("AWSLogs/{}/CloudTrail/", lab.account.id), "seconds": 3600.0});
    trailsim_control("/_trailsim/faults", &fault);
    lab.cloudtrail()
        .start_logging()
        .name(&lab.trail_name)
        .send()
        .await
        .unwrap();
    trailsim_control("/_trailsim/deliver", &json!({}));
    let starts = |m: &str| {
        counted(
            m,
            "trailwarden_tamper_events_total",
            &[("detection", "cloudtrail_start_logging")],
        )
    };
    let started_before = starts(&d.metrics());
    d.wait_until("the message kept after a failed read", |d| {
        counted(
            &d.metrics(),
            "trailwarden_queue_messages_total",
            &[("outcome", "kept")],
        ) >= 1.0
    });
    assert!(
        queued(&lab, &url).await >= 1,
        "the message is still in the queue"
    );
    assert_eq!(starts(&d.metrics()), started_before, "nothing read yet");
    support::trailsim_request(
        "DELETE",
        "/_trailsim/faults",
        &json!({"account": lab.account.id}),
    );
    d.wait_until("the message handed out again, read and deleted", |d| {
        starts(&d.metrics()) > started_before
    });
    let mut empty = false;
    for _ in 0..50 {
        if queued(&lab, &url).await == 0 {
            empty = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(empty, "the queue is empty once everything is read");
    assert_eq!(listings(&d.metrics()), listed, "still no listing");
    d.stop();

    // --- A notification lost (the bucket stops announcing): the next listing reads the file.
    set_notification(&lab, None).await;
    lab.stop_logging().await;
    trailsim_control("/_trailsim/deliver", &json!({}));
    let mut d = Daemon::start(
        &lab.account,
        &config,
        port,
        lab.dir.path().join("queue-2.log"),
    );
    // Event history at start may count the StopLogging first; what matters is that the
    // listing read the file no notification announced (files read before are remembered).
    d.wait_until("the bucket pass at start", |d| {
        bucket_polls(&d.metrics()) >= 1.0
    });
    let m = d.metrics();
    assert!(listings(&m) >= 1.0);
    let records: f64 = m
        .lines()
        .filter(|l| l.starts_with("trailwarden_log_records_processed_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        records >= 1.0,
        "the unannounced log file was read by the listing"
    );
    assert_eq!(
        counted(&m, "trailwarden_log_files_announced_total", &[]),
        0.0,
        "found by the listing, not announced"
    );
    d.stop();
}
