//! The notification poller: the queues of `bucket.queues`, fed by the trail buckets' S3 event
//! notifications, read until empty. Each new log file they announce is read at once, with
//! the bucket owner's clients, through the bucket pass's reader and store (so the listing
//! later finds it read, and an event is claimed once whichever source sees it first); the
//! files of one receive are read side by side, `bucket.concurrency` at a time. A message is
//! deleted only when everything it names is done (`plan::queue`), the messages of one receive
//! in one DeleteMessageBatch; one that cannot be parsed stays for the queue's dead-letter
//! queue. The listing (`bucket_poller.rs`) remains the safety net, and counts what it finds
//! that no notification announced.

use super::Watch;
use super::bucket::{Folder, Inputs, TrailPass, read_announced};
use crate::collect::accounts::BucketRead;
use crate::collect::objects;
use crate::collect::queue::{self, QueueMessage};
use crate::integrity::layout::{AccountRoot, LogKey, log_root_of};
use crate::plan::queue::{Outcome, may_delete, objects_to_read};
use crate::posture::Unavailable;
use crate::s3_event::{CreatedObject, Notification, parse};
use crate::state::StoredDetection;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
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
        for q in self.queues() {
            let (url, region) = (&q.url.0, q.url.region().unwrap_or(&self.regions[0]));
            for _ in 0..MAX_RECEIVES {
                let messages = match queue::receive(&self.aws, region, url).await {
                    Ok(m) => m,
                    Err(e) => {
                        run.errors.push(e);
                        break;
                    }
                };
                (run.tick)();
                if messages.is_empty() {
                    self.queues_drained.lock().insert(url.clone(), Utc::now());
                    break;
                }
                let done = Box::pin(run.handle(url, &messages)).await;
                self.delete(&mut run, region, url, &done).await;
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

    /// Deletes the messages handled (one DeleteMessageBatch per receive); one SQS could not
    /// delete is handed out again later, when its objects are read already: nothing twice.
    async fn delete(&self, run: &mut Run<'_>, region: &str, url: &str, done: &[&QueueMessage]) {
        if done.is_empty() {
            return;
        }
        let receipts: Vec<&str> = done.iter().map(|m| m.receipt.as_str()).collect();
        let deleted = self
            .published
            .metrics
            .queue_messages
            .with_label_values(&["deleted"]);
        match queue::delete_batch(&self.aws, region, url, &receipts).await {
            Ok(failed) => {
                deleted.inc_by((receipts.len() - failed.len()) as u64);
                run.errors.extend(failed);
            }
            Err(e) => run.errors.push(e),
        }
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
    /// What the announced reads found, by trail.
    passes: HashMap<String, TrailPass>,
    errors: Vec<Unavailable>,
}

/// A log file announced in the folder of a trail whose bucket this replica reads.
struct Announced {
    /// Which of the run's `reads`: an index, so the reads' stream owns what it holds.
    read: usize,
    bucket_region: String,
    root: AccountRoot,
    parsed: LogKey,
    object: CreatedObject,
}

impl Run<'_> {
    /// One receive's messages: every log file they announce read side by side (each once,
    /// however many messages name it), then the messages that may go (`plan::queue`).
    /// One that cannot be parsed stays, for the queue's dead-letter queue.
    async fn handle<'m>(
        &mut self,
        url: &str,
        messages: &'m [QueueMessage],
    ) -> Vec<&'m QueueMessage> {
        let m = &self.watch.published.metrics;
        let parsed: Vec<Option<Vec<CreatedObject>>> = messages
            .iter()
            .map(|message| match parse(&message.body) {
                Err(why) => {
                    tracing::warn!(queue = %url, message = %message.id, reason = %why, "queue message is not an S3 event notification: left for the dead-letter queue");
                    m.queue_messages.with_label_values(&["unreadable"]).inc();
                    None
                }
                Ok(Notification::Test) => Some(Vec::new()),
                Ok(Notification::Created(objects)) => Some(objects),
            })
            .collect();
        let mut outcomes: Vec<Option<Vec<Outcome>>> = parsed
            .iter()
            .map(|p| p.as_ref().map(|_| Vec::new()))
            .collect();
        let mut to_read: Vec<(Announced, Vec<usize>)> = Vec::new();
        for (object, named_by) in objects_to_read(&parsed) {
            let outcome = match self.locate(object).await {
                Ok(Some(announced)) => {
                    to_read.push((announced, named_by));
                    continue;
                }
                Ok(None) => Outcome::NotOurs,
                Err(e) => {
                    self.errors.push(e);
                    Outcome::Failed
                }
            };
            for i in named_by {
                push(&mut outcomes[i], outcome);
            }
        }
        let concurrency = self.watch.bucket_settings.concurrency.max(1);
        let this = &*self;
        let read: Vec<(Vec<usize>, String, Outcome, TrailPass)> =
            futures_util::stream::iter(to_read)
                .map(|(announced, named_by)| async move {
                    let (outcome, pass) = this.read(&announced).await;
                    let trail = this.reads[announced.read].state.trail.name.clone();
                    (named_by, trail, outcome, pass)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        for (named_by, trail, outcome, pass) in read {
            for i in named_by {
                push(&mut outcomes[i], outcome);
            }
            self.passes.entry(trail).or_default().absorb(pass);
        }
        let mut done = Vec::new();
        for (message, outcomes) in messages.iter().zip(outcomes) {
            match outcomes {
                Some(o) if may_delete(&o) => done.push(message),
                Some(_) => m.queue_messages.with_label_values(&["kept"]).inc(),
                None => {}
            }
        }
        done
    }

    /// The trail folder an announced object is a log file of, when this replica reads that
    /// trail's bucket; `None` for anything else (not ours).
    async fn locate(&mut self, object: CreatedObject) -> Result<Option<Announced>, Unavailable> {
        let Some((read, root, parsed)) = self.reads.iter().enumerate().find_map(|(i, r)| {
            let t = &r.state.trail;
            if t.s3_bucket_name.as_deref() != Some(object.bucket.as_str()) {
                return None;
            }
            let (root, parsed) = log_root_of(&object.key, t.s3_key_prefix.as_deref())?;
            // An organization trail's member folders, or the trail's own account's.
            (root.org.is_some() == t.is_organization_trail).then_some((i, root, parsed))
        }) else {
            return Ok(None);
        };
        let bucket_region = match self.bucket_regions.get(&object.bucket) {
            Some(r) => r.clone(),
            None => {
                let r = &self.reads[read];
                let home = &r.state.trail.home_region;
                let r = objects::bucket_region(&r.aws, home, &object.bucket).await?;
                self.bucket_regions.insert(object.bucket.clone(), r.clone());
                r
            }
        };
        Ok(Some(Announced {
            read,
            bucket_region,
            root,
            parsed,
            object,
        }))
    }

    /// Reads one announced log file through the bucket pass's reader and store.
    async fn read(&self, a: &Announced) -> (Outcome, TrailPass) {
        let read = &self.reads[a.read];
        let folder = Folder {
            bucket_region: &a.bucket_region,
            bucket: &a.object.bucket,
            root: &a.root,
            region: &a.parsed.region,
            trail: &read.state.trail.name,
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
        let mut pass = TrailPass::default();
        let outcome = read_announced(
            &inputs,
            &folder,
            &a.object.key,
            a.object.size,
            a.parsed.delivered,
            &mut pass,
        )
        .await;
        (outcome, pass)
    }
}

/// Adds an object's outcome to a message's, unless the message could not be parsed.
fn push(outcomes: &mut Option<Vec<Outcome>>, outcome: Outcome) {
    if let Some(o) = outcomes {
        o.push(outcome);
    }
}
