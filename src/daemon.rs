//! `trailwarden run`: wires the pollers to the scheduler and the HTTP server, handles
//! SIGHUP (reload) and SIGTERM/SIGINT (graceful stop).

use crate::collect::aws::Aws;
use crate::config::Config;
use crate::publish::http::{self, Published};
use crate::publish::metrics::Metrics;
use crate::publish::status::StatusDocument;
use crate::state::{StateStore, Store};
use crate::watch::{Setup, Watch};
use chrono::Utc;
use parking_lot::RwLock;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tokio_cron_scheduler::{Job, JobScheduler};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("scheduler: {0}")]
    Scheduler(#[from] tokio_cron_scheduler::JobSchedulerError),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

pub async fn run(config: Config) -> Result<(), DaemonError> {
    let started_at = Utc::now();
    let metrics = Metrics::new();
    metrics.set_families(&config.daemon.metrics);
    metrics.config_reload_success.set(1);
    metrics.config_reload_timestamp.set(started_at.timestamp());
    metrics.publish_shard(config.shard);
    let aws = Aws::connect(&config.daemon.aws, metrics.aws_api_calls.clone()).await;
    let store = Store::new(StateStore::open(&config.daemon.state_dir)?);
    let setup = Setup {
        aws,
        accounts: config.daemon.accounts.clone(),
        regions: config.daemon.aws.regions.clone(),
        policies: config.policies.clone(),
        detections: config.detections.clone(),
        event_history: config.daemon.event_history.clone(),
        bucket: config.daemon.bucket.clone(),
        body_timeout: config.daemon.aws.operation_timeout.0,
        store,
        shard: config.shard,
        aws_config: config.daemon.aws_config.clone(),
        remediation: config.daemon.remediation.clone(),
        security_hub: config.daemon.security_hub.clone(),
        writer: config.daemon.writer,
    };
    let published = Arc::new(Published {
        metrics,
        status: RwLock::new(StatusDocument::new(started_at)),
        ready: AtomicBool::new(false),
        heartbeat: AtomicI64::new(started_at.timestamp()),
        progress: std::sync::OnceLock::new(),
        stall_after: config.daemon.health.stall_after.0.as_secs() as i64,
    });
    let watch = Arc::new(Watch::new(setup, published.clone()));
    let _ = published.progress.set(watch.progress());
    // What a crash left unpublished goes out first, and /status lists what the store holds.
    watch.publish_left_over().await;
    watch.report_sigma(&config.detections.sigma);

    let addr = config.daemon.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!(
        listen = %local,
        config = %config.path.display(),
        state = %config.daemon.state_dir.display(),
        regions = ?config.daemon.aws.regions,
        policies = config.policies.policies.len(),
        detections = config.detections.detections().len(),
        shard = config.shard.ordinal,
        total_shards = config.shard.total,
        "trailwarden {} started",
        env!("CARGO_PKG_VERSION")
    );

    let scheduler = JobScheduler::new().await?;
    {
        let trails = poll_job(&config.daemon.schedule.trails.0, &watch, |w| async move {
            w.poll_trails().await
        })?;
        scheduler.add(trails).await?;
        let posture = poll_job(&config.daemon.schedule.posture.0, &watch, |w| async move {
            w.poll_posture().await
        })?;
        scheduler.add(posture).await?;
        let events = poll_job(&config.daemon.schedule.events.0, &watch, |w| async move {
            w.poll_events().await
        })?;
        scheduler.add(events).await?;
        let bucket = poll_job(&config.daemon.schedule.bucket.0, &watch, |w| async move {
            w.poll_bucket().await
        })?;
        scheduler.add(bucket).await?;
        if (config.daemon.bucket.queues.iter()).any(|q| config.shard.owns_bucket(&q.bucket)) {
            let notifications = poll_job(
                &config.daemon.schedule.notifications.0,
                &watch,
                |w| async move { w.poll_notifications().await },
            )?;
            scheduler.add(notifications).await?;
        }
        if config.daemon.security_hub.is_some() {
            let hub = poll_job(
                &config.daemon.schedule.security_hub.0,
                &watch,
                |w| async move { w.poll_security_hub().await },
            )?;
            scheduler.add(hub).await?;
        }
        if config.daemon.aws_config.is_some() {
            let aws_config = poll_job(
                &config.daemon.schedule.aws_config.0,
                &watch,
                |w| async move { w.poll_aws_config().await },
            )?;
            scheduler.add(aws_config).await?;
        }
        if let Some(org) = config
            .daemon
            .accounts
            .as_ref()
            .and_then(|a| a.organization.as_ref())
        {
            let accounts = poll_job(&org.refresh.0, &watch, |w| async move {
                w.poll_accounts().await;
            })?;
            scheduler.add(accounts).await?;
        }
        let p = published.clone();
        scheduler
            .add(Job::new("*/5 * * * * *", move |_, _| {
                p.heartbeat.store(Utc::now().timestamp(), Ordering::Relaxed);
            })?)
            .await?;
    }
    scheduler.start().await?;

    // One run right at start, without waiting for the first tick. Readiness follows the
    // first publication, whichever run makes it.
    {
        let w = watch.clone();
        tokio::spawn(async move {
            // Who is watched first (a list is read once); the first trail poll runs the
            // first posture poll too.
            if !w.poll_accounts().await {
                w.poll_trails().await;
            }
            w.poll_events().await;
            w.poll_bucket().await;
            w.poll_notifications().await;
        });
    }
    tokio::spawn(reload_on_sighup(
        config.path.clone(),
        config,
        watch.clone(),
        published.clone(),
    ));

    let served = axum::serve(listener, http::router(published))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    let mut scheduler = scheduler;
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "scheduler did not stop cleanly");
    }
    tracing::info!("stopped");
    served.map_err(DaemonError::Serve)
}

/// A scheduler job that runs `poll` on the shared watch at every tick of `cron`.
fn poll_job<F, Fut>(cron: &str, watch: &Arc<Watch>, poll: F) -> Result<Job, DaemonError>
where
    F: Fn(Arc<Watch>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let watch = watch.clone();
    Ok(Job::new_async(cron, move |_, _| {
        Box::pin(poll(watch.clone()))
    })?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// SIGHUP re-reads the configuration. Policies take effect at once; a bad file keeps the old
/// configuration running, and says so in the log and in
/// `trailwarden_config_last_reload_successful`. The accounts to watch and their role are
/// rediscovered at once. Listen address, regions, endpoint, schedules and the shard need a
/// restart.
async fn reload_on_sighup(
    path: PathBuf,
    mut current: Config,
    watch: Arc<Watch>,
    published: Arc<Published>,
) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let m = &published.metrics;
            match Config::load(&path) {
                Ok(new) => {
                    let d = (&current.daemon, &new.daemon);
                    if d.0.listen != d.1.listen
                        || d.0.aws.regions != d.1.aws.regions
                        || d.0.aws.endpoint_url != d.1.aws.endpoint_url
                        || d.0.schedule.trails != d.1.schedule.trails
                        || d.0.schedule.posture != d.1.schedule.posture
                        || d.0.schedule.events != d.1.schedule.events
                        || d.0.schedule.bucket != d.1.schedule.bucket
                        || d.0.schedule.notifications != d.1.schedule.notifications
                        || d.0.bucket.queues != d.1.bucket.queues
                        || d.0.state_dir != d.1.state_dir
                        || d.0.shard != d.1.shard
                    {
                        tracing::warn!(
                            "reload: listen, state_dir, regions, endpoint, schedules, bucket queues and shard change only on restart"
                        );
                    }
                    if d.0.accounts != d.1.accounts
                        && !watch.set_accounts(d.1.accounts.as_ref()).await
                    {
                        tracing::warn!(
                            "reload: an accounts section added or removed, or its organization.refresh schedule, changes only on restart"
                        );
                    }
                    m.set_families(&new.daemon.metrics);
                    watch.set_detections(new.detections.clone());
                    watch.set_policies(new.policies.clone()).await;
                    m.config_reload_success.set(1);
                    m.config_reload_timestamp.set(Utc::now().timestamp());
                    tracing::info!(
                        policies = new.policies.policies.len(),
                        "configuration reloaded"
                    );
                    current = new;
                }
                Err(errors) => {
                    m.config_reload_success.set(0);
                    for e in &errors {
                        tracing::error!("reload rejected, keeping the running configuration: {e}");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, current, watch, published);
}
