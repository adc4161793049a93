//! `trailsim`: the CloudTrail layer over moto, on one endpoint.

use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use trailsim::server::{self, Options};

/// Serves AWS API calls for SDK clients, forwarding to moto and adding event recording,
/// LookupEvents with its real rate limit, and fault injection (control API: /_trailsim/).
#[derive(Parser)]
#[command(name = "trailsim", version, about)]
struct Cli {
    /// Address to serve on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// A running moto server. Without it, trailsim starts one from --moto-server.
    #[arg(long)]
    upstream: Option<String>,
    /// The moto_server executable to start when no --upstream is given.
    #[arg(long, default_value = "target/pyenv/bin/moto_server")]
    moto_server: PathBuf,
    /// Answer LookupEvents without its 2 requests per second limit.
    #[arg(long)]
    no_throttle: bool,
    /// Seconds an event stays out of LookupEvents after it happened (AWS: minutes).
    #[arg(long, default_value_t = 0.0)]
    visibility_delay: f64,
    /// Seconds between log deliveries into trail buckets (AWS: about 300; tests: about 1).
    /// POST /_trailsim/deliver delivers at once.
    #[arg(long, default_value_t = 300.0)]
    delivery_interval: f64,
    /// Seconds between digest files of trails with log file validation (AWS: 3600).
    /// POST /_trailsim/digest writes them at once.
    #[arg(long, default_value_t = 3600.0)]
    digest_interval: f64,
    /// Answer repeated reads (S3 GETs; Describe, Get and List calls) from memory, side by
    /// side, as AWS does; moto answers one request at a time. Only when every write to moto
    /// goes through trailsim: any other call empties the cache.
    #[arg(long, alias = "s3-read-cache")]
    read_cache: bool,
    /// Milliseconds every AWS request waits before it is answered, as a network round trip
    /// would (POST /_trailsim/latency changes it).
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Kept alive (and killed on exit) when trailsim started moto itself.
    let mut _moto = None;
    let upstream = match cli.upstream {
        Some(u) => u,
        None => {
            let (child, url) = start_moto(&cli.moto_server).await?;
            _moto = Some(child);
            url
        }
    };
    let sim = server::Sim::new(Options {
        upstream: upstream.clone(),
        throttle: !cli.no_throttle,
        visibility_delay: Duration::from_secs_f64(cli.visibility_delay.max(0.0)),
        read_cache: cli.read_cache,
        latency: Duration::from_secs_f64(cli.latency_ms.max(0.0) / 1000.0),
    });
    trailsim::timers::spawn(
        sim.clone(),
        Duration::from_secs_f64(cli.delivery_interval.max(0.1)),
        Duration::from_secs_f64(cli.digest_interval.max(1.0)),
    );
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    let addr = listener.local_addr()?;
    println!("trailsim listening on http://{addr} (upstream {upstream})");
    std::io::stdout().flush()?;
    axum::serve(
        listener,
        server::router(sim).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop_signal())
    .await?;
    // Returning drops the moto child trailsim started, which kills it.
    Ok(())
}

/// SIGINT or SIGTERM: a moto started by trailsim must not outlive it.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Starts moto on a free port with TZ=UTC and returns it with its URL.
async fn start_moto(
    server: &PathBuf,
) -> Result<(tokio::process::Child, String), Box<dyn std::error::Error>> {
    let mut child = tokio::process::Command::new(server)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .env("TZ", "UTC")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (install moto, or pass --upstream)",
                server.display()
            )
        })?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(at) = line.find("http://127.0.0.1:") {
            let url = line[at..].trim().to_string();
            // Keep draining moto's output so it never blocks.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((child, url));
        }
    }
    Err("moto exited before reporting its port".into())
}
