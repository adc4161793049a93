//! The embedded state store in `state_dir`: what must survive a restart.
//!
//! SQLite in WAL mode with full sync: a transaction that returned is on disk, a crash in the
//! middle of one leaves the previous state. It keeps when each finding entered its current
//! status (`since` in `/status`), the event claims and their detections (`claims.rs`), the
//! event history checkpoints (`events.rs`) and the bucket poller's folders, hashes, retries
//! and verdicts (`bucket.rs`).
//!
//! Every call blocks on SQLite (and on the disk sync of a commit): async code goes through
//! [`Store::run`], which runs it on tokio's blocking threads, never on the runtime's own.

mod bucket;
mod claims;
mod events;
pub use crate::integrity::verdict::StoredItem;
pub use bucket::{LogBatch, LogFileRow, UnreadRow};
pub use claims::{Claim, Source, StoredDetection};

use crate::evaluate::{Finding, Status};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const SCHEMA_VERSION: i64 = 4;

/// A finding that has not been evaluated for this long (a deleted trail, a removed policy) is
/// forgotten. Shorter gaps (a region that failed to list for a while) keep its history.
pub const FORGET_AFTER: chrono::Duration = chrono::Duration::days(1);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

pub struct StateStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl StateStore {
    /// Opens (creating if needed) `state_dir/trailwarden.db`.
    pub fn open(state_dir: &Path) -> Result<StateStore, StateError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StateError::Dir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("trailwarden.db");
        let db = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db)?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS finding_since (
                     policy      TEXT NOT NULL,
                     resource    TEXT NOT NULL,
                     -- the last known status, pass or fail, and since when
                     status      TEXT NOT NULL,
                     since       TEXT NOT NULL,
                     -- set while the finding is in error: since when
                     error_since TEXT,
                     last_seen   TEXT NOT NULL,
                     PRIMARY KEY (policy, resource)
                 );
                 PRAGMA user_version = 1;",
            )
            .map_err(db)?;
        }
        if version < 2 {
            conn.execute_batch(events::SCHEMA_V2).map_err(db)?;
        }
        if version < 3 {
            conn.execute_batch(bucket::SCHEMA_V3).map_err(db)?;
        }
        if version < 4 {
            conn.execute_batch(SCHEMA_V4).map_err(db)?;
        }
        Ok(StateStore {
            path: path.clone(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection. A panic while it was held leaves no half-done transaction (an
    /// uncommitted one rolls back when dropped), so the lock is taken over, not refused.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the current findings and returns, for each, since when it has had its current
    /// status. An `error` does not end a pass or fail: fail, error, fail keeps the first
    /// failure's time. Findings unseen for [`FORGET_AFTER`] are forgotten.
    pub fn record_findings(
        &self,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StateError> {
        let db = |source| StateError::Db {
            path: self.path.clone(),
            source,
        };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let mut since = Vec::with_capacity(findings.len());
        for f in findings {
            let stored: Option<(String, String, Option<String>)> = tx
                .query_row(
                    "SELECT status, since, error_since FROM finding_since
                     WHERE policy = ?1 AND resource = ?2",
                    params![f.policy, f.resource],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(db)?;
            let (status, known_since, error_since) = match stored {
                Some((status, s, e)) => (Some(status), parse(&s), e.as_deref().and_then(parse)),
                None => (None, None, None),
            };
            let is_error = f.status == Status::Error;
            let (row_status, row_since, row_error_since, answer) = if is_error {
                let began = error_since.unwrap_or(now);
                // Keep the last known status; remember when the error began.
                let kept_status = status.unwrap_or_else(|| Status::Error.as_str().to_string());
                (kept_status, known_since.unwrap_or(now), Some(began), began)
            } else if status.as_deref() == Some(f.status.as_str()) {
                let s = known_since.unwrap_or(now);
                (f.status.as_str().to_string(), s, None, s)
            } else {
                (f.status.as_str().to_string(), now, None, now)
            };
            tx.execute(
                "INSERT INTO finding_since (policy, resource, status, since, error_since, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (policy, resource) DO UPDATE SET
                     status = excluded.status, since = excluded.since,
                     error_since = excluded.error_since, last_seen = excluded.last_seen",
                params![
                    f.policy,
                    f.resource,
                    row_status,
                    row_since.to_rfc3339(),
                    row_error_since.map(|t| t.to_rfc3339()),
                    now.to_rfc3339()
                ],
            )
            .map_err(db)?;
            since.push(answer);
        }
        tx.execute(
            "DELETE FROM finding_since WHERE last_seen < ?1",
            params![(now - FORGET_AFTER).to_rfc3339()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(since)
    }
}

/// Version 4: claims remember their source, detections whether they were published; reads
/// that failed wait in `unread_object`; log files listed by judged digests in `listed_log`.
const SCHEMA_V4: &str = "
    ALTER TABLE seen_event ADD COLUMN source TEXT;
    ALTER TABLE detection ADD COLUMN published INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE detection ADD COLUMN claimed_at TEXT;
    CREATE INDEX IF NOT EXISTS detection_unpublished ON detection (published);
    CREATE TABLE IF NOT EXISTS unread_object (
        object       TEXT NOT NULL,
        kind         TEXT NOT NULL,
        trail        TEXT NOT NULL,
        account      TEXT NOT NULL,
        region       TEXT NOT NULL,
        size         INTEGER,
        delivered    TEXT,
        retry        TEXT NOT NULL,
        PRIMARY KEY (object, kind, trail)
    );
    CREATE TABLE IF NOT EXISTS listed_log (
        object    TEXT PRIMARY KEY,
        listed_at TEXT NOT NULL
    );
    PRAGMA user_version = 4;";

/// The state store for async code: each call runs on tokio's blocking threads, so a commit's
/// disk sync never stalls the runtime. A panic inside a call comes back as a panic of the
/// caller (the poller's runner counts it), never as a poisoned store.
#[derive(Clone)]
pub struct Store(Arc<StateStore>);

impl Store {
    pub fn new(store: StateStore) -> Store {
        Store(Arc::new(store))
    }

    pub async fn run<R: Send + 'static>(
        &self,
        call: impl FnOnce(&StateStore) -> R + Send + 'static,
    ) -> R {
        let store = self.0.clone();
        match tokio::task::spawn_blocking(move || call(&store)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("state store call cancelled: {e}"),
        }
    }

    /// For code that is not async (start-up, tests).
    pub fn blocking(&self) -> &StateStore {
        &self.0
    }
}

fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use chrono::TimeZone;

    fn finding(status: Status) -> Finding {
        Finding {
            policy: "trail-logging".into(),
            severity: Severity::Critical,
            status,
            account: "111122223333".into(),
            region: "us-east-1".into(),
            resource: "arn:aws:cloudtrail:us-east-1:111122223333:trail/lab".into(),
            resource_name: "lab".into(),
            message: String::new(),
        }
    }

    #[test]
    fn since_survives_reopening_and_resets_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = t0 + chrono::Duration::minutes(5);
        let t2 = t0 + chrono::Duration::minutes(10);
        {
            let store = StateStore::open(dir.path()).unwrap();
            assert_eq!(
                store.record_findings(&[finding(Status::Fail)], t0).unwrap(),
                [t0]
            );
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            store.record_findings(&[finding(Status::Fail)], t1).unwrap(),
            [t0],
            "a failure seen before the restart keeps its first-seen time"
        );
        assert_eq!(
            store.record_findings(&[finding(Status::Pass)], t2).unwrap(),
            [t2]
        );
    }

    #[test]
    fn an_error_does_not_end_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = t0 + chrono::Duration::minutes(1);
        let t2 = t0 + chrono::Duration::minutes(2);
        let t3 = t0 + chrono::Duration::minutes(3);
        store.record_findings(&[finding(Status::Fail)], t0).unwrap();
        assert_eq!(
            store
                .record_findings(&[finding(Status::Error)], t1)
                .unwrap(),
            [t1]
        );
        assert_eq!(
            store
                .record_findings(&[finding(Status::Error)], t2)
                .unwrap(),
            [t1],
            "an error keeps the time it began"
        );
        assert_eq!(
            store.record_findings(&[finding(Status::Fail)], t3).unwrap(),
            [t0]
        );
    }

    #[test]
    fn findings_unseen_for_a_day_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        store.record_findings(&[finding(Status::Fail)], t0).unwrap();
        // Absent for an hour (say a region failed to list): still remembered.
        let t1 = t0 + chrono::Duration::hours(1);
        store.record_findings(&[], t1).unwrap();
        assert_eq!(
            store.record_findings(&[finding(Status::Fail)], t1).unwrap(),
            [t0]
        );
        // Absent for over a day: forgotten.
        let t2 = t1 + chrono::Duration::hours(25);
        store.record_findings(&[], t2).unwrap();
        assert_eq!(
            store.record_findings(&[finding(Status::Fail)], t2).unwrap(),
            [t2]
        );
    }

    #[test]
    fn unwritable_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let err = StateStore::open(&file.join("sub"))
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("plain-file"), "{err}");
    }
}
