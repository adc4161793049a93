//! trailsim as a user runs it by hand: it starts its own moto, honours `--no-throttle` and
//! `--visibility-delay`, and takes its moto down with it on SIGTERM.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_s3::config::Credentials;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts trailsim without `--upstream`; returns the process, its URL and its moto's URL.
fn start(args: &[&str]) -> (std::process::Child, String, String) {
    let moto_server = testbed::python_env().join("bin").join("moto_server");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailsim"))
        .args(["--listen", "127.0.0.1:0", "--moto-server"])
        .arg(&moto_server)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "trailsim listening on http://127.0.0.1:P (upstream http://127.0.0.1:Q)"
    let urls: Vec<String> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| w.starts_with("http://"))
        .map(str::to_string)
        .collect();
    assert_eq!(urls.len(), 2, "{line}");
    (child, urls[0].clone(), urls[1].clone())
}

fn answers(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn by_hand_with_its_own_moto_no_throttle_and_a_visibility_delay() {
    let (mut trailsim, endpoint, moto) = start(&["--no-throttle", "--visibility-delay", "3"]);
    assert!(answers(&moto));
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "not-a-secret",
            None,
            None,
            "tests",
        ))
        // No retries: a throttled call would fail the test.
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("standalone-bucket")
        .send()
        .await
        .unwrap();
    let made = Instant::now();
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&sdk);
    let lookup = || {
        cloudtrail
            .lookup_events()
            .lookup_attributes(
                LookupAttribute::builder()
                    .attribute_key(LookupAttributeKey::EventName)
                    .attribute_value("CreateBucket")
                    .build()
                    .unwrap(),
            )
            .send()
    };
    // Six calls at once would be throttled at 2 per second; here none is, and the event is
    // not visible yet.
    for _ in 0..6 {
        let out = lookup().await.expect("no throttling with --no-throttle");
        if made.elapsed() < Duration::from_millis(2500) {
            assert!(out.events().is_empty(), "visible before its delay");
        }
    }
    tokio::time::sleep(Duration::from_millis(3200).saturating_sub(made.elapsed())).await;
    let out = lookup().await.unwrap();
    assert_eq!(out.events().len(), 1, "visible after its delay");

    // SIGTERM stops trailsim and the moto it started.
    let stopped = Command::new("kill")
        .arg(trailsim.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    trailsim.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers(&moto) {
        assert!(Instant::now() < deadline, "moto outlived trailsim");
        std::thread::sleep(Duration::from_millis(100));
    }
}
