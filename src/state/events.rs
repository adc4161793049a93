//! What the event history poller keeps across restarts: per account and region, the end of
//! the last completed query (the checkpoint). Each page's events are claimed as it is read
//! (`claims.rs`); the checkpoint moves only after the whole query, so a crash re-reads (and
//! the claims dedupe) instead of skipping.

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
        let conn = self.conn();
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

    /// Ends an event history query that ran to its end: the next one starts from
    /// `checkpoint` (minus the overlap). Claims older than `forget_before` can no longer come
    /// back from either source and are dropped.
    pub fn finish_event_poll(
        &self,
        account: &str,
        region: &str,
        checkpoint: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db_error())?;
        tx.execute(
            "INSERT INTO event_checkpoint (account, region, checkpoint) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, region) DO UPDATE SET checkpoint = excluded.checkpoint",
            params![account, region, checkpoint.to_rfc3339()],
        )
        .map_err(self.db_error())?;
        // RFC 3339 in UTC with the same offset sorts as text.
        tx.execute(
            "DELETE FROM seen_event WHERE event_time < ?1",
            params![forget_before.to_rfc3339()],
        )
        .map_err(self.db_error())?;
        tx.commit().map_err(self.db_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Claim, Source};
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0).unwrap()
    }

    #[test]
    fn checkpoints_survive_a_reopen_and_old_claims_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let claim = |id: &str, h| Claim {
            event_id: id.into(),
            event_time: t(h),
            detections: vec![],
        };
        {
            let store = StateStore::open(dir.path()).unwrap();
            assert_eq!(store.event_checkpoint("1", "us-east-1").unwrap(), None);
            store
                .claim_events(Source::EventHistory, &[claim("a", 1), claim("b", 5)], t(6))
                .unwrap();
            store
                .finish_event_poll("1", "us-east-1", t(6), t(0))
                .unwrap();
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
        store
            .finish_event_poll("1", "us-east-1", t(7), t(2))
            .unwrap();
        assert_eq!(
            store.seen_events(&["a".into(), "b".into()]).unwrap(),
            [false, true]
        );
    }
}
