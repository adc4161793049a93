//! Whether the daemon is alive: its scheduler ticks, and no poller is stuck. A poller that
//! has been inside one run for `stall_after` without a sign of progress (a page listed, an
//! object read, a region done) is stuck: `/healthz` says so, and a supervisor restarts the
//! process. A slow poll that keeps making progress is not stuck.

use std::sync::atomic::{AtomicI64, Ordering};

/// One poller's progress, written by its runs and read by `/healthz`.
#[derive(Debug)]
pub struct Progress {
    pub name: &'static str,
    /// Unix seconds when the run going on began; 0 when idle.
    running_since: AtomicI64,
    /// Unix seconds of the last sign of progress.
    last_progress: AtomicI64,
}

impl Progress {
    pub fn new(name: &'static str) -> Progress {
        Progress {
            name,
            running_since: AtomicI64::new(0),
            last_progress: AtomicI64::new(0),
        }
    }

    pub fn started(&self, now: i64) {
        self.running_since.store(now, Ordering::Relaxed);
        self.last_progress.store(now, Ordering::Relaxed);
    }

    pub fn tick(&self, now: i64) {
        self.last_progress.store(now, Ordering::Relaxed);
    }

    pub fn finished(&self, now: i64) {
        self.running_since.store(0, Ordering::Relaxed);
        self.last_progress.store(now, Ordering::Relaxed);
    }

    pub fn read(&self) -> (i64, i64) {
        (
            self.running_since.load(Ordering::Relaxed),
            self.last_progress.load(Ordering::Relaxed),
        )
    }
}

/// Why the poller is stuck, if it is: `(running_since, last_progress)` as [`Progress::read`]
/// gives them, in Unix seconds.
pub fn stalled(
    name: &str,
    (running_since, last_progress): (i64, i64),
    now: i64,
    stall_after: i64,
) -> Option<String> {
    if running_since == 0 {
        return None;
    }
    let quiet = now - last_progress;
    (quiet > stall_after).then(|| {
        format!(
            "poller {name} has made no progress for {quiet}s (one run going on for {}s)",
            now - running_since
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_only_when_a_run_goes_on_without_progress() {
        let cases = [
            ("idle for an hour", (0, 100), 3700, None),
            ("running, progress just now", (100, 3690), 3700, None),
            ("running long, progress recent", (100, 3650), 3700, None),
            (
                "running, quiet past the limit",
                (100, 3000),
                3700,
                Some("700s"),
            ),
        ];
        for (name, progress, now, expected) in cases {
            let got = stalled("bucket", progress, now, 600);
            match expected {
                None => assert_eq!(got, None, "{name}"),
                Some(text) => assert!(got.unwrap().contains(text), "{name}"),
            }
        }
        let p = Progress::new("events");
        p.started(10);
        p.tick(20);
        assert_eq!(p.read(), (10, 20));
        p.finished(30);
        assert_eq!(stalled("events", p.read(), 10_000, 600), None);
    }
}
