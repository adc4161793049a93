//! What trailwarden's integration tests add to the shared `testbed`: an isolated AWS account
//! per test, and helpers to run the `trailwarden` binary and talk to it.

#![allow(dead_code, unused_imports)]

pub mod demo;
pub mod event_watch;
pub mod lab;
pub mod organization;
pub mod prometheus;
pub mod proof;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use testbed::{free_port, fresh_account, http_get, metric_value, moto, python_env};

/// trailsim in front of this test binary's moto, served in-process on its own runtime (it is
/// a library too), started on first use. LookupEvents' rate limit is on, as in AWS.
pub fn trailsim() -> &'static str {
    trailsim_with(TrailsimSetup::default())
}

/// How a test binary's trailsim runs (one per binary: its faults and clock are global).
#[derive(Clone, Debug, Default)]
pub struct TrailsimSetup {
    /// Log deliveries and digests on trailsim's own timers, as in the demo.
    pub timers: Option<(Duration, Duration)>,
    /// Events show in LookupEvents this late (AWS: minutes).
    pub visibility_delay: Duration,
}

/// The binary's trailsim, started with `setup` on first use: binaries that need timers or a
/// visibility delay call this before anything calls [`trailsim`].
pub fn trailsim_with(setup: TrailsimSetup) -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| start_trailsim(setup))
}

fn start_trailsim(setup: TrailsimSetup) -> String {
    let upstream = moto().endpoint.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let sim = trailsim::server::Sim::new(trailsim::server::Options {
                upstream,
                throttle: true,
                visibility_delay: setup.visibility_delay,
                // Tests write to moto directly too.
                read_cache: false,
                latency: Duration::ZERO,
            });
            if let Some((delivery, digest)) = setup.timers {
                trailsim::timers::spawn(sim.clone(), delivery, digest);
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let app = trailsim::server::router(sim)
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().expect("trailsim started")
}

/// POSTs JSON to trailsim's control API; panics unless it answers 200.
pub fn trailsim_control(path: &str, body: &serde_json::Value) -> serde_json::Value {
    trailsim_request("POST", path, body)
}

/// One request to trailsim's control API; panics unless it answers 200.
pub fn trailsim_request(method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = trailsim().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    // A GET sends no body: a server that answers without reading one resets the connection.
    let text = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{method} {path}: {raw}");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// The trailwarden crate (config/, deploy/, scripts/).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Credentials and endpoint of an isolated moto account (AssumeRole into it).
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl Account {
    /// Environment variables that point the SDK's default credential chain at this account.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_string()),
        ];
        if !self.session_token.is_empty() {
            env.push(("AWS_SESSION_TOKEN", self.session_token.clone()));
        }
        env
    }
}

/// A `trailwarden` command with the account's credentials and nothing from the host's AWS
/// setup.
pub fn trailwarden(account: Option<&Account>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trailwarden"));
    for var in [
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "RUST_LOG",
        "TRAILWARDEN_CONFIG",
        "TRAILWARDEN_SHARD",
        "TRAILWARDEN_TOTAL_SHARDS",
    ] {
        cmd.env_remove(var);
    }
    if let Some(a) = account {
        cmd.envs(a.env());
    } else {
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    }
    cmd
}

/// A running daemon, stopped with SIGTERM when dropped.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `trailwarden run` and waits for it to listen.
    pub fn start(account: &Account, config: &Path, port: u16, log: PathBuf) -> Daemon {
        Daemon::start_with_env(account, config, port, log, &[])
    }

    /// `start` with more environment (`TRAILWARDEN_SHARD`, `HOSTNAME`).
    pub fn start_with_env(
        account: &Account,
        config: &Path,
        port: u16,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> Daemon {
        let log_file = std::fs::File::create(&log).unwrap();
        let child = trailwarden(Some(account))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start trailwarden run");
        let base = format!("127.0.0.1:{port}");
        let mut daemon = Daemon { child, base, log };
        daemon.wait_until("listening", |d| d.get("/healthz").is_some());
        daemon
    }

    /// One HTTP GET: `(status code, body)`, or `None` if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.base, path)
    }

    pub fn metrics(&self) -> String {
        let (code, body) = self.get("/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        body
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").expect("/status answers");
        assert_eq!(code, 200);
        serde_json::from_str(&body).expect("/status is JSON")
    }

    /// Polls `ready` until it holds; panics (with the daemon's log) after a generous bound.
    /// The bound guards against hangs; it is not what the tests measure.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "trailwarden exited ({status}) waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            if ready(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or an OOM kill would: no clean-up at all.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("trailwarden did not stop on SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// IAM action for each API operation (they differ for several S3 calls).
pub fn iam_action(service: &str, operation: &str) -> Option<String> {
    let s3 = match operation {
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "ListObjectsV2" => "ListBucket",
        "ListBuckets" => "ListAllMyBuckets",
        other => other,
    };
    match service {
        // GetCallerIdentity needs no permission.
        "sts" if operation == "GetCallerIdentity" => None,
        "s3" => Some(format!("s3:{s3}")),
        other => Some(format!("{other}:{operation}")),
    }
}

/// The actions an IAM policy file of the repository (`deploy/iam-policy*.json`) grants.
pub fn granted_actions(file: &str) -> std::collections::BTreeSet<String> {
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest_dir().join(file)).unwrap()).unwrap();
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The IAM actions of the AWS calls a daemon's `/metrics` counted.
pub fn called_actions(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("trailwarden_aws_api_calls_total{"))
        .filter_map(|l| {
            let label = |name: &str| {
                let start = l.find(&format!("{name}=\""))? + name.len() + 2;
                Some(l[start..start + l[start..].find('"')?].to_string())
            };
            iam_action(&label("service")?, &label("operation")?)
        })
        .collect()
}
