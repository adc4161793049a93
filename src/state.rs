//! The embedded state store in `state_dir`: what must survive a restart.
//!
//! SQLite in WAL mode with full sync: a transaction that returned is on disk, a crash in the
//! middle of one leaves the previous state. Today it keeps when each finding entered its
//! current status (`since` in `/status`); event checkpoints and bucket cursors will join it.

use crate::evaluate::Finding;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const SCHEMA_VERSION: i64 = 1;

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
                     policy   TEXT NOT NULL,
                     resource TEXT NOT NULL,
                     status   TEXT NOT NULL,
                     since    TEXT NOT NULL,
                     PRIMARY KEY (policy, resource)
                 );
                 PRAGMA user_version = 1;",
            )
            .map_err(db)?;
        }
        Ok(StateStore {
            path: path.clone(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the current findings and returns, for each, since when it has had its current
    /// status. Findings that no longer exist (a deleted trail, a removed policy) are forgotten.
    pub fn record_findings(
        &self,
        findings: &[Finding],
        now: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StateError> {
        let db = |source| StateError::Db {
            path: self.path.clone(),
            source,
        };
        let mut conn = self.conn.lock().expect("state store lock poisoned");
        let tx = conn.transaction().map_err(db)?;
        let mut since = Vec::with_capacity(findings.len());
        let mut current = BTreeSet::new();
        for f in findings {
            current.insert((f.policy.clone(), f.resource.clone()));
            let stored: Option<(String, String)> = tx
                .query_row(
                    "SELECT status, since FROM finding_since WHERE policy = ?1 AND resource = ?2",
                    params![f.policy, f.resource],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            let kept = stored
                .filter(|(status, _)| status == f.status.as_str())
                .and_then(|(_, s)| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc));
            let t = match kept {
                Some(t) => t,
                None => {
                    tx.execute(
                        "INSERT INTO finding_since (policy, resource, status, since)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (policy, resource)
                         DO UPDATE SET status = excluded.status, since = excluded.since",
                        params![f.policy, f.resource, f.status.as_str(), now.to_rfc3339()],
                    )
                    .map_err(db)?;
                    now
                }
            };
            since.push(t);
        }
        let stored: Vec<(String, String)> = {
            let mut stmt = tx
                .prepare("SELECT policy, resource FROM finding_since")
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        for key in stored.into_iter().filter(|k| !current.contains(k)) {
            tx.execute(
                "DELETE FROM finding_since WHERE policy = ?1 AND resource = ?2",
                params![key.0, key.1],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use crate::evaluate::Status;
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
    fn vanished_findings_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        store.record_findings(&[finding(Status::Fail)], t0).unwrap();
        store.record_findings(&[], t0).unwrap();
        let t1 = t0 + chrono::Duration::hours(1);
        assert_eq!(
            store.record_findings(&[finding(Status::Fail)], t1).unwrap(),
            [t1]
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
