//! `bucket:`: how the bucket poller reads the trails' buckets, and the notification queues
//! that announce their new objects.

use super::default_initial_window;
use super::yaml::{self, ByteSize, HumanDuration};
use serde::Deserialize;

/// How the bucket poller reads the trails' buckets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSettings {
    /// On the first poll, log files delivered this far back are read and digests this far
    /// back validated; older objects only count for coverage.
    #[serde(default = "default_initial_window")]
    pub initial_window: HumanDuration,
    /// Objects read at a time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How often the whole bucket is listed again (deleted log files show only then);
    /// polls in between list only new keys.
    #[serde(default = "default_rescan")]
    pub rescan: HumanDuration,
    /// Each poll lists again from this far before where the last one ended: log keys carry
    /// only the minute, so a file written later can sort before keys already read.
    #[serde(default = "default_look_back")]
    pub look_back: HumanDuration,
    /// Log files delivered longer ago than this are never read (event ids are remembered
    /// this long, so reading them could count an event twice); event history has them.
    #[serde(default = "default_read_window", deserialize_with = "read_window")]
    pub read_window: HumanDuration,
    /// The first retry of a read that failed comes at the next poll, then after this, twice
    /// as long each time, up to an hour.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: HumanDuration,
    /// Largest object read, as stored; a larger one is an `oversized` verdict.
    #[serde(default = "default_max_object_size")]
    pub max_object_size: ByteSize,
    /// Largest log file, uncompressed (it is streamed, never held whole: this bounds time).
    #[serde(default = "default_max_inflated_size")]
    pub max_inflated_size: ByteSize,
    /// Largest digest file, uncompressed (a digest is held whole while its chain is judged).
    #[serde(default = "default_max_digest_size")]
    pub max_digest_size: ByteSize,
    /// Largest single record of a log file; a larger one is skipped and reported.
    #[serde(default = "default_max_record_size")]
    pub max_record_size: ByteSize,
    /// Records read per log file; past it the file is reported.
    #[serde(default = "default_max_records")]
    pub max_records: u64,
    /// Object bodies held in memory at once, all reads together: reads wait for room.
    #[serde(default = "default_read_memory")]
    pub read_memory: ByteSize,
    /// Digests validated per chain and poll; the rest come at the next poll.
    #[serde(default = "default_max_digests_per_poll")]
    pub max_digests_per_poll: usize,
    /// SQS queues fed by the trail buckets' event notifications (directly or through SNS):
    /// new log files are read as they are announced, `schedule.notifications` apart, and the
    /// listing of `schedule.bucket` stays the safety net. Read with the daemon's own
    /// credentials.
    #[serde(default)]
    pub queues: Vec<QueueSettings>,
}

/// One notification queue, and the bucket whose notifications feed it: over shards, the
/// shard that reads the bucket reads its queue, and no other touches it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub url: QueueUrl,
    pub bucket: String,
}

/// An SQS queue URL, `https://sqs.us-east-1.amazonaws.com/111122223333/trail-logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrl(pub String);

impl yaml::ParseScalar for QueueUrl {
    const EXPECTING: &'static str = "an SQS queue URL";
    fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
                )
            })?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [host, account, name]
                if !host.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && !name.is_empty() =>
            {
                Ok(QueueUrl(text.to_string()))
            }
            _ => Err(format!(
                "{text:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            )),
        }
    }
}
yaml::scalar_deserialize!(QueueUrl);

impl QueueUrl {
    /// The queue's region, from its host (`sqs.eu-west-1.amazonaws.com`, or the legacy
    /// `eu-west-1.queue.amazonaws.com`); `None` for another host (an emulator).
    pub fn region(&self) -> Option<&str> {
        let host = self.0.split('/').nth(2)?;
        host.strip_prefix("sqs.")
            .and_then(|h| h.split_once(".amazonaws.com"))
            .map(|(r, _)| r)
            .or_else(|| host.split_once(".queue.amazonaws.com").map(|(r, _)| r))
            .filter(|r| !r.is_empty() && !r.contains('.'))
    }
}

impl Default for BucketSettings {
    fn default() -> Self {
        BucketSettings {
            initial_window: default_initial_window(),
            concurrency: default_concurrency(),
            rescan: default_rescan(),
            look_back: default_look_back(),
            read_window: default_read_window(),
            retry_backoff: default_retry_backoff(),
            max_object_size: default_max_object_size(),
            max_inflated_size: default_max_inflated_size(),
            max_digest_size: default_max_digest_size(),
            max_record_size: default_max_record_size(),
            max_records: default_max_records(),
            read_memory: default_read_memory(),
            max_digests_per_poll: default_max_digests_per_poll(),
            queues: Vec::new(),
        }
    }
}

fn default_concurrency() -> usize {
    8
}
fn default_look_back() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3600))
}
fn default_read_window() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3 * 86_400))
}
fn default_retry_backoff() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}
fn default_max_object_size() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_max_inflated_size() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_max_digest_size() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_max_record_size() -> ByteSize {
    ByteSize(4 << 20)
}
fn default_max_records() -> u64 {
    2_000_000
}
fn default_read_memory() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_max_digests_per_poll() -> usize {
    200
}

/// The read window reaches at least as far back as the first poll's window: otherwise the
/// first poll would list files it may not read.
fn read_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let w = HumanDuration::deserialize(d)?;
    if w.0 < std::time::Duration::from_secs(3600) {
        return Err(serde::de::Error::custom(
            "read_window is at least 1h: a log file may arrive that late",
        ));
    }
    Ok(w)
}

impl BucketSettings {
    /// Checks between fields.
    pub fn check(&self) -> Result<(), String> {
        if self.read_window.0 < self.initial_window.0 {
            return Err(format!(
                "bucket.read_window ({}) must be at least bucket.initial_window ({})",
                humantime::format_duration(self.read_window.0),
                humantime::format_duration(self.initial_window.0)
            ));
        }
        for (name, size) in [
            ("max_object_size", self.max_object_size),
            ("max_digest_size", self.max_digest_size),
        ] {
            if size.0 > self.read_memory.0 {
                return Err(format!(
                    "bucket.{name} ({} bytes) must not exceed bucket.read_memory ({} bytes): such an object could never be read",
                    size.0, self.read_memory.0
                ));
            }
        }
        if self.concurrency == 0 || self.max_digests_per_poll == 0 || self.max_records == 0 {
            return Err(
                "bucket.concurrency, max_digests_per_poll and max_records must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// What reading one log file may cost.
    pub fn log_limits(&self) -> crate::logfile::Limits {
        crate::logfile::Limits {
            max_inflated: self.max_inflated_size.0,
            max_record: usize::try_from(self.max_record_size.0).unwrap_or(usize::MAX),
            max_records: self.max_records,
        }
    }
}

fn default_rescan() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(6 * 3600))
}
