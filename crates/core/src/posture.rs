//! Plain domain values: what the collectors learned about trails, their buckets and keys.
//!
//! Nothing here does I/O. Every piece that needs its own AWS call is a [`Fetched`], so a
//! policy can tell "the bucket has no lifecycle rules" from "we could not read them".

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a piece of posture is not known: AccessDenied, throttling, a timeout, a resource in
/// another account. Policies that need it report `error` with this reason, never `pass`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    pub reason: String,
    /// An AWS call failed (counted as a poll error), as opposed to a gap the daemon knows
    /// about, such as a bucket that is checked from another account.
    #[serde(skip)]
    pub from_api: bool,
}

impl Unavailable {
    pub fn new(reason: impl Into<String>) -> Self {
        Unavailable {
            reason: reason.into(),
            from_api: false,
        }
    }

    pub fn api_failure(reason: impl Into<String>) -> Self {
        Unavailable {
            reason: reason.into(),
            from_api: true,
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

pub type Fetched<T> = Result<T, Unavailable>;

/// A trail as DescribeTrails reports it (deduplicated by ARN across regions).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Trail {
    pub arn: String,
    pub name: String,
    /// The account that owns the trail, from its ARN.
    pub account: String,
    pub home_region: String,
    pub s3_bucket_name: Option<String>,
    pub s3_key_prefix: Option<String>,
    pub sns_topic_arn: Option<String>,
    pub include_global_service_events: bool,
    pub is_multi_region_trail: bool,
    pub is_organization_trail: bool,
    pub log_file_validation_enabled: bool,
    pub kms_key_id: Option<String>,
    pub cloud_watch_logs_log_group_arn: Option<String>,
    pub cloud_watch_logs_role_arn: Option<String>,
    pub has_custom_event_selectors: bool,
    pub has_insight_selectors: bool,
}

/// GetTrailStatus, with AWS's empty strings turned into `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TrailStatus {
    pub is_logging: bool,
    pub latest_delivery_time: Option<DateTime<Utc>>,
    pub latest_delivery_error: Option<String>,
    pub latest_digest_delivery_time: Option<DateTime<Utc>>,
    pub latest_digest_delivery_error: Option<String>,
    pub latest_notification_error: Option<String>,
    pub latest_cloud_watch_logs_delivery_time: Option<DateTime<Utc>>,
    pub latest_cloud_watch_logs_delivery_error: Option<String>,
    pub start_logging_time: Option<DateTime<Utc>>,
    pub stop_logging_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadWriteType {
    All,
    ReadOnly,
    WriteOnly,
    /// A value newer than this build: counts as recording nothing.
    Unrecognized,
}

/// One basic event selector (GetEventSelectors `EventSelectors`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BasicSelector {
    pub read_write_type: ReadWriteType,
    pub include_management_events: bool,
    pub exclude_management_event_sources: Vec<String>,
    pub data_resource_count: usize,
}

/// One field condition of an advanced event selector.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FieldSelector {
    pub field: String,
    pub equals: Vec<String>,
    pub not_equals: Vec<String>,
    pub starts_with: Vec<String>,
    pub not_starts_with: Vec<String>,
    pub ends_with: Vec<String>,
    pub not_ends_with: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct AdvancedSelector {
    /// Informational only: policies never look at it, a name proves nothing.
    pub name: Option<String>,
    pub field_selectors: Vec<FieldSelector>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSelectors {
    Basic(Vec<BasicSelector>),
    Advanced(Vec<AdvancedSelector>),
}

/// Server-side default encryption of a bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketEncryption {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub algorithm: String,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
}

/// A lifecycle rule, reduced to what decides whether it deletes log files.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LifecycleRule {
    pub id: Option<String>,
    pub enabled: bool,
    /// Key prefix the rule is limited to; `None` or empty for the whole bucket.
    pub prefix: Option<String>,
    /// The rule only matches objects with tags; CloudTrail writes untagged objects.
    pub requires_tags: bool,
    pub expiration_days: Option<i32>,
    pub expiration_date: Option<DateTime<Utc>>,
    pub noncurrent_expiration_days: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Versioning {
    /// Never enabled.
    Off,
    Enabled,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectLock {
    pub enabled: bool,
    /// `GOVERNANCE` or `COMPLIANCE` when a default retention is set.
    pub mode: Option<String>,
    pub days: Option<i32>,
    pub years: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn all_blocked(&self) -> bool {
        self.block_public_acls
            && self.ignore_public_acls
            && self.block_public_policy
            && self.restrict_public_buckets
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessLogging {
    pub target_bucket: String,
    pub target_prefix: Option<String>,
}

/// What S3 says about the trail's bucket. `Ok(None)` means "not configured".
#[derive(Debug, Clone, PartialEq)]
pub struct BucketPosture {
    pub name: String,
    pub encryption: Fetched<Option<BucketEncryption>>,
    pub lifecycle_rules: Fetched<Vec<LifecycleRule>>,
    pub versioning: Fetched<Versioning>,
    pub object_lock: Fetched<Option<ObjectLock>>,
    pub public_access_block: Fetched<Option<PublicAccessBlock>>,
    /// `Ok(None)`: the bucket has no policy.
    pub policy_is_public: Fetched<Option<bool>>,
    /// The ACL grants something to AllUsers or AuthenticatedUsers.
    pub acl_is_public: Fetched<bool>,
    pub access_logging: Fetched<Option<AccessLogging>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyPosture {
    pub key_id: String,
    pub arn: String,
    pub account: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport`, `Unavailable`, ...
    pub state: String,
    pub rotation_enabled: Fetched<bool>,
    /// Alias names (`alias/...`) pointing at the key.
    pub aliases: Fetched<Vec<String>>,
}

impl KeyPosture {
    pub fn is_enabled(&self) -> bool {
        self.state == "Enabled"
    }
}

/// One AWS Config configuration recorder and whether it records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorder {
    pub name: String,
    pub recording: bool,
    pub last_status: Option<String>,
    pub last_error_code: Option<String>,
}

/// Everything the trail poller learned about one trail.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailState {
    pub trail: Trail,
    pub status: Fetched<TrailStatus>,
    pub selectors: Fetched<EventSelectors>,
}

/// The posture poller's view of one bucket or key, keyed by bucket name / key id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Posture {
    pub buckets: BTreeMap<String, Fetched<BucketPosture>>,
    pub keys: BTreeMap<String, Fetched<KeyPosture>>,
    pub recorders: BTreeMap<String, Fetched<Vec<Recorder>>>,
}

/// The latest of everything collected: what evaluation works on.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The account whose credentials the daemon uses (STS GetCallerIdentity).
    pub account: Fetched<String>,
    pub regions: Vec<String>,
    /// Trails, or why none could be listed in any region.
    pub trails: Fetched<Vec<TrailState>>,
    /// `None` until the posture poller has run once.
    pub posture: Option<Posture>,
    /// What the bucket poller found, by trail ARN; `None` until it has run once.
    pub evidence: Option<BTreeMap<String, Fetched<TrailEvidence>>>,
    /// With many accounts: the watched and retired accounts, whose folders an organization
    /// trail fills while they belong. Empty otherwise: only the owner's folder is judged.
    /// Shared: every account's snapshot holds the same roster (a copy each was a million
    /// entries at 1,000 accounts).
    pub members: std::sync::Arc<BTreeMap<String, Membership>>,
}

/// When an account belonged to the organization, as far as the roster knows: an
/// organization trail fills its folder from `joined` until `left` (or now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Membership {
    pub joined: Option<DateTime<Utc>>,
    pub left: Option<DateTime<Utc>>,
}

/// What a trail's bucket shows: per account folder and delivering region, the log files'
/// coverage, and the integrity verdicts found recently.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TrailEvidence {
    pub regions: Vec<RegionEvidence>,
    /// Failures and explained restarts found within the stored window, newest first.
    pub verdicts: Vec<crate::integrity::verdict::StoredItem>,
    /// Digests of this trail were found (validation is producing evidence).
    pub digests_seen: bool,
    /// Objects of the trail's folders that could not be read, each waiting for its retry.
    pub unread: Vec<UnreadObject>,
    /// The trail's latest CreateTrail (from event history or its log files): it logged
    /// nothing before.
    pub created: Option<DateTime<Utc>>,
    /// The latest CreateTrail, UpdateTrail or StartLogging: a new digest chain is due within
    /// the hour after it.
    pub changed: Option<DateTime<Utc>>,
}

/// One delivering region of one account folder.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RegionEvidence {
    pub account: String,
    pub region: String,
    pub coverage: crate::integrity::coverage::Coverage,
    /// Start of the oldest digest chain when it is a starting digest: nothing came before.
    pub origin: Option<DateTime<Utc>>,
    /// End of the last digest validated.
    pub validated_until: Option<DateTime<Utc>>,
    /// The log folder could not be read this pass: its coverage and freshness are unknown.
    pub log_error: Option<String>,
    /// The digest folder could not be read this pass, or its chain waits at an object it
    /// could not read.
    pub digest_error: Option<String>,
}

/// An object that could not be read, waiting for its next attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnreadObject {
    /// `bucket/key`
    pub object: String,
    /// `log` (its records wait to be read) or `digest` (a chain waits at it; the object is the
    /// digest or a log file it lists).
    pub kind: String,
    pub account: String,
    pub region: String,
    pub reason: String,
    pub first_failed: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
}

impl TrailEvidence {
    pub fn region(&self, account: &str, region: &str) -> Option<&RegionEvidence> {
        self.regions
            .iter()
            .find(|r| r.account == account && r.region == region)
    }
}

impl Snapshot {
    /// The bucket posture of a trail, or why it is unknown.
    pub fn bucket_of(&self, trail: &Trail) -> Fetched<&BucketPosture> {
        let name = trail
            .s3_bucket_name
            .as_deref()
            .ok_or_else(|| Unavailable::new("trail names no S3 bucket"))?;
        let posture = self.posture_or_err()?;
        match posture.buckets.get(name) {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Unavailable::new(format!(
                "bucket {name} has not been collected yet"
            ))),
        }
    }

    /// The KMS key of a trail: `Ok(None)` when the trail sets no key.
    pub fn key_of(&self, trail: &Trail) -> Fetched<Option<&KeyPosture>> {
        let Some(id) = trail.kms_key_id.as_deref() else {
            return Ok(None);
        };
        let posture = self.posture_or_err()?;
        match posture.keys.get(id) {
            Some(Ok(k)) => Ok(Some(k)),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Unavailable::new(format!(
                "KMS key {id} has not been collected yet"
            ))),
        }
    }

    /// The bucket evidence of a trail: `Ok(None)` until the bucket poller has read it (the
    /// daemon has not looked yet: nothing is wrong), `Err` when the read failed.
    pub fn evidence_of(&self, trail: &Trail) -> Fetched<Option<&TrailEvidence>> {
        match self.evidence.as_ref().and_then(|all| all.get(&trail.arn)) {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    fn posture_or_err(&self) -> Fetched<&Posture> {
        self.posture
            .as_ref()
            .ok_or_else(|| Unavailable::new("bucket and key posture not collected yet"))
    }
}

/// `arn:aws:cloudtrail:us-east-1:123456789012:trail/name` → `123456789012`.
pub fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// `arn:aws:cloudtrail:us-east-1:...` → `us-east-1`.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts() {
        let arn = "arn:aws:cloudtrail:eu-west-1:123456789012:trail/org";
        assert_eq!(arn_account(arn), Some("123456789012"));
        assert_eq!(arn_region(arn), Some("eu-west-1"));
        assert_eq!(arn_account("not-an-arn"), None);
    }
}
