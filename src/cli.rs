//! The command line's definition: `main.rs` parses it, `xtask` renders the man pages and the
//! shell completions from it, so the three cannot disagree.

use crate::check::Format;
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
    },
    /// Collect and evaluate once, print the findings, and exit: 0 when every policy passes,
    /// 1 when a policy fails, 2 when a policy is error or pending or the config is bad.
    Check {
        /// The configuration file.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: PathBuf,
        /// text for people, json for tools (adds each trail's document for custom policies).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
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
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// A daemon configuration to take AWS settings (endpoint, profile) from; optional.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: Option<PathBuf>,
    },
}
