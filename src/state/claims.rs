//! Exactly once, one primitive for every source: an event id is claimed, and the detections it
//! matched are stored, in the same transaction as the work it came from, before anything is
//! published. Publishing (metrics, log line, `/status`) then marks the detections published;
//! what a crash left unpublished is published at the next start.

use super::{StateError, StateStore, parse};
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

/// How many detections the store keeps (`/status` shows the newest events of them); the ones
/// not published yet are always kept.
pub const KEPT_DETECTIONS: usize = 1000;

/// Who saw the event first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    EventHistory,
    Bucket,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::EventHistory => "event_history",
            Source::Bucket => "bucket",
        }
    }
}

/// A detection as `/status` shows it (its JSON entry) and when its event happened.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDetection {
    pub event_id: String,
    pub detection: String,
    pub event_time: DateTime<Utc>,
    pub entry: serde_json::Value,
}

/// One event to claim, with every detection it matched (none for an event history record
/// that matched nothing: it is claimed so the overlap does not process it again).
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub detections: Vec<StoredDetection>,
}

/// Claims `claims` inside `tx`: for each, whether it is new. A new claim's detections are
/// stored unpublished.
pub(super) fn claim(
    tx: &Transaction<'_>,
    source: Source,
    claims: &[Claim],
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<bool>> {
    let mut fresh = Vec::with_capacity(claims.len());
    for c in claims {
        let n = tx.execute(
            "INSERT OR IGNORE INTO seen_event (event_id, event_time, source) VALUES (?1, ?2, ?3)",
            params![c.event_id, c.event_time.to_rfc3339(), source.as_str()],
        )?;
        fresh.push(n > 0);
        if n == 0 {
            continue;
        }
        for d in &c.detections {
            tx.execute(
                "INSERT OR IGNORE INTO detection
                   (event_id, detection, event_time, entry, published, claimed_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![
                    d.event_id,
                    d.detection,
                    d.event_time.to_rfc3339(),
                    d.entry.to_string(),
                    now.to_rfc3339()
                ],
            )?;
        }
    }
    // Published detections beyond the newest KEPT_DETECTIONS go; unpublished ones stay.
    tx.execute(
        "DELETE FROM detection WHERE published = 1 AND rowid NOT IN
           (SELECT rowid FROM detection ORDER BY event_time DESC LIMIT ?1)",
        params![KEPT_DETECTIONS as i64],
    )?;
    Ok(fresh)
}

impl StateStore {
    /// Claims events in a transaction of their own (event history, one page at a time).
    pub fn claim_events(
        &self,
        source: Source,
        claims: &[Claim],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db_error())?;
        let fresh = claim(&tx, source, claims, now).map_err(self.db_error())?;
        tx.commit().map_err(self.db_error())?;
        Ok(fresh)
    }

    /// Which of `ids` were claimed before.
    pub fn seen_events(&self, ids: &[String]) -> Result<Vec<bool>, StateError> {
        let conn = self.conn();
        let mut query = conn
            .prepare_cached("SELECT 1 FROM seen_event WHERE event_id = ?1")
            .map_err(self.db_error())?;
        ids.iter()
            .map(|id| query.exists(params![id]).map_err(self.db_error()))
            .collect()
    }

    /// How many claims each source won (for the reliability tests and `/status`).
    pub fn claims_by_source(&self) -> Result<Vec<(String, u64)>, StateError> {
        let conn = self.conn();
        let mut q = conn
            .prepare("SELECT COALESCE(source, 'unknown'), COUNT(*) FROM seen_event GROUP BY 1 ORDER BY 1")
            .map_err(self.db_error())?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(self.db_error())?;
        rows.collect::<Result<_, _>>().map_err(self.db_error())
    }

    /// Marks detections of `event_ids` published.
    pub fn mark_published(&self, event_ids: &[String]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.db_error())?;
        for id in event_ids {
            tx.execute(
                "UPDATE detection SET published = 1 WHERE event_id = ?1",
                params![id],
            )
            .map_err(self.db_error())?;
        }
        tx.commit().map_err(self.db_error())
    }

    /// Detections stored but not published (a crash came between), oldest event first.
    pub fn unpublished_detections(&self) -> Result<Vec<StoredDetection>, StateError> {
        self.detections("WHERE published = 0 ORDER BY event_time, event_id, detection")
    }

    /// The kept detections, newest event first.
    pub fn recent_detections(&self) -> Result<Vec<StoredDetection>, StateError> {
        self.detections("ORDER BY event_time DESC, event_id, detection")
    }

    fn detections(&self, tail: &str) -> Result<Vec<StoredDetection>, StateError> {
        let conn = self.conn();
        let mut query = conn
            .prepare(&format!(
                "SELECT event_id, detection, event_time, entry FROM detection {tail}"
            ))
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

    fn t(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, m, 0).unwrap()
    }

    fn detection(id: &str, name: &str) -> StoredDetection {
        StoredDetection {
            event_id: id.into(),
            detection: name.into(),
            event_time: t(1),
            entry: serde_json::json!({"event_id": id, "detection": name}),
        }
    }

    fn claim_of(id: &str, names: &[&str]) -> Claim {
        Claim {
            event_id: id.into(),
            event_time: t(1),
            detections: names.iter().map(|n| detection(id, n)).collect(),
        }
    }

    #[test]
    fn the_first_source_wins_and_keeps_every_detection() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let both = claim_of("e1", &["stop", "any_write"]);
        assert_eq!(
            store
                .claim_events(Source::Bucket, std::slice::from_ref(&both), t(2))
                .unwrap(),
            [true]
        );
        // Event history sees it later: not new, nothing stored twice.
        assert_eq!(
            store
                .claim_events(Source::EventHistory, &[both, claim_of("e2", &[])], t(3))
                .unwrap(),
            [false, true]
        );
        let kept = store.recent_detections().unwrap();
        let names: Vec<&str> = kept.iter().map(|d| d.detection.as_str()).collect();
        assert_eq!(names, ["any_write", "stop"]);
        assert_eq!(
            store.claims_by_source().unwrap(),
            [("bucket".into(), 1), ("event_history".into(), 1)]
        );
    }

    #[test]
    fn what_a_crash_left_unpublished_is_found_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            store
                .claim_events(
                    Source::EventHistory,
                    &[claim_of("e1", &["stop"]), claim_of("e2", &["stop"])],
                    t(2),
                )
                .unwrap();
            store.mark_published(&["e1".into()]).unwrap();
            // The process dies here, before e2 is published.
        }
        let store = StateStore::open(dir.path()).unwrap();
        let left: Vec<String> = store
            .unpublished_detections()
            .unwrap()
            .into_iter()
            .map(|d| d.event_id)
            .collect();
        assert_eq!(left, ["e2"]);
        store.mark_published(&left).unwrap();
        assert!(store.unpublished_detections().unwrap().is_empty());
    }
}
