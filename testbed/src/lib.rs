//! The integration test bed shared by the workspace's test binaries: a real moto server,
//! installed on first use into a virtual environment under `target/` (pinned version, under a
//! file lock) and started once per test binary with `TZ=UTC`; unique account ids; small HTTP
//! and Prometheus-text helpers. Nothing here mocks AWS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The workspace root (where `target/` lives).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testbed sits in the workspace root")
        .to_path_buf()
}

/// The moto release the test bed is pinned to (see ../shared/specs/moto-notes.md).
pub const MOTO_VERSION: &str = "5.2.5";

/// `target/pyenv`: a virtual environment with the pinned moto, created when missing.
/// Test binaries may run at once (nextest): a file lock makes one of them install.
pub fn python_env() -> PathBuf {
    let target = workspace_dir().join("target");
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
