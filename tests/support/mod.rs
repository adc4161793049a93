//! The integration test bed: a real moto server (installed by this harness into a virtual
//! environment under `target/` on first use, started once per test binary with `TZ=UTC`),
//! an isolated AWS account per test, and helpers to run the `trailwarden` binary.

#![allow(dead_code)]

pub mod lab;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The moto release the test bed is pinned to (see ../shared/specs/moto-notes.md).
pub const MOTO_VERSION: &str = "5.2.5";

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/pyenv`: a virtual environment with the pinned moto, created when missing.
/// Test binaries may run at once (nextest): a file lock makes one of them install.
pub fn python_env() -> PathBuf {
    let target = manifest_dir().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let venv = target.join("pyenv");
    let marker = venv.join(format!(".moto-{MOTO_VERSION}"));
    let lock = std::fs::File::create(target.join("pyenv.lock")).unwrap();
    lock.lock().expect("lock target/pyenv.lock");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run_or_panic(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (on Debian: apt-get install python3-venv)",
        );
        run_or_panic(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("moto[server]=={MOTO_VERSION}"),
            ]),
            "pip install moto[server]",
        );
        std::fs::write(&marker, "").unwrap();
    }
    drop(lock);
    venv
}

fn run_or_panic(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A moto server for this test binary. It stops when the binary exits: it is started under
/// a shell that kills it once our end of its stdin pipe closes.
pub struct Moto {
    pub endpoint: String,
    _guard: Child,
}

pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start_moto)
}

fn start_moto() -> Moto {
    let venv = python_env();
    let server = venv.join("bin").join("moto_server");
    let script = format!(
        "{} -H 127.0.0.1 -p 0 2>&1 & pid=$!; cat >/dev/null; kill $pid; wait $pid",
        server.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let endpoint = loop {
        assert!(Instant::now() < deadline, "moto did not report its port");
        let line = lines
            .next()
            .expect("moto exited before reporting its port")
            .unwrap();
        if let Some(at) = line.find("http://127.0.0.1:") {
            break line[at..].trim().to_string();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Moto {
        endpoint,
        _guard: child,
    }
}

/// A fresh 12-digit account id, unique within this test binary.
pub fn fresh_account() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let seed = (std::process::id() as u64 % 10_000) * 10_000;
    format!("{:012}", 300_000_000_000u64 + seed * 100 + n)
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
        let log_file = std::fs::File::create(&log).unwrap();
        let child = trailwarden(Some(account))
            .args(["run", "--config"])
            .arg(config)
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

/// A free loopback port (bound, then released for the daemon to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET over a fresh connection.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The value of one series in a text exposition, e.g. `metric_value(text, "trailwarden_trail_logging", &[("trail", "lab")])`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name)
                && l[name.len()..].starts_with(['{', ' '])
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}
