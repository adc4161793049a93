//! Names the commit the binary is built from, for `trailwarden --version`.
//!
//! `TRAILWARDEN_COMMIT` wins (a build from a source tarball has no git); otherwise
//! `git rev-parse HEAD`; `unknown` without git. Uncommitted changes are not marked: watching
//! the work tree would rebuild the crate on every edit.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=TRAILWARDEN_COMMIT");
    let commit = std::env::var("TRAILWARDEN_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(commit_from_git)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=TRAILWARDEN_COMMIT={commit}");
}

fn commit_from_git() -> Option<String> {
    let git_dir = git(&["rev-parse", "--git-dir"])?;
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    let git_dir = Path::new(&git_dir);
    println!("cargo::rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let reference = git_dir.join(&branch);
        if reference.exists() {
            println!("cargo::rerun-if-changed={}", reference.display());
        } else {
            println!(
                "cargo::rerun-if-changed={}",
                git_dir.join("packed-refs").display()
            );
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then_some(())?;
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}
