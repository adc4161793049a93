//! The `trailwarden` command line.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trailwarden::check::{self, Format};
use trailwarden::config::{Config, ConfigError};

/// Continuous compliance for AWS CloudTrail: checks that trails log, encrypt, validate and
/// retain, and serves the findings as Prometheus metrics and JSON.
#[derive(Parser)]
#[command(name = "trailwarden", version, about, long_about = None)]
struct Cli {
    /// Log line format (logs go to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: poll on the configured schedule and serve /metrics, /status,
    /// /healthz and /readyz. SIGHUP reloads the configuration; SIGTERM stops.
    Run {
        /// The configuration file.
        #[arg(long, env = "TRAILWARDEN_CONFIG")]
        config: PathBuf,
    },
    /// Collect and evaluate once, print the findings, and exit: 0 when every policy passes,
    /// 1 when a policy fails, 2 when a policy could not be evaluated or the config is bad.
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
        #[arg(long, value_parser = trailwarden::validate_logs::parse_time_arg)]
        start_time: chrono::DateTime<chrono::Utc>,
        /// End of the range; default now.
        #[arg(long, value_parser = trailwarden::validate_logs::parse_time_arg)]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ValidateLogs { .. } = cli.command {
        return validate_logs(cli);
    }
    let (path, default_level) = match &cli.command {
        Command::Run { config } => (config.clone(), "info"),
        Command::Check { config, .. } | Command::ValidateConfig { config } => {
            (config.clone(), "warn")
        }
        Command::ValidateLogs { .. } => unreachable!("handled above"),
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            report(&path, &errors);
            return ExitCode::from(2);
        }
    };
    init_logging(
        cli.log_format,
        config
            .daemon
            .log_level
            .as_ref()
            .map_or(default_level, |l| l.0.as_str()),
    );
    match cli.command {
        Command::ValidateConfig { .. } => {
            println!(
                "{}: valid ({} policies from {}, {} detections)",
                path.display(),
                config.policies.policies.len(),
                config.policies_path.display(),
                config.detections.detections.len()
            );
            ExitCode::SUCCESS
        }
        Command::Check { format, .. } => {
            let code = runtime().block_on(check::check(&config, format));
            ExitCode::from(code as u8)
        }
        Command::ValidateLogs { .. } => unreachable!("handled above"),
        Command::Run { .. } => match runtime().block_on(trailwarden::daemon::run(config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("trailwarden: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn validate_logs(cli: Cli) -> ExitCode {
    let Command::ValidateLogs {
        trail,
        start_time,
        end_time,
        account_id,
        region,
        concurrency,
        format,
        config,
    } = cli.command
    else {
        unreachable!("called for validate-logs only")
    };
    let mut settings = match &config {
        Some(path) => match Config::load(path) {
            Ok(c) => c.daemon.aws,
            Err(errors) => {
                report(path, &errors);
                return ExitCode::from(2);
            }
        },
        None => trailwarden::config::AwsSettings::default(),
    };
    if let Some(r) = region.or_else(|| {
        config
            .is_none()
            .then(|| std::env::var("AWS_REGION").ok())
            .flatten()
    }) {
        settings.regions = vec![r];
    }
    init_logging(cli.log_format, "warn");
    let args = trailwarden::validate_logs::Args {
        trail,
        start: start_time,
        end: end_time.unwrap_or_else(chrono::Utc::now),
        account: account_id,
        json: matches!(format, Format::Json),
        concurrency,
    };
    let code = runtime().block_on(trailwarden::validate_logs::command(&settings, args));
    ExitCode::from(code as u8)
}

fn report(path: &Path, errors: &[ConfigError]) {
    eprintln!(
        "trailwarden: invalid configuration ({} problem{}):",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        eprintln!("{e}");
    }
    let _ = path;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `RUST_LOG` wins over the configured level.
fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
