//! trailsim as a user runs it by hand: it starts its own moto, honours `--no-throttle`,
//! `--visibility-delay`, `--read-cache` and `--latency-ms`, and takes its moto down with it
//! on SIGTERM.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod support;

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

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
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
        .await
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Stops trailsim with SIGTERM (which stops the moto it started) and waits for it.
fn stop(trailsim: &mut std::process::Child) {
    let stopped = Command::new("kill")
        .arg(trailsim.id().to_string())
        .status()
        .unwrap();
    assert!(stopped.success());
    trailsim.wait().unwrap();
}

fn answers(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn by_hand_with_its_own_moto_no_throttle_and_a_visibility_delay() {
    let (mut trailsim, endpoint, moto) = start(&["--no-throttle", "--visibility-delay", "3"]);
    assert!(answers(&moto));
    let sdk = sdk(&endpoint).await;
    let s3 = s3(&sdk);
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
    stop(&mut trailsim);
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers(&moto) {
        assert!(Instant::now() < deadline, "moto outlived trailsim");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `request` on `stream` and reads the answer's status line and headers (lowercase)
/// and its body, by its length.
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> (String, Vec<String>) {
    use std::io::{BufRead, Read, Write};
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let length: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status.trim_end().to_string(), headers)
}

/// moto closes its connection after each answer; trailsim must not pass that on: AWS keeps a
/// client's connection open, and a daemon over a thousand accounts would otherwise pay a
/// new connection per call.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_connection_stays_open_across_calls() {
    let (mut trailsim, endpoint, _moto) = start(&["--no-throttle"]);
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for call in 1..=2 {
        let (status, headers) = exchange(&mut stream, &request);
        assert!(status.ends_with("200 OK"), "call {call}: {status}");
        assert!(
            !headers.iter().any(|h| h.starts_with("connection:")),
            "call {call}: {headers:?}"
        );
    }
    stop(&mut trailsim);
}

/// What an object reads as through `s3`, or the error code.
async fn read(s3: &aws_sdk_s3::Client, key: &str) -> String {
    match s3.get_object().bucket("cached").key(key).send().await {
        Ok(out) => String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap(),
        Err(e) => e
            .into_service_error()
            .meta()
            .code()
            .unwrap_or("?")
            .to_string(),
    }
}

async fn write(s3: &aws_sdk_s3::Client, key: &str, text: &'static str) {
    s3.put_object()
        .bucket("cached")
        .key(key)
        .body(text.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_cache_answers_repeated_reads_until_a_write_through_trailsim() {
    let (mut trailsim, endpoint, moto) = start(&["--read-cache", "--latency-ms", "250"]);
    let through = s3(&sdk(&endpoint).await);
    let direct = s3(&sdk(&moto).await);

    // Every request waits the latency given at start, and as set through the control API.
    let started = Instant::now();
    through
        .create_bucket()
        .bucket("cached")
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let (code, set) = support::post_to(
        &endpoint,
        "/_trailsim/latency",
        &serde_json::json!({"milliseconds": 0}),
    );
    assert_eq!(code, 200, "{set}");

    write(&through, "log.json", "first").await;
    assert_eq!(read(&through, "log.json").await, "first");
    // A write that bypasses trailsim is not seen: the read is answered from memory (why the
    // cache is off by default and tests that write to moto directly leave it off).
    write(&direct, "log.json", "changed behind trailsim").await;
    assert_eq!(read(&through, "log.json").await, "first");
    // A write through trailsim empties the cache: reads see moto again, as on S3.
    write(&through, "other.json", "x").await;
    assert_eq!(read(&through, "log.json").await, "changed behind trailsim");
    write(&through, "log.json", "second").await;
    assert_eq!(read(&through, "log.json").await, "second");
    through
        .delete_object()
        .bucket("cached")
        .key("log.json")
        .send()
        .await
        .unwrap();
    assert_eq!(read(&through, "log.json").await, "NoSuchKey");
    // Errors are not kept: once the object exists again it is read.
    write(&direct, "log.json", "back").await;
    assert_eq!(read(&through, "log.json").await, "back");

    // CloudTrail reads are kept the same way, and a CloudTrail write empties the cache.
    let trails_through = aws_sdk_cloudtrail::Client::new(&sdk(&endpoint).await);
    let trails_direct = aws_sdk_cloudtrail::Client::new(&sdk(&moto).await);
    let names = || async {
        let mut names: Vec<String> = trails_through
            .describe_trails()
            .send()
            .await
            .unwrap()
            .trail_list()
            .iter()
            .filter_map(|t| t.name().map(str::to_string))
            .collect();
        names.sort();
        names
    };
    for name in ["kept", "second"] {
        let client = if name == "kept" {
            &trails_through
        } else {
            &trails_direct
        };
        client
            .create_trail()
            .name(name)
            .s3_bucket_name("cached")
            .send()
            .await
            .unwrap();
        assert_eq!(
            names().await,
            ["kept"],
            "a trail created behind trailsim is not seen"
        );
    }
    trails_through
        .start_logging()
        .name("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(names().await, ["kept", "second"]);

    stop(&mut trailsim);
}
