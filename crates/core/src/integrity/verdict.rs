//! What validation says about each digest, log file and gap: the result classes of
//! `aws cloudtrail validate-logs` plus the ones it misses.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A failure, the `kind` label of `trailwarden_digest_validation_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MissingDigest,
    InvalidSignature,
    InvalidFormat,
    BrokenLink,
    MissingLog,
    ModifiedLog,
    UnlistedLog,
    UnexplainedRestart,
    Unverifiable,
    /// A digest or log file over a size cap (compressed or inflated): never read whole.
    Oversized,
    /// A log file that is not a CloudTrail log file (not gzip JSON with a `Records` array), or
    /// holds records that cannot be read.
    MalformedLog,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::MissingDigest,
        Kind::InvalidSignature,
        Kind::InvalidFormat,
        Kind::BrokenLink,
        Kind::MissingLog,
        Kind::ModifiedLog,
        Kind::UnlistedLog,
        Kind::UnexplainedRestart,
        Kind::Unverifiable,
        Kind::Oversized,
        Kind::MalformedLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingDigest => "missing_digest",
            Kind::InvalidSignature => "invalid_signature",
            Kind::InvalidFormat => "invalid_format",
            Kind::BrokenLink => "broken_link",
            Kind::MissingLog => "missing_log",
            Kind::ModifiedLog => "modified_log",
            Kind::UnlistedLog => "unlisted_log",
            Kind::UnexplainedRestart => "unexplained_restart",
            Kind::Unverifiable => "unverifiable",
            Kind::Oversized => "oversized",
            Kind::MalformedLog => "malformed_log",
        }
    }

    /// Whether the item is about a digest (else a log file or the chain).
    pub fn is_digest(self) -> bool {
        matches!(
            self,
            Kind::MissingDigest | Kind::InvalidSignature | Kind::InvalidFormat | Kind::BrokenLink
        )
    }
}

/// Every verdict: valid items, explained gaps, failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    ValidDigest,
    ValidLog,
    /// A chain restart that StopLogging/StartLogging (or a validation change) explains.
    ExplainedRestart,
    #[serde(untagged)]
    Failure(Kind),
}

impl From<Kind> for Class {
    fn from(k: Kind) -> Class {
        Class::Failure(k)
    }
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::ValidDigest => "valid_digest",
            Class::ValidLog => "valid_log",
            Class::ExplainedRestart => "explained_restart",
            Class::Failure(k) => k.as_str(),
        }
    }

    pub fn failure(self) -> Option<Kind> {
        match self {
            Class::Failure(k) => Some(k),
            _ => None,
        }
    }
}

/// One verdict on one object (or one interval of a chain).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub class: Class,
    /// The S3 key judged (for a gap: the digest after it).
    pub object: String,
    /// Digest end time, log delivery time, or the start of a gap.
    pub time: Option<DateTime<Utc>>,
    /// End of a gap or of a stretch of missing digests.
    pub until: Option<DateTime<Utc>>,
    pub detail: String,
}

impl Item {
    pub fn failed(&self) -> bool {
        self.class.failure().is_some()
    }
}

/// A verdict as kept by the state store: with its chain (trail, account folder, delivering
/// region) and when it was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredItem {
    pub trail: String,
    pub account: String,
    pub region: String,
    pub class: String,
    pub object: String,
    pub time: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub detail: String,
    pub found_at: DateTime<Utc>,
}
