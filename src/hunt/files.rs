//! Local files for a hunt: the paths given, folders walked (in name order), each file read
//! and scanned on a blocking thread, several at a time.

use super::report::Report;
use super::{HuntedFile, Hunter};
use crate::config::BucketSettings;
use futures_util::stream::{self, StreamExt};
use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a folder walk takes: CloudTrail's `.json.gz`, and what exports write.
const HUNTED: [&str; 6] = [
    ".json",
    ".json.gz",
    ".jsonl",
    ".jsonl.gz",
    ".ndjson",
    ".ndjson.gz",
];

/// Folders nested deeper than this are not walked (a symlink loop ends here).
const MAX_DEPTH: usize = 32;

/// The files a hunt reads: every path named (whatever its name) and, in each folder, the
/// files with a hunted extension, outside `CloudTrail-Digest` folders (digests hold no
/// records). Paths that cannot be read become problems; files passed over are counted.
pub fn expand(paths: &[PathBuf], report: &mut Report) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => walk(path, 0, &mut files, report),
            Ok(_) => files.push(path.clone()),
            Err(e) => report.unreadable(&path.display().to_string(), &e.to_string()),
        }
    }
    files
}

fn walk(folder: &Path, depth: usize, files: &mut Vec<PathBuf>, report: &mut Report) {
    let name = folder.display().to_string();
    if depth > MAX_DEPTH {
        return report.unreadable(&name, "nested too deep (a symlink loop?): not walked");
    }
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) => return report.unreadable(&name, &e.to_string()),
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => report.unreadable(&name, &e.to_string()),
        }
    }
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                if path.file_name().is_some_and(|n| n == "CloudTrail-Digest") {
                    report.passed_over();
                } else {
                    walk(&path, depth + 1, files, report);
                }
            }
            Ok(_) if is_hunted(&path) => files.push(path),
            Ok(_) => report.passed_over(),
            Err(e) => report.unreadable(&path.display().to_string(), &e.to_string()),
        }
    }
}

fn is_hunted(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase());
    name.is_some_and(|n| HUNTED.iter().any(|ext| n.ends_with(ext)))
}

/// Reads and scans every file of `paths`, `concurrency` at a time, into `report`.
pub async fn hunt(
    paths: &[PathBuf],
    caps: &BucketSettings,
    hunter: Hunter,
    concurrency: usize,
    report: &mut Report,
) {
    let files = expand(paths, report);
    report.listed(files.len() as u64);
    // A local export may be larger than any object the daemon reads: the cap is what a
    // file may inflate to.
    let max_size = caps.max_inflated_size.0;
    let mut scanned = stream::iter(files)
        .map(|path| {
            let hunter = hunter.clone();
            tokio::task::spawn_blocking(move || read(&path, max_size, &hunter))
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(done) = scanned.next().await {
        match done {
            Ok(file) => report.file(file),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("file reading cancelled: {e}"),
        }
    }
}

fn read(path: &Path, max_size: u64, hunter: &Hunter) -> HuntedFile {
    let name = path.display().to_string();
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return failed(name, e.to_string()),
    };
    if size > max_size {
        return failed(
            name,
            format!(
                "{size} bytes, over {} MiB (limit bucket.max_inflated_size)",
                max_size >> 20
            ),
        );
    }
    BUFFERS.with_borrow_mut(|(body, scratch)| {
        body.clear();
        let read = std::fs::File::open(path).and_then(|mut f| f.read_to_end(body));
        let file = match read {
            Ok(_) => HuntedFile {
                name,
                scan: Ok(hunter.scan_with(body, scratch)),
            },
            Err(e) => failed(name, e.to_string()),
        };
        // A large export's bytes are not kept for the rest of the hunt.
        if body.capacity() > KEPT_BUFFER {
            *body = Vec::new();
        }
        if scratch.capacity() > KEPT_BUFFER {
            *scratch = Vec::new();
        }
        file
    })
}

/// What each blocking thread keeps of its buffers between files.
const KEPT_BUFFER: usize = 64 << 20;

thread_local! {
    /// A file's bytes and the scan's scratch, kept by each blocking thread from one file to
    /// the next: a fresh buffer per file is fresh pages for the kernel to clear and fault in
    /// (2 % of a hunt's time in a profile, over the benchmark corpus).
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn failed(name: String, reason: String) -> HuntedFile {
    HuntedFile {
        name,
        scan: Err(reason),
    }
}
