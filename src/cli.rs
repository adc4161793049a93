//! The command line's definition: `main.rs` parses it, `xtask` renders the man pages and the
//! shell completions from it, so the three cannot disagree.

use crate::check::Format;
use crate::config::ShardSettings;
use crate::config::shard::ShardOrdinal;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The version with the commit it was built from (`build.rs`): a bug report names both.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TRAILWARDEN_COMMIT"),
    ")"
);

/// Continuous compliance for AWS CloudTrail: checks that trails log, encrypt, validate and
/// retain, and serves the findings as Prometheus metrics and JSON.
#[derive(Parser)]
#[command(name = "trailwarden", version = VERSION, disable_help_subcommand = true)]
pub struct Cli {
    /// Log line format (logs go to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `validate-logs`' output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: poll on the configured schedule and serve /metrics, /status,
    /// /healthz and /readyz. SIGHUP reloads the configuration; SIGTERM stops.
    Run {
        /// The configuration file.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        shard: ShardArgs,
    },
    /// Collect and evaluate once, print the findings, and exit: 0 when every policy passes,
    /// 1 when a policy fails, 2 when a policy is error or pending or the config is bad.
    Check {
        /// The configuration file.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: PathBuf,
        /// text for people, json for tools (adds each trail's document for custom policies),
        /// ocsf for security data lakes (OCSF 1.8.0 Compliance Findings).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        shard: ShardArgs,
    },
    /// Check the configuration and policy files without calling AWS: exit 0 when valid,
    /// 2 with every problem listed as file:line:column otherwise.
    ValidateConfig {
        /// The configuration file.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: PathBuf,
    },
    /// Validate a trail's digest and log files once: signatures, links between digests,
    /// log file hashes, missing and unlisted files, chain restarts. Exit 0 when all is valid,
    /// 1 on any invalid, missing or unverifiable item, 2 when the trail cannot be read.
    ValidateLogs {
        /// Trail name or ARN.
        #[arg(long)]
        trail: String,
        /// Start of the range (RFC 3339 with any offset, or a date).
        #[arg(long, value_parser = crate::validate_logs::parse_time_arg)]
        start_time: chrono::DateTime<chrono::Utc>,
        /// End of the range; default now.
        #[arg(long, value_parser = crate::validate_logs::parse_time_arg)]
        end_time: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this account's chains (organization trails).
        #[arg(long)]
        account_id: Option<String>,
        /// Region the trail is looked up in; default: the config's first region, or AWS_REGION.
        #[arg(long)]
        region: Option<String>,
        /// Objects read at a time.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// A daemon configuration to take AWS settings (endpoint, profile) from; optional.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the detections and Sigma rules over history: a time range of a trail's bucket
    /// (every account and region folder), or local files and folders (.json.gz log files,
    /// .json, JSON lines). Exit 0 without a hit, 1 with hits, 2 when something could not be
    /// read and nothing was found, or the hunt could not start.
    Hunt {
        /// Local files and folders (folders are walked for .json, .json.gz, .jsonl and
        /// .ndjson files). Detections that watch the trail's bucket, key or log group match
        /// any bucket, key or log group here: no trail scopes them.
        #[arg(required_unless_present = "trail", conflicts_with = "trail")]
        paths: Vec<PathBuf>,
        /// Hunt this trail's bucket (name or ARN) instead of local files.
        #[arg(long, requires = "start_time")]
        trail: Option<String>,
        /// Only events from this time (RFC 3339 with any offset, or a date); required with
        /// --trail.
        #[arg(long, value_parser = crate::validate_logs::parse_time_arg)]
        start_time: Option<chrono::DateTime<chrono::Utc>>,
        /// Only events up to this time; default: no limit for files, now for a trail.
        #[arg(long, value_parser = crate::validate_logs::parse_time_arg)]
        end_time: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this account's folders of the trail's bucket (organization trails).
        #[arg(long, requires = "trail")]
        account_id: Option<String>,
        /// Region the trail is looked up in; default: the config's first region, or AWS_REGION.
        #[arg(long, requires = "trail")]
        region: Option<String>,
        /// Files read at a time.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, value_enum, default_value_t = crate::hunt::HuntFormat::Table)]
        format: crate::hunt::HuntFormat,
        /// A daemon configuration: its detections, Sigma rules, read caps and AWS settings.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: Option<PathBuf>,
        /// Detection files to hunt with, instead of the configuration's.
        #[arg(long)]
        detections: Vec<PathBuf>,
        /// Sigma rule files or folders to hunt with, instead of the configuration's.
        #[arg(long)]
        sigma: Vec<PathBuf>,
    },
}

/// This replica's part of the accounts when several replicas split them; over the
/// configuration's `shard` section.
#[derive(clap::Args, Clone, Copy)]
pub struct ShardArgs {
    /// This replica's shard: 0 to the total - 1, or `hostname` for a StatefulSet pod's
    /// ordinal (`trailwarden-2` is 2).
    #[arg(long, env = "TRAILWARDEN_SHARD", requires = "total_shards", value_parser = parse_ordinal)]
    pub shard: Option<ShardOrdinal>,
    /// How many shards split the accounts; the same on every replica.
    #[arg(long, env = "TRAILWARDEN_TOTAL_SHARDS", requires = "shard", value_parser = clap::value_parser!(u32).range(1..))]
    pub total_shards: Option<u32>,
}

impl ShardArgs {
    pub fn settings(&self) -> Option<ShardSettings> {
        Some(ShardSettings {
            ordinal: self.shard?,
            total: self.total_shards?,
        })
    }
}

fn parse_ordinal(text: &str) -> Result<ShardOrdinal, String> {
    <ShardOrdinal as crate::config::yaml::ParseScalar>::parse(text)
}
