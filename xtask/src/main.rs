//! Build-time tasks (matklad's xtask pattern): `cargo xtask assets [DIR]`.
//!
//! Renders from the CLI's own clap definition (`trailwarden::cli`) what the package ships
//! besides the binary, so that none of it is written by hand or can drift from `--help`:
//! - `man/trailwarden.1.gz` and a page per subcommand (`trailwarden-run.1.gz`, ...);
//! - `completions/trailwarden.bash`, `_trailwarden` (zsh), `trailwarden.fish`;
//! - `trailwarden.service`: `deploy/systemd/trailwarden.service` with the binary where the
//!   package puts it (`/usr/bin`, not `/usr/local/bin`).
//!
//! DIR defaults to `target/assets`; `Cargo.toml`'s `[package.metadata.deb]` takes them from there.

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use flate2::{Compression, GzBuilder};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask assets [DIR]   (DIR: target/assets)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["assets"] => assets(&workspace_root().join("target/assets")),
        ["assets", dir] => assets(Path::new(dir)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

type Written = std::io::Result<Vec<PathBuf>>;

fn assets(dir: &Path) -> Written {
    let mut written = man_pages(&dir.join("man"))?;
    written.extend(completions(&dir.join("completions"))?);
    written.push(packaged_unit(dir)?);
    Ok(written)
}

/// One page for the command and one per subcommand, gzipped as Debian policy wants them
/// (`gzip -9n`: no name, no time, so the same input gives the same bytes).
fn man_pages(dir: &Path) -> Written {
    std::fs::create_dir_all(dir)?;
    let mut command = trailwarden::cli::Cli::command();
    // Building propagates the global options (--log-format) into each subcommand's page.
    command.build();
    let mut written = vec![write_gzipped(
        &dir.join("trailwarden.1.gz"),
        &main_page(command.clone())?,
    )?];
    for sub in command.get_subcommands() {
        let name = format!("trailwarden-{}", sub.get_name());
        let page = Man::new(sub.clone().name(name.clone()).display_name(name.clone()))
            .manual("trailwarden manual")
            .source(format!("trailwarden {}", trailwarden::cli::VERSION));
        let mut roff = Vec::new();
        page.render(&mut roff)?;
        written.push(write_gzipped(&dir.join(format!("{name}.1.gz")), &roff)?);
    }
    Ok(written)
}

/// clap's sections, then what clap cannot know: files, environment, exit status.
fn main_page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let page = Man::new(command).manual("trailwarden manual");
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    page.render_subcommands_section(&mut out)?;
    let mut roff = Roff::new();
    section(&mut roff, "FILES", FILES);
    section(&mut roff, "ENVIRONMENT", ENVIRONMENT);
    section(&mut roff, "EXIT STATUS", EXIT_STATUS);
    section(&mut roff, "SEE ALSO", SEE_ALSO);
    roff.to_writer(&mut out)?;
    page.render_version_section(&mut out)?;
    Ok(out)
}

const FILES: &[(&str, &str)] = &[
    (
        "/etc/trailwarden/trailwarden.yaml",
        "The configuration: regions, schedules, listener, state directory. policies.yaml and \
         detections.yaml beside it hold the policies and the tamper detections. \
         `trailwarden validate-config` checks all three.",
    ),
    (
        "/etc/trailwarden/environment",
        "Optional environment for the systemd unit (AWS_PROFILE, AWS_REGION, HTTPS_PROXY, RUST_LOG).",
    ),
    (
        "/var/lib/trailwarden",
        "State kept across restarts and upgrades: event history checkpoints, claimed events and \
         their detections, digest anchors, unread objects.",
    ),
    (
        "/usr/lib/systemd/system/trailwarden.service",
        "The hardened unit: an ephemeral user that can write only its state directory. \
         `systemctl reload` checks the configuration, then reloads it.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "TRAILWARDEN_CONFIG",
        "The configuration file, when --config is not given.",
    ),
    (
        "RUST_LOG",
        "Log filter (for example `info` or `trailwarden=debug`); wins over log_level in the configuration.",
    ),
    (
        "AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ...",
        "The AWS SDK's default credential and region chain.",
    ),
    ("HTTPS_PROXY, NO_PROXY", "A proxy for the AWS API calls."),
];

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success; for check, every policy passes."),
    (
        "1",
        "check: a policy fails. validate-logs: an item is invalid, missing or unverifiable. \
         hunt: a detection or Sigma rule matched. run: the daemon stopped on an error.",
    ),
    (
        "2",
        "The configuration is bad (each problem named as file:line:column); for check, a policy \
         is error or pending; for validate-logs, the trail cannot be read; for hunt, nothing \
         matched and a file, record or listing could not be read.",
    ),
];

const SEE_ALSO: &[(&str, &str)] = &[(
    "trailwarden-run(1), trailwarden-check(1), trailwarden-validate-config(1), \
     trailwarden-validate-logs(1), trailwarden-hunt(1), systemctl(1)",
    "README.md and docs/runbooks.md in /usr/share/doc/trailwarden.",
)];

fn section(roff: &mut Roff, title: &str, items: &[(&str, &str)]) {
    roff.control("SH", [title]);
    for (term, text) in items {
        roff.control("TP", []);
        roff.text([bold(*term)]);
        roff.text([roman(*text)]);
    }
}

fn completions(dir: &Path) -> Written {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = trailwarden::cli::Cli::command();
        written.push(clap_complete::generate_to(
            shell,
            &mut command,
            "trailwarden",
            dir,
        )?);
    }
    Ok(written)
}

fn packaged_unit(dir: &Path) -> std::io::Result<PathBuf> {
    let source = workspace_root().join("deploy/systemd/trailwarden.service");
    let unit = std::fs::read_to_string(&source)?;
    if !unit.contains("/usr/local/bin/trailwarden") {
        return Err(std::io::Error::other(format!(
            "{}: no /usr/local/bin/trailwarden to point at /usr/bin",
            source.display()
        )));
    }
    let path = dir.join("trailwarden.service");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/trailwarden", "/usr/bin/trailwarden"),
    )?;
    Ok(path)
}

fn write_gzipped(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let file = std::fs::File::create(path)?;
    let mut gz = GzBuilder::new().mtime(0).write(file, Compression::best());
    gz.write_all(bytes)?;
    gz.finish()?.sync_all()?;
    Ok(path.to_path_buf())
}
