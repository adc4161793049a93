//! What the bucket poller keeps across restarts: per log or digest folder, its state (the
//! cursor, coverage, the last digest judged: `plan::log_folder`, `plan::digest_folder`); the
//! log files read recently (ETag and SHA-256, so a digest arriving later is checked without
//! reading them again) and which of them judged digests listed; the reads that failed and
//! wait for their retry; integrity verdicts found; and the trails' logging transitions that
//! explain chain restarts.

use super::claims::{self, Claim, Source};
use super::{StateError, StateStore, parse};
use crate::evaluate::log_records::FoundTransition;
use crate::integrity::verdict::{Item, StoredItem};
use crate::plan::retry::Retry;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};

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

/// An object whose read failed, waiting for its retry.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadRow {
    /// `bucket/key`
    pub object: String,
    /// `log`: its records wait to be read. `digest`: a trail's chain waits at it (the digest,
    /// or a log file it lists).
    pub kind: String,
    /// The trail whose chain waits (`digest`); empty for `log`.
    pub trail: String,
    pub account: String,
    pub region: String,
    /// As listed: what reading it will hold in memory.
    pub size: Option<i64>,
    pub delivered: Option<DateTime<Utc>>,
    pub retry: Retry,
}

/// A verdict with the chain it is filed under: (trail, account, region, verdict).
pub type FiledItem = (String, String, String, Item);

/// What one page of a log folder's pass did, written in one transaction: the events claimed
/// with their detections, the files read, the reads that failed or finally succeeded, the
/// transitions found, the verdicts on the files, and the folder's new cursor. The cursor
/// never moves without the work it covers.
#[derive(Debug, Default)]
pub struct LogBatch {
    pub claims: Vec<Claim>,
    pub files: Vec<LogFileRow>,
    pub failed: Vec<UnreadRow>,
    /// Objects (`bucket/key`) read at last: their `log` retry goes.
    pub cleared: Vec<String>,
    pub transitions: Vec<FoundTransition>,
    pub items: Vec<FiledItem>,
    /// (folder id, its state as JSON)
    pub folder: Option<(String, String)>,
    /// Per claim, whether its event asks for a re-collection of what it touched (not
    /// stored: the caller's, for after the commit).
    pub recollect: Vec<bool>,
}

fn text(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

impl StateStore {
    /// A folder's saved state; `None` when there is none, or when this version cannot read
    /// it (the folder starts over rather than stopping the poller).
    pub fn folder_state<T: DeserializeOwned>(&self, folder: &str) -> Result<Option<T>, StateError> {
        let conn = self.conn();
        let row: Option<String> = conn
            .query_row(
                "SELECT state FROM bucket_folder WHERE folder = ?1",
                params![folder],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db_error())?;
        Ok(row.and_then(|state| serde_json::from_str(&state).ok()))
    }

    pub fn save_folder<T: Serialize>(&self, folder: &str, state: &T) -> Result<(), StateError> {
        let state = serde_json::to_string(state).expect("serializable state");
        let conn = self.conn();
        save_folder_in(&conn, folder, &state).map_err(self.db_error())
    }

    /// Writes one page of a log folder's pass (see [`LogBatch`]); returns, per claim, whether
    /// it was new, and the verdicts not stored before.
    pub fn record_log_batch(
        &self,
        source: Source,
        batch: &LogBatch,
        now: DateTime<Utc>,
    ) -> Result<(Vec<bool>, Vec<FiledItem>), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db_error())?;
        let db = self.db_error();
        let fresh = claims::claim(&tx, source, &batch.claims, now).map_err(&db)?;
        for r in &batch.files {
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
            .map_err(&db)?;
        }
        for u in &batch.failed {
            save_unread_in(&tx, u).map_err(&db)?;
        }
        for object in &batch.cleared {
            tx.execute(
                "DELETE FROM unread_object WHERE object = ?1 AND kind = 'log'",
                params![object],
            )
            .map_err(&db)?;
        }
        for t in &batch.transitions {
            tx.execute(
                "INSERT OR IGNORE INTO trail_transition (trail, time, event_name) VALUES (?1, ?2, ?3)",
                params![t.trail, t.time.to_rfc3339(), t.event_name],
            )
            .map_err(&db)?;
        }
        let mut new = Vec::new();
        for (trail, account, region, item) in &batch.items {
            if insert_item(&tx, trail, account, region, item, now).map_err(&db)? {
                new.push((trail.clone(), account.clone(), region.clone(), item.clone()));
            }
        }
        if let Some((id, state)) = &batch.folder {
            save_folder_in(&tx, id, state).map_err(&db)?;
        }
        tx.commit().map_err(&db)?;
        Ok((fresh, new))
    }

    /// Writes a digest walk: its verdicts, the log files its digests listed, the chain's
    /// retry (set when it is held, cleared when it is not) and the folder's new state, in one
    /// transaction. Returns the verdicts not stored before (each counted once).
    #[allow(clippy::too_many_arguments)]
    pub fn record_walk(
        &self,
        (trail, account, region): (&str, &str, &str),
        items: &[Item],
        listed: &[String],
        hold: Option<&UnreadRow>,
        folder: (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<Vec<Item>, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db_error())?;
        let db = self.db_error();
        let mut new = Vec::new();
        for i in items {
            if insert_item(&tx, trail, account, region, i, now).map_err(&db)? {
                new.push(i.clone());
            }
        }
        for object in listed {
            tx.execute(
                "INSERT OR IGNORE INTO listed_log (object, listed_at) VALUES (?1, ?2)",
                params![object, now.to_rfc3339()],
            )
            .map_err(&db)?;
        }
        tx.execute(
            "DELETE FROM unread_object WHERE kind = 'digest' AND trail = ?1 AND account = ?2 AND region = ?3",
            params![trail, account, region],
        )
        .map_err(&db)?;
        if let Some(u) = hold {
            save_unread_in(&tx, u).map_err(&db)?;
        }
        save_folder_in(&tx, folder.0, folder.1).map_err(&db)?;
        tx.commit().map_err(&db)?;
        Ok(new)
    }

    /// Which of `objects` (`bucket/key`) a judged digest listed.
    pub fn listed_logs(&self, objects: &[String]) -> Result<HashSet<String>, StateError> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached("SELECT 1 FROM listed_log WHERE object = ?1")
            .map_err(self.db_error())?;
        let mut out = HashSet::new();
        for o in objects {
            if q.exists(params![o]).map_err(self.db_error())? {
                out.insert(o.clone());
            }
        }
        Ok(out)
    }

    /// The retries waiting, of one kind (`log`, `digest`) or all.
    pub fn unread_objects(&self, kind: Option<&str>) -> Result<Vec<UnreadRow>, StateError> {
        let conn = self.conn();
        let mut q = conn
            .prepare(
                "SELECT object, kind, trail, account, region, size, delivered, retry
                 FROM unread_object WHERE ?1 IS NULL OR kind = ?1 ORDER BY object",
            )
            .map_err(self.db_error())?;
        let rows = q
            .query_map(params![kind], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(self.db_error())?;
        let mut out = Vec::new();
        for row in rows {
            let (object, kind, trail, account, region, size, delivered, retry) =
                row.map_err(self.db_error())?;
            // A retry this version cannot read is tried again at once.
            let retry = serde_json::from_str(&retry).unwrap_or(Retry {
                first_failed: Utc::now(),
                attempts: 0,
                next_attempt: Utc::now(),
                reason: "unknown".into(),
            });
            out.push(UnreadRow {
                object,
                kind,
                trail,
                account,
                region,
                size,
                delivered: delivered.as_deref().and_then(parse),
                retry,
            });
        }
        Ok(out)
    }

    /// The stored rows of `objects` (`bucket/key`).
    pub fn log_files(&self, objects: &[String]) -> Result<HashMap<String, LogFileRow>, StateError> {
        let conn = self.conn();
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

    /// Forgets log files delivered before `before` (read, and their digests long checked),
    /// and which digests listed them.
    pub fn forget_log_files(&self, before: DateTime<Utc>) -> Result<(), StateError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM log_file WHERE delivered < ?1",
            params![before.to_rfc3339()],
        )
        .map_err(self.db_error())?;
        conn.execute(
            "DELETE FROM listed_log WHERE listed_at < ?1",
            params![before.to_rfc3339()],
        )
        .map_err(self.db_error())?;
        Ok(())
    }

    /// Verdicts other than valid ones found since `since`, newest first.
    pub fn integrity_items(&self, since: DateTime<Utc>) -> Result<Vec<StoredItem>, StateError> {
        let conn = self.conn();
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

    /// Records transitions found outside a log file batch (event history).
    pub fn record_transitions(&self, list: &[FoundTransition]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db_error())?;
        for t in list {
            tx.execute(
                "INSERT OR IGNORE INTO trail_transition (trail, time, event_name) VALUES (?1, ?2, ?3)",
                params![t.trail, t.time.to_rfc3339(), t.event_name],
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
        let conn = self.conn();
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
}

fn save_folder_in(conn: &rusqlite::Connection, folder: &str, state: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO bucket_folder (folder, cursor, state, scanned_at) VALUES (?1, NULL, ?2, NULL)
         ON CONFLICT (folder) DO UPDATE SET state = excluded.state",
        params![folder, state],
    )?;
    Ok(())
}

fn save_unread_in(conn: &rusqlite::Connection, u: &UnreadRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO unread_object
           (object, kind, trail, account, region, size, delivered, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            u.object,
            u.kind,
            u.trail,
            u.account,
            u.region,
            u.size,
            text(u.delivered),
            serde_json::to_string(&u.retry).expect("serializable retry")
        ],
    )?;
    Ok(())
}

/// Stores a verdict unless it is known; returns whether it is new.
fn insert_item(
    conn: &rusqlite::Connection,
    trail: &str,
    account: &str,
    region: &str,
    i: &Item,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
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
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::verdict::{Class, Kind};
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0).unwrap()
    }

    fn unread(object: &str, kind: &str, trail: &str, attempts: u32) -> UnreadRow {
        UnreadRow {
            object: object.into(),
            kind: kind.into(),
            trail: trail.into(),
            account: "1".into(),
            region: "r".into(),
            size: Some(10),
            delivered: Some(t(1)),
            retry: Retry {
                first_failed: t(1),
                attempts,
                next_attempt: t(2),
                reason: "AccessDenied".into(),
            },
        }
    }

    #[test]
    fn a_batch_is_all_or_nothing_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let item = Item {
            class: Class::Failure(Kind::MalformedLog),
            object: "k".into(),
            time: Some(t(1)),
            until: None,
            detail: "not a CloudTrail log file".into(),
        };
        {
            let s = StateStore::open(dir.path()).unwrap();
            let batch = LogBatch {
                claims: vec![Claim {
                    event_id: "e1".into(),
                    event_time: t(1),
                    detections: vec![],
                }],
                files: vec![LogFileRow {
                    object: "b/k1".into(),
                    etag: "e".into(),
                    sha256: Some("h".into()),
                    trailing: false,
                    delivered: t(3),
                }],
                failed: vec![unread("b/k2", "log", "", 1)],
                items: vec![("lab".into(), "1".into(), "r".into(), item.clone())],
                folder: Some(("b/AWSLogs/1/CloudTrail/r/".into(), "[1,2]".into())),
                ..Default::default()
            };
            let (fresh, new) = s.record_log_batch(Source::Bucket, &batch, t(4)).unwrap();
            assert_eq!((fresh, new.len()), (vec![true], 1));
            // The same batch again (a pass redone after a crash): nothing new.
            let (fresh, new) = s.record_log_batch(Source::Bucket, &batch, t(5)).unwrap();
            assert_eq!((fresh, new.len()), (vec![false], 0));
        }
        let s = StateStore::open(dir.path()).unwrap();
        let f: Vec<i32> = s
            .folder_state("b/AWSLogs/1/CloudTrail/r/")
            .unwrap()
            .unwrap();
        assert_eq!(f, [1, 2]);
        assert_eq!(
            s.log_files(&["b/k1".into()]).unwrap()["b/k1"]
                .sha256
                .as_deref(),
            Some("h")
        );
        assert_eq!(s.unread_objects(Some("log")).unwrap()[0].object, "b/k2");
        assert_eq!(s.integrity_items(t(0)).unwrap()[0].class, "malformed_log");
        // Read at last: its retry goes.
        let done = LogBatch {
            cleared: vec!["b/k2".into()],
            ..Default::default()
        };
        s.record_log_batch(Source::Bucket, &done, t(6)).unwrap();
        assert!(s.unread_objects(None).unwrap().is_empty());
        s.forget_log_files(t(4)).unwrap();
        assert!(s.log_files(&["b/k1".into()]).unwrap().is_empty());
    }

    #[test]
    fn a_walk_sets_or_clears_its_chain_retry_and_remembers_what_was_listed() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let held = unread("b/d2", "digest", "lab", 1);
        s.record_walk(
            ("lab", "1", "r"),
            &[],
            &["b/l1".into()],
            Some(&held),
            ("f", "{}"),
            t(3),
        )
        .unwrap();
        // A log retry of the same object is another purpose: both wait.
        s.record_log_batch(
            Source::Bucket,
            &LogBatch {
                failed: vec![unread("b/d2", "log", "", 1)],
                ..Default::default()
            },
            t(3),
        )
        .unwrap();
        assert_eq!(s.unread_objects(None).unwrap().len(), 2);
        s.record_walk(
            ("lab", "1", "r"),
            &[],
            &["b/l2".into()],
            None,
            ("f", "{}"),
            t(4),
        )
        .unwrap();
        let left = s.unread_objects(None).unwrap();
        assert_eq!((left.len(), left[0].kind.as_str()), (1, "log"));
        assert_eq!(
            s.listed_logs(&["b/l1".into(), "b/l2".into(), "b/l3".into()])
                .unwrap()
                .len(),
            2
        );
    }
}
