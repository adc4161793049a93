//! What the event history poller keeps across restarts: per account and region, the end of
//! the last completed query (the checkpoint); the ids of events already processed, so the
//! look-back overlap never counts one twice; and the recent detections `/status` lists.
//!
//! A poll's result is written in one transaction after its work, so a crash re-processes
//! (and then dedupes) instead of skipping.

use super::{StateError, StateStore, parse};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

pub(super) const SCHEMA_V2: &str = "
    CREATE TABLE IF NOT EXISTS event_checkpoint (
        account    TEXT NOT NULL,
        region     TEXT NOT NULL,
        checkpoint TEXT NOT NULL,
        PRIMARY KEY (account, region)
    );
    CREATE TABLE IF NOT EXISTS seen_event (
        event_id   TEXT PRIMARY KEY,
        event_time TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS seen_event_time ON seen_event (event_time);
    CREATE TABLE IF NOT EXISTS detection (
        event_id   TEXT NOT NULL,
        detection  TEXT NOT NULL,
        event_time TEXT NOT NULL,
        entry      TEXT NOT NULL,
        PRIMARY KEY (event_id, detection)
    );
    PRAGMA user_version = 2;";

/// How many detections the store keeps for `/status`.
pub const KEPT_DETECTIONS: usize = 100;

/// A detection as `/status` shows it (its JSON entry) and when its event happened.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDetection {
    pub event_id: String,
    pub detection: String,
    pub event_time: DateTime<Utc>,
    pub entry: serde_json::Value,
}

/// What one poll of one account and region did.
#[derive(Debug, Default)]
pub struct EventPollResult {
    /// Every event processed (id, event time).
    pub seen: Vec<(String, DateTime<Utc>)>,
    pub detections: Vec<StoredDetection>,
    /// Set when the query ran to its end: the next one starts from here (minus the overlap).
    pub checkpoint: Option<DateTime<Utc>>,
    /// Seen ids of events older than this can no longer come back: they are dropped.
    pub forget_before: Option<DateTime<Utc>>,
}

impl StateStore {
    pub(super) fn db_error(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        |source| StateError::Db {
            path: self.path.clone(),
            source,
        }
    }

    pub fn event_checkpoint(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let text: Option<String> = conn
            .query_row(
                "SELECT checkpoint FROM event_checkpoint WHERE account = ?1 AND region = ?2",
                params![account, region],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db_error())?;
        Ok(text.as_deref().and_then(parse))
    }

    /// Which of `ids` were processed before.
    pub fn seen_events(&self, ids: &[String]) -> Result<Vec<bool>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let mut query = conn
            .prepare_cached("SELECT 1 FROM seen_event WHERE event_id = ?1")
            .map_err(self.db_error())?;
        ids.iter()
            .map(|id| query.exists(params![id]).map_err(self.db_error()))
            .collect()
    }

    pub fn record_event_poll(
        &self,
        account: &str,
        region: &str,
        result: &EventPollResult,
    ) -> Result<(), StateError> {
        let mut conn = self.conn.lock().expect("state store lock poisoned");
        let tx = conn.transaction().map_err(self.db_error())?;
        for (id, time) in &result.seen {
            tx.execute(
                "INSERT OR IGNORE INTO seen_event (event_id, event_time) VALUES (?1, ?2)",
                params![id, time.to_rfc3339()],
            )
            .map_err(self.db_error())?;
        }
        for d in &result.detections {
            tx.execute(
                "INSERT OR REPLACE INTO detection (event_id, detection, event_time, entry)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    d.event_id,
                    d.detection,
                    d.event_time.to_rfc3339(),
                    d.entry.to_string()
                ],
            )
            .map_err(self.db_error())?;
        }
        tx.execute(
            "DELETE FROM detection WHERE rowid NOT IN
               (SELECT rowid FROM detection ORDER BY event_time DESC LIMIT ?1)",
            params![KEPT_DETECTIONS as i64],
        )
        .map_err(self.db_error())?;
        if let Some(c) = result.checkpoint {
            tx.execute(
                "INSERT INTO event_checkpoint (account, region, checkpoint) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account, region) DO UPDATE SET checkpoint = excluded.checkpoint",
                params![account, region, c.to_rfc3339()],
            )
            .map_err(self.db_error())?;
        }
        if let Some(before) = result.forget_before {
            // RFC 3339 in UTC with the same offset sorts as text.
            tx.execute(
                "DELETE FROM seen_event WHERE event_time < ?1",
                params![before.to_rfc3339()],
            )
            .map_err(self.db_error())?;
        }
        tx.commit().map_err(self.db_error())
    }

    /// The kept detections, newest event first.
    pub fn recent_detections(&self) -> Result<Vec<StoredDetection>, StateError> {
        let conn = self.conn.lock().expect("state store lock poisoned");
        let mut query = conn
            .prepare(
                "SELECT event_id, detection, event_time, entry FROM detection
                 ORDER BY event_time DESC, event_id",
            )
            .map_err(self.db_error())?;
        let rows = query
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.db_error())?;
        let mut out = Vec::new();
        for row in rows {
            let (event_id, detection, time, entry) = row.map_err(self.db_error())?;
            out.push(StoredDetection {
                event_id,
                detection,
                event_time: parse(&time).unwrap_or_default(),
                entry: serde_json::from_str(&entry).unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0).unwrap()
    }

    #[test]
    fn checkpoints_seen_ids_and_detections_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            assert_eq!(store.event_checkpoint("1", "us-east-1").unwrap(), None);
            let result = EventPollResult {
                seen: vec![("a".into(), t(1)), ("b".into(), t(5))],
                detections: vec![StoredDetection {
                    event_id: "b".into(),
                    detection: "cloudtrail_stop_logging".into(),
                    event_time: t(5),
                    entry: serde_json::json!({"event_id": "b"}),
                }],
                checkpoint: Some(t(6)),
                forget_before: None,
            };
            store.record_event_poll("1", "us-east-1", &result).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(
            store.event_checkpoint("1", "us-east-1").unwrap(),
            Some(t(6))
        );
        assert_eq!(store.event_checkpoint("1", "eu-west-1").unwrap(), None);
        assert_eq!(
            store.seen_events(&["a".into(), "c".into()]).unwrap(),
            [true, false]
        );
        assert_eq!(store.recent_detections().unwrap()[0].event_id, "b");
        // A failed poll keeps the checkpoint; old ids are forgotten.
        let failed = EventPollResult {
            forget_before: Some(t(2)),
            ..Default::default()
        };
        store.record_event_poll("1", "us-east-1", &failed).unwrap();
        assert_eq!(
            store.event_checkpoint("1", "us-east-1").unwrap(),
            Some(t(6))
        );
        assert_eq!(
            store.seen_events(&["a".into(), "b".into()]).unwrap(),
            [false, true]
        );
    }
}
