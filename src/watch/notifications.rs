//! The notification poller: the queues of `bucket.queues`, fed by the trail buckets' S3 event
//! notifications, read until empty. Each new log file they announce is read at once, with
//! the bucket owner's clients, through the bucket pass's reader and store (so the listing
//! later finds it read, and an event is claimed once whichever source sees it first). A
//! message is deleted only when everything it names is done (`plan::queue`); one that cannot
//! be parsed stays for the queue's dead-letter queue. The listing (`bucket_poller.rs`)
//! remains the safety net, and counts what it finds that no notification announced.

use super::Watch;
use super::bucket::{Folder, Inputs, TrailPass, read_announced};
use crate::collect::accounts::BucketRead;
use crate::collect::{objects, queue};
use crate::integrity::layout::log_root_of;
use crate::plan::queue::{Outcome, may_delete};
use crate::posture::Unavailable;
use crate::s3_event::{CreatedObject, Notification, parse};
use crate::state::StoredDetection;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Receives per queue and run at most: a queue filling faster than this is drained over
/// several runs, and the poller's other queues are not starved.
const MAX_RECEIVES: usize = 100;

impl Watch {
    pub async fn poll_notifications(&self) {
        if self.queues().next().is_none() {
            return;
        }
        self.execute_detecting(&self.pollers.notifications, self.run_notifications())
            .await;
    }

    /// The queues this replica reads: all of them, or over shards those of the buckets its
    /// shard reads (an organization trail is judged on its bucket's shard).
    fn queues(&self) -> impl Iterator<Item = &crate::config::QueueSettings> {
        self.bucket_settings
            .queues
            .iter()
            .filter(|q| self.shard.owns_bucket(&q.bucket))
    }

    /// When every queue was last found empty; `None` without queues, or before each has been.
    pub(super) fn notified_until(&self) -> Option<DateTime<Utc>> {
        let drained = self.queues_drained.lock();
        self.queues()
            .map(|q| drained.get(&q.url.0).copied())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    async fn run_notifications(&self) -> (Vec<Unavailable>, Vec<(StoredDetection, bool)>) {
        let Some(reads) = self.bucket_reads() else {
            tracing::debug!(
                "notifications before the first trail and posture polls: left in the queue"
            );
            return (Vec::new(), Vec::new());
        };
        let detections = self.detections();
        let detections = match self.watched() {
            Some(w) if !detections.is_empty() => Some((detections.clone(), Arc::new(w))),
            _ => None,
        };
        let tick = || self.pollers.notifications.tick();
        let mut run = Run {
            watch: self,
            reads: &reads,
            detections,
            tick: &tick,
            bucket_regions: HashMap::new(),
            passes: HashMap::new(),
            errors: Vec::new(),
        };
        let m = &self.published.metrics;
        for q in self.queues() {
            let (q, region) = (&q.url, q.url.region().unwrap_or(&self.regions[0]));
            for _ in 0..MAX_RECEIVES {
                let messages = match queue::receive(&self.aws, region, &q.0).await {
                    Ok(m) => m,
                    Err(e) => {
                        run.errors.push(e);
                        break;
                    }
                };
                (run.tick)();
                if messages.is_empty() {
                    self.queues_drained.lock().insert(q.0.clone(), Utc::now());
                    break;
                }
                for message in messages {
                    let outcomes = match parse(&message.body) {
                        Err(why) => {
                            tracing::warn!(queue = %q.0, message = %message.id, reason = %why, "queue message is not an S3 event notification: left for the dead-letter queue");
                            m.queue_messages.with_label_values(&["unreadable"]).inc();
                            continue;
                        }
                        Ok(Notification::Test) => Vec::new(),
                        Ok(Notification::Created(objects)) => {
                            let mut outcomes = Vec::with_capacity(objects.len());
                            for object in &objects {
                                outcomes.push(Box::pin(run.read(object)).await);
                            }
                            outcomes
                        }
                    };
                    if !may_delete(&outcomes) {
                        m.queue_messages.with_label_values(&["kept"]).inc();
                        continue;
                    }
                    match queue::delete(&self.aws, region, &q.0, &message.receipt).await {
                        Ok(()) => m.queue_messages.with_label_values(&["deleted"]).inc(),
                        // Handed out again later: its objects are read by then, nothing twice.
                        Err(e) => run.errors.push(e),
                    }
                }
            }
        }
        let mut found = Vec::new();
        for (trail, pass) in run.passes {
            self.publish_pass(&trail, &pass);
            run.errors.extend(pass.errors);
            found.extend(pass.detections);
        }
        (run.errors, found)
    }
}

/// One run over the queues: the trails whose buckets are read, the buckets' regions as
/// found, and what the reads found, by trail.
struct Run<'a> {
    watch: &'a Watch,
    reads: &'a [BucketRead],
    detections: Option<(
        Arc<crate::config::DetectionSet>,
        Arc<crate::evaluate::detection::Watched>,
    )>,
    tick: &'a (dyn Fn() + Sync),
    bucket_regions: HashMap<String, String>,
    passes: HashMap<String, TrailPass>,
    errors: Vec<Unavailable>,
}

impl Run<'_> {
    /// Reads one announced object, when it is a log file in the folder of a trail whose
    /// bucket this daemon reads; anything else is not ours.
    async fn read(&mut self, object: &CreatedObject) -> Outcome {
        let Some((read, root, parsed)) = self.reads.iter().find_map(|r| {
            let t = &r.state.trail;
            if t.s3_bucket_name.as_deref() != Some(object.bucket.as_str()) {
                return None;
            }
            let (root, parsed) = log_root_of(&object.key, t.s3_key_prefix.as_deref())?;
            // An organization trail's member folders, or the trail's own account's.
            (root.org.is_some() == t.is_organization_trail).then_some((r, root, parsed))
        }) else {
            return Outcome::NotOurs;
        };
        let t = &read.state.trail;
        let bucket_region = match self.bucket_regions.get(&object.bucket) {
            Some(r) => r.clone(),
            None => match objects::bucket_region(&read.aws, &t.home_region, &object.bucket).await {
                Ok(r) => {
                    self.bucket_regions.insert(object.bucket.clone(), r.clone());
                    r
                }
                Err(e) => {
                    self.errors.push(e);
                    return Outcome::Failed;
                }
            },
        };
        let folder = Folder {
            bucket_region: &bucket_region,
            bucket: &object.bucket,
            root: &root,
            region: &parsed.region,
            trail: &t.name,
        };
        let w = self.watch;
        let inputs = Inputs {
            aws: &read.aws,
            store: &w.store,
            settings: &w.bucket_settings,
            limits: &w.read_limits,
            detections: self.detections.clone(),
            now: Utc::now(),
            hole_tolerance: w.coverage_params().1,
            tick: self.tick,
            notified_until: None,
        };
        let pass = self.passes.entry(t.name.clone()).or_default();
        read_announced(
            &inputs,
            &folder,
            &object.key,
            object.size,
            parsed.delivered,
            pass,
        )
        .await
    }
}
