//! trailwarden's pure part: everything that decides, nothing that fetches.
//!
//! - [`config`]: the configuration, policy and detection files (the one place YAML is read).
//! - [`posture`]: what the collectors learned, as plain values.
//! - [`evaluate`]: policies and detections over those values.
//! - [`record`], [`record_head`], [`json_nesting`], [`logfile`]: CloudTrail records and log
//!   files.
//! - [`s3_event`]: S3 event notifications, as a queue receives them.
//! - [`ocsf`], [`asff`]: findings and detections as OCSF events, findings as Security Hub's.
//! - [`integrity`]: digest files, key layout, chains, coverage, verdicts.
//! - [`plan`]: the pollers' stateful rules: cursors, retries, where a chain resumes.
//!
//! No AWS SDK, no async runtime, no database, no clock reads (`now` is passed in): the daemon
//! crate calls AWS and keeps state around these functions. A separate crate so Cargo, not
//! review, keeps it that way; the fuzz targets build on it alone.

pub mod asff;
pub mod config;
pub mod evaluate;
pub mod integrity;
pub mod json_nesting;
pub mod logfile;
pub mod ocsf;
pub mod plan;
pub mod posture;
pub mod record;
pub mod record_head;
pub mod s3_event;
