//! The Prometheus registry: every metric family is declared and registered here, in one place.
//!
//! Labels never carry ARNs or other unbounded identifiers: per-resource detail is in
//! `/status`. Series that disappear (a deleted trail) are removed, not left at stale values.

use crate::collect::TrailsResult;
use crate::evaluate::{Finding, Status};
use parking_lot::Mutex;
use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::{BTreeMap, BTreeSet};

pub struct Metrics {
    pub registry: Registry,
    pub trail_logging: IntGaugeVec,
    pub policy_status: IntGaugeVec,
    pub poll_success: IntGaugeVec,
    pub last_poll_success: GaugeVec,
    pub poll_duration: HistogramVec,
    pub poll_errors: IntCounterVec,
    pub poll_skipped: IntCounterVec,
    pub aws_api_calls: IntCounterVec,
    pub trails: IntGauge,
    pub config_reload_success: IntGauge,
    pub config_reload_timestamp: IntGauge,
    pub tamper_events: IntCounterVec,
    pub last_tamper_event: GaugeVec,
    pub events_processed: IntCounterVec,
    pub events_duplicate: IntCounterVec,
    pub events_unparseable: IntCounterVec,
    pub event_checkpoint: GaugeVec,
    pub latest_log: GaugeVec,
    pub oldest_log: GaugeVec,
    pub coverage_gap: GaugeVec,
    pub digest_failures: IntCounterVec,
    pub logs_validated: IntCounterVec,
    pub log_records: IntCounterVec,
    pub log_records_unparseable: prometheus::IntCounter,
    pub poll_panics: IntCounterVec,
    pub object_read_failures: IntCounterVec,
    pub unread_objects: IntGaugeVec,
    pub sigma_rules: IntGaugeVec,
    pub log_files_missed: IntCounterVec,
    pub event_claims: IntCounterVec,
    pub account_up: IntGaugeVec,
    pub account_info: IntGaugeVec,
    pub accounts: IntGaugeVec,
    pub shard_ordinal: IntGauge,
    pub total_shards: IntGauge,
    pub queue_messages: IntCounterVec,
    pub log_files_announced: prometheus::IntCounter,
    pub log_files_found_by_listing: prometheus::IntCounter,
    pub config_evaluations: IntCounterVec,
    pub config_rule_disagreements: IntGaugeVec,
    pub remediations: IntCounterVec,
    pub security_hub_imports: IntCounterVec,
    /// Which families `/metrics` serves (`metrics.allow`, `metrics.deny`).
    families: parking_lot::RwLock<FamilyFilter>,
    /// Label sets published last time, by family, to remove the ones that vanish.
    published: Mutex<BTreeMap<&'static str, BTreeSet<Vec<String>>>>,
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::IntCounter {
    let c = prometheus::IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build = gauge_vec(
            &r,
            "trailwarden_build_info",
            "Always 1; the version label says which trailwarden is running.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let last_poll_success = GaugeVec::new(
            Opts::new(
                "trailwarden_last_poll_success_timestamp_seconds",
                "Unix time of the poller's last run without any failed AWS call.",
            ),
            &["poller"],
        )
        .expect("valid metric");
        r.register(Box::new(last_poll_success.clone()))
            .expect("unique metric");
        let poll_duration = HistogramVec::new(
            HistogramOpts::new(
                "trailwarden_poll_duration_seconds",
                "How long one run of a poller took, AWS calls and evaluation included.",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            &["poller"],
        )
        .expect("valid metric");
        r.register(Box::new(poll_duration.clone()))
            .expect("unique metric");
        let float_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let last_tamper_event = float_gauge(
            "trailwarden_last_tamper_event_timestamp_seconds",
            "Unix time (eventTime) of the newest event that matched the detection.",
            &["detection"],
        );
        let event_checkpoint = float_gauge(
            "trailwarden_event_history_checkpoint_timestamp_seconds",
            "Unix time up to which event history has been read completely, per region (in every watched account).",
            &["region"],
        );
        let latest_log = float_gauge(
            "trailwarden_trail_latest_log_timestamp_seconds",
            "Unix time of the newest log file in the trail's bucket, per account folder and delivering region.",
            &["account", "region", "trail"],
        );
        let oldest_log = float_gauge(
            "trailwarden_trail_oldest_log_timestamp_seconds",
            "Unix time of the oldest log file in the trail's bucket, per account folder and delivering region.",
            &["account", "region", "trail"],
        );
        let coverage_gap = float_gauge(
            "trailwarden_log_coverage_gap_seconds",
            "Longest stretch without log files within the coverage policy's window (missing head included); 0 when continuous.",
            &["account", "region", "trail"],
        );
        let log_records_unparseable = prometheus::IntCounter::new(
            "trailwarden_log_records_unparseable_total",
            "Records (or whole log files) in the bucket that could not be read; each is logged with its object.",
        )
        .expect("valid metric");
        r.register(Box::new(log_records_unparseable.clone()))
            .expect("unique metric");
        Metrics {
            poll_panics: counter_vec(
                &r,
                "trailwarden_poll_panics_total",
                "Poller runs that panicked (a bug): the run counts as failed, the daemon goes on.",
                &["poller"],
            ),
            object_read_failures: counter_vec(
                &r,
                "trailwarden_object_read_failures_total",
                "Reads of bucket objects that failed, by kind (log: its records; digest: its chain) and class of reason; each is retried with backoff.",
                &["kind", "reason"],
            ),
            sigma_rules: gauge_vec(
                &r,
                "trailwarden_sigma_rules",
                "Sigma rules from the configured files: loaded, or failed to load (the file and reason are in the log and /status.sigma).",
                &["state"],
            ),
            unread_objects: gauge_vec(
                &r,
                "trailwarden_unread_objects",
                "Bucket objects whose read failed and that wait for a retry, by kind (log, digest); the policies that need them say error meanwhile.",
                &["kind"],
            ),
            log_files_missed: counter_vec(
                &r,
                "trailwarden_log_files_missed_total",
                "Log files not read because they were delivered before bucket.read_window while the daemon was away (event history still has their events).",
                &["account", "region"],
            ),
            event_claims: counter_vec(
                &r,
                "trailwarden_event_claims_total",
                "Events claimed (processed once) by the source that saw them first: event_history or bucket.",
                &["source"],
            ),
            latest_log,
            oldest_log,
            coverage_gap,
            log_records_unparseable,
            digest_failures: counter_vec(
                &r,
                "trailwarden_digest_validation_failures_total",
                "Digest validation failures found, each counted once, by kind (missing_digest, invalid_signature, invalid_format, broken_link, missing_log, modified_log, unlisted_log, unexplained_restart, unverifiable).",
                &["account", "region", "trail", "kind"],
            ),
            logs_validated: counter_vec(
                &r,
                "trailwarden_log_files_validated_total",
                "Log files whose SHA-256 matched their digest.",
                &["account", "region", "trail"],
            ),
            log_records: counter_vec(
                &r,
                "trailwarden_log_records_processed_total",
                "Records read from log files in the trails' buckets (each file read once), by account folder and delivering region.",
                &["account", "region"],
            ),
            tamper_events: counter_vec(
                &r,
                "trailwarden_tamper_events_total",
                "CloudTrail events that matched a detection, by detection, event, outcome (success or failure), account and region.",
                &["detection", "event_name", "outcome", "account", "region"],
            ),
            last_tamper_event,
            events_processed: counter_vec(
                &r,
                "trailwarden_events_processed_total",
                "Event history records processed (each once), per region.",
                &["region"],
            ),
            events_duplicate: counter_vec(
                &r,
                "trailwarden_events_duplicates_total",
                "Event history records dropped because an earlier poll processed them (the look-back overlap).",
                &["region"],
            ),
            events_unparseable: counter_vec(
                &r,
                "trailwarden_events_unparseable_total",
                "Event history records that could not be read; each is logged with its event id.",
                &["region"],
            ),
            event_checkpoint,
            trail_logging: gauge_vec(
                &r,
                "trailwarden_trail_logging",
                "1 if the trail is logging, 0 if it is stopped (GetTrailStatus IsLogging).",
                &["account", "region", "trail"],
            ),
            policy_status: gauge_vec(
                &r,
                "trailwarden_policy_status",
                "Policy evaluation per resource: one series per status (pass, fail, error), 1 on the current one.",
                &[
                    "policy", "severity", "account", "region", "resource", "status",
                ],
            ),
            poll_success: gauge_vec(
                &r,
                "trailwarden_poll_success",
                "1 if the poller's last run made every AWS call it needed, else 0.",
                &["poller"],
            ),
            last_poll_success,
            poll_duration,
            poll_errors: counter_vec(
                &r,
                "trailwarden_poll_errors_total",
                "Failed AWS calls (after retries) seen by a poller, by class of reason.",
                &["poller", "reason"],
            ),
            poll_skipped: counter_vec(
                &r,
                "trailwarden_poll_skipped_total",
                "Scheduled runs skipped because the previous run of the same poller was still going.",
                &["poller"],
            ),
            aws_api_calls: counter_vec(
                &r,
                "trailwarden_aws_api_calls_total",
                "AWS API requests, every attempt counted, by service, operation and outcome.",
                &["service", "operation", "outcome"],
            ),
            trails: gauge(
                &r,
                "trailwarden_trails",
                "Number of distinct trails seen in the monitored regions.",
            ),
            config_reload_success: gauge(
                &r,
                "trailwarden_config_last_reload_successful",
                "1 if the last configuration (re)load succeeded, 0 if it failed and the previous one is still in use.",
            ),
            config_reload_timestamp: gauge(
                &r,
                "trailwarden_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load.",
            ),
            account_up: gauge_vec(
                &r,
                "trailwarden_account_up",
                "1 if the last trail poll reached the watched account (role assumed, trails listed), else 0; the reason is in /status.",
                &["account"],
            ),
            account_info: gauge_vec(
                &r,
                "trailwarden_account_info",
                "1 per watched account, with its name and organizational unit path (join on account).",
                &["account", "name", "ou_path"],
            ),
            accounts: gauge_vec(
                &r,
                "trailwarden_accounts",
                "Accounts by state: watched (by this shard), other_shards (in scope, watched by another shard), retired (suspended, closed or gone; kept in /status for 90 days).",
                &["state"],
            ),
            queue_messages: counter_vec(
                &r,
                "trailwarden_queue_messages_total",
                "Messages received from the bucket.queues: deleted (handled), kept (an object could not be read or stored: handed out again), unreadable (not an S3 event notification: left for the dead-letter queue).",
                &["outcome"],
            ),
            log_files_announced: counter(
                &r,
                "trailwarden_log_files_announced_total",
                "Log files read because a bucket notification announced them, before any listing.",
            ),
            log_files_found_by_listing: counter(
                &r,
                "trailwarden_log_files_found_by_listing_total",
                "Log files the listing found that the notification queues had not announced a minute after they were written (with bucket.queues only): notifications are being lost.",
            ),
            config_evaluations: counter_vec(
                &r,
                "trailwarden_config_evaluations_total",
                "Evaluations AWS Config accepted for the conformance pack's process checks (aws_config.conformance_pack), by compliance: a verdict sent when it changes and at each refresh, never for error or pending.",
                &["compliance"],
            ),
            config_rule_disagreements: gauge_vec(
                &r,
                "trailwarden_config_rule_disagreements",
                "With aws_config.cross_check: accounts where AWS Config's managed CloudTrail rule (its default name) disagrees with trailwarden's verdict at the last cross-check (details in /status.aws_config.cross_check).",
                &["rule"],
            ),
            remediations: counter_vec(
                &r,
                "trailwarden_remediations_total",
                "Remediation decisions, each counted once until it changes: done and failed (actions taken), dry_run (reported only), allowed_principal, waiting_for_event, cooling_down, rate_limited, not_writer (left alone, and why).",
                &["action", "outcome"],
            ),
            security_hub_imports: counter_vec(
                &r,
                "trailwarden_security_hub_imports_total",
                "Findings Security Hub accepted (security_hub section), by compliance: imported when the verdict changes and at each refresh, never for error or pending.",
                &["compliance"],
            ),
            shard_ordinal: gauge(
                &r,
                "trailwarden_shard_ordinal",
                "This replica's shard, 0 to trailwarden_total_shards - 1 (two replicas of one shard both say it).",
            ),
            total_shards: gauge(
                &r,
                "trailwarden_total_shards",
                "How many shards split the accounts, as this replica was told; every replica should say the same.",
            ),
            registry: r,
            families: parking_lot::RwLock::new(FamilyFilter::default()),
            published: Mutex::new(BTreeMap::new()),
        }
        .with_zero_series()
    }

    /// Counters of known label sets start at 0, so `increase()` sees their first event.
    fn with_zero_series(self) -> Metrics {
        for kind in ["log", "digest"] {
            for reason in crate::collect::aws::REASON_CLASSES {
                self.object_read_failures.with_label_values(&[kind, reason]);
            }
            self.unread_objects.with_label_values(&[kind]);
        }
        for source in ["event_history", "bucket"] {
            self.event_claims.with_label_values(&[source]);
        }
        self.total_shards.set(1);
        for outcome in ["deleted", "kept", "unreadable"] {
            self.queue_messages.with_label_values(&[outcome]);
        }
        self
    }

    /// Sets `trailwarden_trail_logging` from the latest trail poll. A trail whose status could
    /// not be read has no series (its policies report `error`).
    pub fn publish_trails(&self, result: &TrailsResult) {
        if let Ok(states) = &result.trails {
            self.trails.set(states.len() as i64);
            self.publish_trail_logging(states.iter().map(|s| (s.trail.account.as_str(), s)));
        } else {
            self.publish_trail_logging(std::iter::empty());
        }
    }

    /// `trailwarden_trail_logging` for each (account, trail) given: with many accounts, the
    /// account that sees the trail, so an organization trail has a series in every member.
    pub fn publish_trail_logging<'a>(
        &self,
        states: impl Iterator<Item = (&'a str, &'a crate::posture::TrailState)>,
    ) {
        let mut current = Vec::new();
        for (account, s) in states {
            if let Ok(status) = &s.status {
                let t = &s.trail;
                current.push((
                    vec![account.to_string(), t.home_region.clone(), t.name.clone()],
                    f64::from(u8::from(status.is_logging)),
                ));
            }
        }
        self.replace("trail_logging", &self.trail_logging, current, |g, v| {
            g.set(v as i64)
        });
    }

    /// Sets `trailwarden_policy_status`: three series per finding, 1 on its status.
    pub fn publish_findings(&self, findings: &[Finding]) {
        let mut current = Vec::new();
        for f in findings {
            for status in Status::ALL {
                current.push((
                    vec![
                        f.policy.clone(),
                        f.severity.as_str().to_string(),
                        f.account.clone(),
                        f.region.clone(),
                        f.resource_name.clone(),
                        status.as_str().to_string(),
                    ],
                    f64::from(u8::from(f.status == status)),
                ));
            }
        }
        self.replace("policy_status", &self.policy_status, current, |g, v| {
            g.set(v as i64)
        });
    }

    /// Sets the series of `family` to `current`, removing the ones published before but not
    /// now: a trail that vanished, a region whose read failed.
    pub fn replace<B: MetricVecBuilder>(
        &self,
        family: &'static str,
        vec: &MetricVec<B>,
        current: Vec<(Vec<String>, f64)>,
        set: impl Fn(&B::M, f64),
    ) {
        let mut published = self.published.lock();
        let previous = published.entry(family).or_default();
        let now: BTreeSet<Vec<String>> = current.iter().map(|(l, _)| l.clone()).collect();
        for gone in previous.difference(&now) {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = vec.remove_label_values(&labels);
        }
        for (labels, value) in current {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            set(&vec.with_label_values(&labels), value);
        }
        *previous = now;
    }

    /// Removes every series of `vec` whose labels start with `prefix` (a trail that vanished:
    /// its counters go too).
    pub fn forget<B: MetricVecBuilder>(
        &self,
        family: &'static str,
        vec: &MetricVec<B>,
        keep: &dyn Fn(&[String]) -> bool,
    ) {
        let mut published = self.published.lock();
        let Some(known) = published.get_mut(family) else {
            return;
        };
        known.retain(|labels| {
            if keep(labels) {
                return true;
            }
            let l: Vec<&str> = labels.iter().map(String::as_str).collect();
            let _ = vec.remove_label_values(&l);
            false
        });
    }

    /// Remembers that a series of `family` exists (for [`Metrics::forget`]).
    pub fn note(&self, family: &'static str, labels: &[&str]) {
        self.published
            .lock()
            .entry(family)
            .or_default()
            .insert(labels.iter().map(|s| s.to_string()).collect());
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let mut families = self.registry.gather();
        {
            let filter = self.families.read();
            families.retain(|f| filter.serves(f.name()));
        }
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail for valid metrics");
        String::from_utf8(out).expect("exposition is UTF-8")
    }
}

impl Metrics {
    /// Serves only the families `settings` allows (at start and on reload).
    pub fn set_families(&self, settings: &crate::config::MetricsSettings) {
        *self.families.write() = FamilyFilter::new(settings);
    }
}

/// Allow and deny lists of family names, each pattern matched against the whole name.
#[derive(Default)]
pub struct FamilyFilter {
    allow: Vec<regex::Regex>,
    deny: Vec<regex::Regex>,
}

impl FamilyFilter {
    pub fn new(settings: &crate::config::MetricsSettings) -> FamilyFilter {
        // Anchored, so `trailwarden_trail_.*` means a whole name, as in kube-state-metrics.
        let whole = |p: &crate::config::yaml::Pattern| {
            regex::Regex::new(&format!("^(?:{})$", p.0.as_str())).expect("checked at load")
        };
        FamilyFilter {
            allow: settings.allow.iter().map(whole).collect(),
            deny: settings.deny.iter().map(whole).collect(),
        }
    }

    pub fn serves(&self, family: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|r| r.is_match(family)))
            && !self.deny.iter().any(|r| r.is_match(family))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn allow_and_deny_lists_match_whole_family_names() {
        let settings: crate::config::MetricsSettings = crate::config::yaml::parse_str(
            std::path::Path::new("m.yaml"),
            "allow: ['trailwarden_trail_.*', 'trailwarden_policy_status', 'trailwarden_digest.*']\ndeny: ['.*_failures_total']\n",
        )
        .unwrap();
        let filter = FamilyFilter::new(&settings);
        for (family, served) in [
            ("trailwarden_trail_logging", true),
            ("trailwarden_policy_status", true),
            // Anchored: a prefix of an allowed name is not enough.
            ("trailwarden_policy_status_extra", false),
            ("xtrailwarden_trail_logging", false),
            ("trailwarden_digest_validation_failures_total", false),
            ("trailwarden_accounts", false),
        ] {
            assert_eq!(filter.serves(family), served, "{family}");
        }
        let everything = FamilyFilter::default();
        assert!(everything.serves("trailwarden_accounts"));
        let metrics = Metrics::new();
        metrics
            .trail_logging
            .with_label_values(&["1", "us-east-1", "t"])
            .set(1);
        assert!(
            metrics
                .render()
                .contains("trailwarden_object_read_failures_total")
        );
        metrics.set_families(&settings);
        let text = metrics.render();
        assert!(text.contains("trailwarden_trail_logging{"), "{text}");
        assert!(
            !text.contains("trailwarden_object_read_failures_total"),
            "{text}"
        );
    }

    use super::*;
    use crate::config::Severity;

    fn finding(resource: &str, status: Status) -> Finding {
        Finding {
            policy: "retention".into(),
            severity: Severity::High,
            status,
            account: "111122223333".into(),
            region: "us-east-1".into(),
            resource: format!("arn:aws:cloudtrail:us-east-1:111122223333:trail/{resource}"),
            resource_name: resource.into(),
            message: String::new(),
        }
    }

    #[test]
    fn one_series_per_status_and_stale_ones_removed() {
        let m = Metrics::new();
        m.publish_findings(&[finding("a", Status::Fail), finding("b", Status::Pass)]);
        let text = m.render();
        assert!(text.contains(
            r#"trailwarden_policy_status{account="111122223333",policy="retention",region="us-east-1",resource="a",severity="high",status="fail"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"trailwarden_policy_status{account="111122223333",policy="retention",region="us-east-1",resource="a",severity="high",status="pass"} 0"#
        ));
        m.publish_findings(&[finding("b", Status::Pass)]);
        let text = m.render();
        assert!(!text.contains(r#"resource="a""#), "trail a is gone: {text}");
        assert!(text.contains(r#"resource="b""#));
        assert!(!text.contains("arn:aws"), "no ARNs in labels");
    }

    #[test]
    fn build_info_is_exported() {
        let text = Metrics::new().render();
        assert!(text.contains(&format!(
            "trailwarden_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }
}
