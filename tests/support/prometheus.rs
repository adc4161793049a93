//! A real Prometheus (Debian's `prometheus` package) for tests: started on a free port with a
//! temporary configuration and storage, stopped when dropped; `promtool`; and the metric
//! names that the alert rules and dashboards use and a scrape offers.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `name` on PATH. Missing is a failure, not a skip: CI installs it.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH: apt-get install prometheus \
                 (Debian's package provides prometheus and promtool)"
            )
        })
}

/// `promtool check metrics` on a text exposition: it must pass without a single remark.
pub fn check_metrics(exposition: &str) {
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let remarks = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && remarks.trim().is_empty(),
        "promtool check metrics ({}):\n{remarks}\non:\n{exposition}",
        out.status
    );
}

/// Every `trailwarden_*` name in a text.
pub fn metric_names(text: &str) -> BTreeSet<String> {
    regex::Regex::new(r"\btrailwarden_[a-zA-Z0-9_]+")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The names of a scrape: `(sample names, family names from # TYPE)`. A histogram's samples
/// are its `_bucket`, `_sum` and `_count` series; its family name is not queryable.
pub fn scrape_names(exposition: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (samples, families)
}

/// A Prometheus server scraping `targets` (job `trailwarden`) every second, evaluating
/// `rule_files` every second.
pub struct Prometheus {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(targets: &[&str], rule_files: &[&Path]) -> Prometheus {
        let bin = tool("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let quoted = |items: Vec<String>| {
            items
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [{}]\n\
                 scrape_configs:\n  - job_name: trailwarden\n    static_configs:\n      - targets: [{}]\n",
                quoted(
                    rule_files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect()
                ),
                quoted(targets.iter().map(|t| t.to_string()).collect()),
            ),
        )
        .unwrap();
        let port = super::free_port();
        let log = dir.path().join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Prometheus {
            child,
            base: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        prometheus.wait_until("Prometheus ready", Duration::from_secs(60), |p| {
            p.get("/-/ready").is_some_and(|(code, _)| code == 200)
        });
        prometheus
    }

    /// One GET over HTTP/1.0 (so the answer is never chunked): `(status, body)`.
    pub fn get(&self, path_and_query: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(&self.base).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path_and_query} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.base
        )
        .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    /// `data` of an API answer; panics unless Prometheus says success.
    pub fn api(&self, path_and_query: &str) -> Value {
        let (code, body) = self
            .get(path_and_query)
            .unwrap_or_else(|| panic!("Prometheus does not answer {path_and_query}"));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path_and_query}: {code} {e}: {body}"));
        assert_eq!(v["status"], "success", "{path_and_query}: {body}");
        v["data"].clone()
    }

    /// An instant query's result vector.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api(&format!(
            "/api/v1/query?query={}",
            urlencoding::encode(promql)
        ));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Active alerts (pending and firing).
    pub fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Active alerts named `name` whose labels include `labels`.
    pub fn alerts_named(&self, name: &str, labels: &[(&str, &str)]) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| {
                a["labels"]["alertname"] == name
                    && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
            })
            .collect()
    }

    /// Every loaded rule, as `/api/v1/rules` lists it.
    pub fn rules(&self) -> Vec<Value> {
        self.api("/api/v1/rules")["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Polls `ready` every 500 ms until it holds; panics with Prometheus' log after `bound`.
    pub fn wait_until(
        &mut self,
        what: &str,
        bound: Duration,
        mut ready: impl FnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + bound;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            if ready(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {bound:?}. Active alerts: {:#?}\nPrometheus log:\n{}",
                self.alerts(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
