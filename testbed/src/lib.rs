// Test infrastructure: a failed unwrap here is a failed test, with its message.
#![allow(clippy::unwrap_used)]
//! The integration test bed shared by the workspace's test binaries: a real moto server,
//! installed on first use into a virtual environment under `target/` (pinned version, under a
//! file lock) and started once per test binary with `TZ=UTC`; unique account ids; small HTTP
//! and Prometheus-text helpers. Nothing here mocks AWS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
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
    venv("pyenv", &format!("moto[server]=={MOTO_VERSION}"))
}

/// The AWS CLI v1 release used as an independent client (see `awscli()`).
pub const AWSCLI_VERSION: &str = "1.46.3";

/// `target/awscli/bin/aws`: the pinned AWS CLI v1, in its own virtual environment (its
/// botocore would clash with moto's).
pub fn awscli() -> PathBuf {
    venv("awscli", &format!("awscli=={AWSCLI_VERSION}"))
        .join("bin")
        .join("aws")
}

/// A virtual environment under `target/` with `requirement` installed, made once.
fn venv(name: &str, requirement: &str) -> PathBuf {
    let target = workspace_dir().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let venv = target.join(name);
    // Holds the installed requirement; scripts/demo.sh checks the same file.
    let marker = venv.join(".installed");
    let lock = std::fs::File::create(target.join(format!("{name}.lock"))).unwrap();
    lock.lock().expect("lock the virtual environment");
    let installed = std::fs::read_to_string(&marker).unwrap_or_default();
    if installed.trim() != requirement {
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
                requirement,
            ]),
            &format!("pip install {requirement}"),
        );
        std::fs::write(&marker, requirement).unwrap();
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

/// A server started for this test binary. It stops when the binary exits: it runs under a
/// shell that kills it once our end of its stdin pipe closes.
pub struct Guarded {
    /// The `http://127.0.0.1:PORT` URL it printed.
    pub endpoint: String,
    _guard: Child,
}

/// Starts `program args...` with `env`, waits for it to print an `http://127.0.0.1:PORT` URL
/// (stdout or stderr), and keeps draining its output.
pub fn start_guarded(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Guarded {
    let quoted: Vec<String> = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let script = format!(
        "{} 2>&1 & pid=$!; cat >/dev/null; kill $pid; wait $pid",
        quoted.join(" ")
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let endpoint = loop {
        assert!(
            Instant::now() < deadline,
            "{} did not report its address",
            program.display()
        );
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{} exited before reporting its address", program.display()))
            .unwrap();
        if let Some(at) = line.find("http://127.0.0.1:") {
            let url: String = line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            break url;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Guarded {
        endpoint,
        _guard: child,
    }
}

/// The moto server of this test binary, started on first use with `TZ=UTC`.
pub fn moto() -> &'static Guarded {
    static MOTO: OnceLock<Guarded> = OnceLock::new();
    MOTO.get_or_init(|| {
        let server = python_env().join("bin").join("moto_server");
        start_guarded(&server, &["-H", "127.0.0.1", "-p", "0"], &[("TZ", "UTC")])
    })
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

/// The validator of tests/ocsf/ (`validate.py`): a virtual environment with the `jsonschema`
/// release tests/ocsf/requirements.txt pins. Returns (python, validate.py).
pub fn ocsf_validator() -> (PathBuf, PathBuf) {
    let dir = workspace_dir().join("tests/ocsf");
    let pins = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
    let requirement = pins
        .lines()
        .find(|l| l.starts_with("jsonschema=="))
        .expect("tests/ocsf/requirements.txt pins jsonschema")
        .trim()
        .to_string();
    let venv = venv("ocsf", &requirement);
    (venv.join("bin/python"), dir.join("validate.py"))
}
