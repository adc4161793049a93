//! `trailwarden hunt`: the detections and Sigma rules run over history, from a time range of
//! a trail's bucket (`bucket.rs`) or from local files and folders (`files.rs`). Each file is
//! read on a blocking thread by the pure [`crate::evaluate::hunt`]; `report.rs` keeps the
//! totals, the progress bar and the output. Exit 0 without a hit, 1 with hits, 2 when
//! nothing could be hunted or some file or record could not be read and nothing was found.

mod bucket;
mod files;
mod report;

use crate::config::{BucketSettings, DetectionSet};
use crate::evaluate::detection::Watched;
use crate::evaluate::hunt::{FileScan, Hunting, Range, scan_file};
use std::path::PathBuf;
use std::sync::Arc;

pub use report::HuntFormat;

/// Arguments of the subcommand.
pub struct Args {
    /// Local files and folders; empty when hunting a trail's bucket.
    pub paths: Vec<PathBuf>,
    /// A trail (name or ARN) whose bucket is hunted.
    pub trail: Option<String>,
    pub range: Range,
    /// Only this account's folders (organization trails).
    pub account: Option<String>,
    pub concurrency: usize,
    pub format: HuntFormat,
}

/// One file read by a hunt: a local path or an object's `s3://` URL.
pub struct HuntedFile {
    pub name: String,
    /// The file's records through the detections, or why it could not be read at all.
    pub scan: Result<FileScan, String>,
}

/// What each file is read with; shared by the blocking threads.
#[derive(Clone)]
struct Hunter {
    detections: Arc<DetectionSet>,
    watched: Arc<Watched>,
    range: Range,
    limits: crate::logfile::Limits,
}

impl Hunter {
    fn scan(&self, body: &[u8]) -> FileScan {
        self.scan_with(body, &mut Vec::new())
    }

    /// As [`Hunter::scan`], with the caller's scratch buffer (kept from file to file).
    fn scan_with(&self, body: &[u8], scratch: &mut Vec<u8>) -> FileScan {
        let hunting = Hunting {
            detections: &self.detections,
            watched: &self.watched,
            range: self.range,
            limits: self.limits,
            now: chrono::Utc::now(),
        };
        scan_file(body, &hunting, scratch)
    }
}

/// Runs the subcommand and returns its exit code.
pub async fn command(
    aws: &crate::config::AwsSettings,
    caps: &BucketSettings,
    detections: DetectionSet,
    args: Args,
) -> i32 {
    let mut report = report::Report::new(args.format, args.range);
    let detections = Arc::new(detections);
    let limits = caps.log_limits();
    let outcome = match &args.trail {
        Some(trail) => bucket::hunt(aws, caps, trail, &args, detections, limits, &mut report).await,
        None => {
            // No trail scopes the detections: any bucket, key and log group may be a trail's.
            let hunter = Hunter {
                detections,
                watched: Arc::new(Watched {
                    any_resource: true,
                    ..Watched::default()
                }),
                range: args.range,
                limits,
            };
            files::hunt(&args.paths, caps, hunter, args.concurrency, &mut report).await;
            Ok(())
        }
    };
    report.finish(outcome.err())
}
