//! One runner for every poller (node_exporter's pattern): a run never overlaps another of the
//! same poller, a panic inside it is caught and counted as a failed run, and each run's
//! duration, success and errors go to the metrics and `/status` the same way.

use super::Watch;
use crate::collect::aws::reason_class;
use crate::posture::Unavailable;
use crate::publish::health::Progress;
use crate::publish::status::PollerEntry;
use chrono::Utc;
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

pub struct Poller {
    pub name: &'static str,
    running: tokio::sync::Mutex<()>,
    pub progress: Arc<Progress>,
    entry: parking_lot::Mutex<PollerEntry>,
}

impl Poller {
    pub fn new(name: &'static str) -> Poller {
        Poller {
            name,
            running: tokio::sync::Mutex::new(()),
            progress: Arc::new(Progress::new(name)),
            entry: parking_lot::Mutex::new(PollerEntry::new(name)),
        }
    }

    /// A sign of progress inside a run (a page listed, an object read).
    pub fn tick(&self) {
        self.progress.tick(Utc::now().timestamp());
    }

    pub fn entry(&self) -> PollerEntry {
        self.entry.lock().clone()
    }
}

/// What a run does when the previous run of the same poller is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// A scheduled tick: skip it, and count the skip.
    Skip,
    /// A run asked for after a change (a tamper event): wait, since the run going on may
    /// have started before the change.
    Wait,
}

impl Watch {
    /// Runs `run` as one run of `poller`. It returns the AWS failures it met (none: a
    /// successful run).
    pub(super) async fn execute<F>(&self, poller: &Poller, overlap: Overlap, run: F)
    where
        F: Future<Output = Vec<Unavailable>>,
    {
        let _running = match overlap {
            Overlap::Skip => match poller.running.try_lock() {
                Ok(guard) => guard,
                Err(_) => {
                    tracing::warn!(
                        poller = poller.name,
                        "previous run still going; skipping this tick"
                    );
                    self.published
                        .metrics
                        .poll_skipped
                        .with_label_values(&[poller.name])
                        .inc();
                    return;
                }
            },
            Overlap::Wait => poller.running.lock().await,
        };
        let started = Instant::now();
        poller.progress.started(Utc::now().timestamp());
        let errors = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(errors) => errors,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(poller = poller.name, panic = %message, "poll panicked; counted as failed");
                self.published
                    .metrics
                    .poll_panics
                    .with_label_values(&[poller.name])
                    .inc();
                vec![Unavailable::api_failure(format!(
                    "poll panicked: {message}"
                ))]
            }
        };
        poller.progress.finished(Utc::now().timestamp());
        self.record_run(poller, started, errors);
    }

    fn record_run(&self, poller: &Poller, started: Instant, errors: Vec<Unavailable>) {
        let m = &self.published.metrics;
        let name = poller.name;
        let seconds = started.elapsed().as_secs_f64();
        let now = Utc::now();
        m.poll_duration.with_label_values(&[name]).observe(seconds);
        for e in &errors {
            m.poll_errors
                .with_label_values(&[name, reason_class(&e.reason)])
                .inc();
            tracing::warn!(poller = name, reason = %e.reason, "AWS call failed");
        }
        m.poll_success
            .with_label_values(&[name])
            .set(i64::from(errors.is_empty()));
        if errors.is_empty() {
            m.last_poll_success
                .with_label_values(&[name])
                .set(now.timestamp() as f64);
        }
        {
            let mut entry = poller.entry.lock();
            entry.last_run = Some(now);
            entry.last_duration_seconds = Some(seconds);
            match errors.first() {
                None => entry.last_success = Some(now),
                Some(e) => {
                    entry.last_error = Some(e.reason.clone());
                    entry.last_error_time = Some(now);
                }
            }
        }
        let entries = self.pollers.iter().map(|p| p.entry()).collect();
        self.published.status.write().pollers = entries;
        tracing::debug!(
            poller = name,
            seconds,
            errors = errors.len(),
            "poll finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::http::Published;
    use crate::publish::metrics::Metrics;
    use crate::publish::status::StatusDocument;
    use crate::state::{StateStore, Store};
    use std::sync::atomic::{AtomicBool, AtomicI64};

    /// A watch on nothing: no AWS call is made by these tests.
    fn offline(dir: &std::path::Path) -> (Watch, Arc<Published>) {
        let metrics = Metrics::new();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let aws = crate::collect::aws::Aws::from_sdk_config(sdk, metrics.aws_api_calls.clone());
        let published = Arc::new(Published {
            metrics,
            status: parking_lot::RwLock::new(StatusDocument::new(Utc::now())),
            ready: AtomicBool::new(false),
            heartbeat: AtomicI64::new(0),
            progress: std::sync::OnceLock::new(),
            stall_after: 600,
        });
        let setup = crate::watch::Setup {
            accounts: None,
            aws,
            regions: vec!["us-east-1".into()],
            policies: crate::config::PolicySet::default(),
            detections: crate::config::DetectionSet::default(),
            event_history: Default::default(),
            bucket: Default::default(),
            body_timeout: std::time::Duration::from_secs(5),
            store: Store::new(StateStore::open(dir).unwrap()),
            shard: crate::plan::shards::Shard::ALONE,
            aws_config: None,
            remediation: None,
            security_hub: None,
            writer: true,
        };
        (Watch::new(setup, published.clone()), published)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panic_fails_its_run_is_counted_and_poisons_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (watch, published) = offline(dir.path());
        let poller = &watch.pollers.bucket;
        // A panic while the store's lock is held, on a blocking thread, and one on the poll's
        // own task while /status is locked for writing.
        watch
            .execute(poller, Overlap::Skip, async {
                watch
                    .store
                    .run(|s| {
                        let _ = s.recent_detections();
                        panic!("inside the store");
                    })
                    .await
            })
            .await;
        watch
            .execute(poller, Overlap::Skip, async {
                let _doc = published.status.write();
                panic!("with /status locked");
            })
            .await;
        let m = published.metrics.render();
        assert!(
            m.contains(r#"trailwarden_poll_panics_total{poller="bucket"} 2"#),
            "{m}"
        );
        assert!(m.contains(r#"trailwarden_poll_success{poller="bucket"} 0"#));
        let entry = poller.entry();
        assert!(
            entry.last_error.unwrap().contains("with /status locked"),
            "the run failed with the panic's message"
        );
        // Nothing is poisoned: /status reads, the store answers, the next run succeeds.
        let _ = published.status.read().clone();
        let stored = watch.store.run(|s| s.recent_detections()).await;
        assert!(stored.is_ok());
        watch
            .execute(poller, Overlap::Skip, async { Vec::new() })
            .await;
        assert!(poller.entry().last_success.is_some());
        assert_eq!(poller.progress.read().0, 0, "not running any more");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_tick_that_finds_the_previous_run_going_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (watch, published) = offline(dir.path());
        let poller = &watch.pollers.events;
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let long = watch.execute(poller, Overlap::Skip, async {
            let _ = wait.await;
            Vec::new()
        });
        let skipped = async {
            tokio::task::yield_now().await;
            watch
                .execute(poller, Overlap::Skip, async { Vec::new() })
                .await;
            let _ = release.send(());
        };
        tokio::join!(long, skipped);
        let m = published.metrics.render();
        assert!(
            m.contains(r#"trailwarden_poll_skipped_total{poller="events"} 1"#),
            "{m}"
        );
    }
}
