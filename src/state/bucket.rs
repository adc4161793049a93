//! What the bucket poller keeps across restarts: per log or digest folder, the listing
//! cursor (the last key done) and its state (coverage, or the last validated digest); the
//! log files read recently (ETag and SHA-256, so a digest arriving later is checked without
//! reading them again); integrity verdicts found; and the trails' logging transitions that
//! explain chain restarts.

use super::{StateError, StateStore, parse};
use crate::integrity::verdict::{Item, StoredItem};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

pub(super) const SCHEMA_V3: &str = "
    CREATE TABLE IF NOT EXISTS bucket_folder (
        folder     TEXT PRIMARY KEY,
        cursor     TEXT,
        state      TEXT NOT NULL,
        scanned_at TEXT
    );
    CREATE TABLE IF NOT EXISTS log_file (
        object    TEXT PRIMARY KEY,
        etag      TEXT NOT NULL,
        sha256    TEXT,
        trailing  INTEGER NOT NULL DEFAULT 0,
        delivered TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS log_file_delivered ON log_file (delivered);
    CREATE TABLE IF NOT EXISTS integrity_item (
        trail    TEXT NOT NULL,
        account  TEXT NOT NULL,
        region   TEXT NOT NULL,
        class    TEXT NOT NULL,
        object   TEXT NOT NULL,
        time     TEXT,
        until    TEXT,
        detail   TEXT NOT NULL,
        found_at TEXT NOT NULL,
        PRIMARY KEY (trail, class, object)
    );
    CREATE TABLE IF NOT EXISTS trail_transition (
        trail      TEXT NOT NULL,
        time       TEXT NOT NULL,
        event_name TEXT NOT NULL,
        PRIMARY KEY (trail, time, event_name)
    );
    PRAGMA user_version = 3;";

/// A listing folder's saved progress.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderState<T> {
    pub cursor: Option<String>,
    pub state: T,
    pub scanned_at: Option<DateTime<Utc>>,
}

/// A log file read: what its digest will be checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFileRow {
    /// `bucket/key`
    pub object: String,
    pub etag: String,
    pub sha256: Option<String>,
    pub trailing: bool,
    pub delivered: DateTime<Utc>,
}

fn text(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

impl StateStore {
    pub fn folder_state<T: DeserializeOwned>(
        &self,
        folder: &str,
    ) -> Result<Option<FolderState<T>>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let row: Option<(Option<String>, String, Option<String>)> = conn
            .query_row(
                "SELECT cursor, state, scanned_at FROM bucket_folder WHERE folder = ?1",
                params![folder],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.db_error())?;
        // A state this version cannot read starts over rather than stopping the poller.
        Ok(row.and_then(|(cursor, state, scanned)| {
            Some(FolderState {
                cursor,
                state: serde_json::from_str(&state).ok()?,
                scanned_at: scanned.as_deref().and_then(parse),
            })
        }))
    }

    pub fn save_folder<T: Serialize>(
        &self,
        folder: &str,
        s: &FolderState<T>,
    ) -> Result<(), StateError> {
        let state = serde_json::to_string(&s.state).expect("serializable state");
        let conn = self.conn.lock().expect("state store lock poisoned");
        conn.execute(
            "INSERT INTO bucket_folder (folder, cursor, state, scanned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (folder) DO UPDATE SET cursor = excluded.cursor,
               state = excluded.state, scanned_at = excluded.scanned_at",
            params![folder, s.cursor, state, text(s.scanned_at)],
        )
        .map_err(self.db_error())?;
        Ok(())
    }

    pub fn save_log_files(&self, rows: &[LogFileRow]) -> Result<(), StateError> {
        let mut conn = self.conn.lock().expect("state store lock poisoned");
        let tx = conn.transaction().map_err(self.db_error())?;
        for r in rows {
            tx.execute(
                "INSERT OR REPLACE INTO log_file (object, etag, sha256, trailing, delivered)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    r.object,
                    r.etag,
                    r.sha256,
                    r.trailing,
                    r.delivered.to_rfc3339()
                ],
            )
            .map_err(self.db_error())?;
        }
        tx.commit().map_err(self.db_error())
    }

    /// The stored rows of `objects` (`bucket/key`).
    pub fn log_files(&self, objects: &[String]) -> Result<HashMap<String, LogFileRow>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let mut q = conn
            .prepare_cached(
                "SELECT etag, sha256, trailing, delivered FROM log_file WHERE object = ?1",
            )
            .map_err(self.db_error())?;
        let mut out = HashMap::new();
        for o in objects {
            let row: Option<(String, Option<String>, bool, String)> = q
                .query_row(params![o], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
                .map_err(self.db_error())?;
            if let Some((etag, sha256, trailing, delivered)) = row {
                out.insert(
                    o.clone(),
                    LogFileRow {
                        object: o.clone(),
                        etag,
                        sha256,
                        trailing,
                        delivered: parse(&delivered).unwrap_or_default(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Forgets log files delivered before `before` (their digests are long checked).
    pub fn forget_log_files(&self, before: DateTime<Utc>) -> Result<(), StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        conn.execute(
            "DELETE FROM log_file WHERE delivered < ?1",
            params![before.to_rfc3339()],
        )
        .map_err(self.db_error())?;
        Ok(())
    }

    /// Stores verdicts of a chain; returns those not stored before (each counted once).
    pub fn record_items(
        &self,
        trail: &str,
        account: &str,
        region: &str,
        items: &[Item],
        now: DateTime<Utc>,
    ) -> Result<Vec<Item>, StateError> {
        let mut conn = self.conn.lock().expect("state store lock poisoned");
        let tx = conn.transaction().map_err(self.db_error())?;
        let mut new = Vec::new();
        for i in items {
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO integrity_item
                       (trail, account, region, class, object, time, until, detail, found_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        trail,
                        account,
                        region,
                        i.class.as_str(),
                        i.object,
                        text(i.time),
                        text(i.until),
                        i.detail,
                        now.to_rfc3339()
                    ],
                )
                .map_err(self.db_error())?;
            if n > 0 {
                new.push(i.clone());
            }
        }
        tx.commit().map_err(self.db_error())?;
        Ok(new)
    }

    /// Verdicts other than valid ones found since `since`, newest first.
    pub fn integrity_items(&self, since: DateTime<Utc>) -> Result<Vec<StoredItem>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let mut q = conn
            .prepare(
                "SELECT trail, account, region, class, object, time, until, detail, found_at
                 FROM integrity_item
                 WHERE found_at >= ?1 AND class NOT IN ('valid_digest', 'valid_log')
                 ORDER BY found_at DESC, time DESC",
            )
            .map_err(self.db_error())?;
        let rows = q
            .query_map(params![since.to_rfc3339()], |r| {
                let t = |s: Option<String>| s.as_deref().and_then(parse);
                Ok(StoredItem {
                    trail: r.get(0)?,
                    account: r.get(1)?,
                    region: r.get(2)?,
                    class: r.get(3)?,
                    object: r.get(4)?,
                    time: t(r.get(5)?),
                    until: t(r.get(6)?),
                    detail: r.get(7)?,
                    found_at: t(r.get(8)?).unwrap_or_default(),
                })
            })
            .map_err(self.db_error())?;
        rows.collect::<Result<_, _>>().map_err(self.db_error())
    }

    pub fn record_transitions(
        &self,
        list: &[(String, DateTime<Utc>, String)],
    ) -> Result<(), StateError> {
        let mut conn = self.conn.lock().expect("state store lock poisoned");
        let tx = conn.transaction().map_err(self.db_error())?;
        for (trail, time, name) in list {
            tx.execute(
                "INSERT OR IGNORE INTO trail_transition (trail, time, event_name) VALUES (?1, ?2, ?3)",
                params![trail, time.to_rfc3339(), name],
            )
            .map_err(self.db_error())?;
        }
        tx.commit().map_err(self.db_error())
    }

    /// Transitions recorded for a trail known by any of `names` (name, ARN).
    pub fn transitions(
        &self,
        names: &[&str],
    ) -> Result<Vec<crate::integrity::chain::Transition>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let mut q = conn
            .prepare_cached("SELECT time, event_name FROM trail_transition WHERE trail = ?1")
            .map_err(self.db_error())?;
        let mut out = Vec::new();
        for n in names {
            let rows = q
                .query_map(params![n], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(self.db_error())?;
            for row in rows {
                let (time, event_name) = row.map_err(self.db_error())?;
                if let Some(time) = parse(&time) {
                    out.push(crate::integrity::chain::Transition { time, event_name });
                }
            }
        }
        out.sort_by_key(|t| t.time);
        Ok(out)
    }

    /// Marks events as processed; returns, for each, whether it is new (not processed before
    /// by either event history or the bucket).
    pub fn claim_events(&self, ids: &[(String, DateTime<Utc>)]) -> Result<Vec<bool>, StateError> {
        let mut conn = self.conn.lock().expect("state store lock poisoned");
        let tx = conn.transaction().map_err(self.db_error())?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, time) in ids {
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO seen_event (event_id, event_time) VALUES (?1, ?2)",
                    params![id, time.to_rfc3339()],
                )
                .map_err(self.db_error())?;
            out.push(n > 0);
        }
        tx.commit().map_err(self.db_error())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::verdict::{Class, Kind};
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0).unwrap()
    }

    #[test]
    fn cursors_hashes_verdicts_and_claims_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let item = Item {
            class: Class::Failure(Kind::MissingDigest),
            object: "k".into(),
            time: Some(t(1)),
            until: None,
            detail: "not found".into(),
        };
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.save_folder(
                "b/AWSLogs/1/CloudTrail/us-east-1/",
                &FolderState {
                    cursor: Some("k1".into()),
                    state: vec![1, 2],
                    scanned_at: Some(t(2)),
                },
            )
            .unwrap();
            s.save_log_files(&[LogFileRow {
                object: "b/k1".into(),
                etag: "e".into(),
                sha256: Some("h".into()),
                trailing: false,
                delivered: t(3),
            }])
            .unwrap();
            assert_eq!(
                s.record_items("lab", "1", "r", std::slice::from_ref(&item), t(4))
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(s.claim_events(&[("e1".into(), t(1))]).unwrap(), [true]);
        }
        let s = StateStore::open(dir.path()).unwrap();
        let f: FolderState<Vec<i32>> = s
            .folder_state("b/AWSLogs/1/CloudTrail/us-east-1/")
            .unwrap()
            .unwrap();
        assert_eq!(
            (f.cursor.as_deref(), f.state, f.scanned_at),
            (Some("k1"), vec![1, 2], Some(t(2)))
        );
        assert_eq!(
            s.log_files(&["b/k1".into()]).unwrap()["b/k1"]
                .sha256
                .as_deref(),
            Some("h")
        );
        // The same verdict again is not new: counted once.
        assert!(
            s.record_items("lab", "1", "r", &[item], t(5))
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.integrity_items(t(0)).unwrap()[0].class, "missing_digest");
        assert_eq!(
            s.claim_events(&[("e1".into(), t(1)), ("e2".into(), t(1))])
                .unwrap(),
            [false, true]
        );
        s.forget_log_files(t(4)).unwrap();
        assert!(s.log_files(&["b/k1".into()]).unwrap().is_empty());
    }
}
