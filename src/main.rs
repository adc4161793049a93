//! The `trailwarden` command line.

use clap::Parser;
use std::path::Path;
use std::process::ExitCode;
use trailwarden::check;
use trailwarden::cli::{Cli, Command, LogFormat};
use trailwarden::config::{Config, ConfigError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ValidateLogs { .. } => return validate_logs(cli),
        Command::Hunt { .. } => return hunt(cli),
        _ => {}
    }
    let (path, default_level) = match &cli.command {
        Command::Run { config, .. } => (config.clone(), "info"),
        Command::Check { config, .. } | Command::ValidateConfig { config } => {
            (config.clone(), "warn")
        }
        Command::ValidateLogs { .. } | Command::Hunt { .. } => unreachable!("handled above"),
    };
    let mut config = match Config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            report(&path, &errors);
            return ExitCode::from(2);
        }
    };
    // Only the commands that watch resolve the shard: validate-config runs where the
    // hostname is not the pod's.
    if let Command::Run { shard, .. } | Command::Check { shard, .. } = &cli.command
        && let Err(e) = config.set_shard(shard.settings(), hostname)
    {
        report(&path, &[e]);
        return ExitCode::from(2);
    }
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
            let sigma = &config.detections.sigma;
            println!(
                "{}: valid ({} policies from {}, {} detections, {} Sigma rules)",
                path.display(),
                config.policies.policies.len(),
                config.policies_path.display(),
                config.detections.detections().len(),
                sigma.rules.len()
            );
            // The daemon loads the other rules: these are warnings, not a refusal.
            for p in &sigma.problems {
                eprintln!(
                    "warning: {}: Sigma rule not loaded: {}",
                    p.file.display(),
                    p.reason
                );
            }
            ExitCode::SUCCESS
        }
        Command::Check { format, .. } => {
            let code = runtime().block_on(check::check(&config, format));
            ExitCode::from(code as u8)
        }
        Command::ValidateLogs { .. } | Command::Hunt { .. } => unreachable!("handled above"),
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
    choose_region(&mut settings, region, config.is_none());
    init_logging(cli.log_format, "warn");
    let args = trailwarden::validate_logs::Args {
        trail,
        start: start_time,
        end: end_time.unwrap_or_else(chrono::Utc::now),
        account: account_id,
        json: matches!(format, trailwarden::cli::ReportFormat::Json),
        concurrency,
    };
    let code = runtime().block_on(trailwarden::validate_logs::command(&settings, args));
    ExitCode::from(code as u8)
}

fn hunt(cli: Cli) -> ExitCode {
    let Command::Hunt {
        paths,
        trail,
        start_time,
        end_time,
        account_id,
        region,
        concurrency,
        format,
        config,
        detections,
        sigma,
    } = cli.command
    else {
        unreachable!("called for hunt only")
    };
    init_logging(cli.log_format, "warn");
    let loaded = match &config {
        Some(path) => match Config::load(path) {
            Ok(c) => Some(c),
            Err(errors) => {
                report(path, &errors);
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let (mut settings, caps, mut set) = match loaded {
        Some(c) => (c.daemon.aws, c.daemon.bucket, c.detections),
        None => Default::default(),
    };
    if !detections.is_empty() {
        let sigma_rules = std::mem::take(&mut set.sigma);
        set = trailwarden::config::DetectionSet::default();
        set.sigma = sigma_rules;
        for path in &detections {
            let more = trailwarden::config::yaml::load_file(path)
                .map_err(|e| e.to_string())
                .and_then(|more| {
                    set.extend(more)
                        .map_err(|e| format!("{}: {e}", path.display()))
                });
            if let Err(e) = more {
                eprintln!("trailwarden hunt: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if !sigma.is_empty() {
        set.sigma = trailwarden::config::sigma::SigmaRules::load(&sigma);
    }
    for p in &set.sigma.problems {
        eprintln!(
            "trailwarden hunt: warning: {}: Sigma rule not loaded: {}",
            p.file.display(),
            p.reason
        );
    }
    if set.is_empty() {
        eprintln!("trailwarden hunt: nothing to hunt with: give --config, --detections or --sigma");
        return ExitCode::from(2);
    }
    choose_region(&mut settings, region, config.is_none());
    let args = trailwarden::hunt::Args {
        paths,
        range: trailwarden::evaluate::hunt::Range {
            start: start_time,
            end: end_time.or_else(|| trail.is_some().then(chrono::Utc::now)),
        },
        trail,
        account: account_id,
        concurrency,
        format,
    };
    let code = runtime().block_on(trailwarden::hunt::command(&settings, &caps, set, args));
    ExitCode::from(code as u8)
}

/// `--region` wins; without a configuration, `AWS_REGION` picks the region a trail is
/// looked up in (with one, its first region does).
fn choose_region(
    settings: &mut trailwarden::config::AwsSettings,
    region: Option<String>,
    without_config: bool,
) {
    let from_env = || {
        without_config
            .then(|| std::env::var("AWS_REGION").ok())
            .flatten()
    };
    if let Some(r) = region.or_else(from_env) {
        settings.regions = vec![r];
    }
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

/// The machine's name: a Kubernetes pod's is its name (`HOSTNAME`), else the kernel's.
fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
