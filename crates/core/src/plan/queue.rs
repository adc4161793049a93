//! The queue fed by a bucket's event notifications: when a message may be deleted, and when
//! the listing found a log file the notifications should have brought.
//!
//! A message is deleted only once everything it names is done: read and stored, or nothing
//! for this daemon to read (a digest, another bucket's object, a test event). A read that
//! failed, or a store that failed, keeps the message: SQS hands it out again after its
//! visibility timeout, and after the queue's maxReceiveCount it goes to the dead-letter
//! queue, never silently away. The periodic listing stays the safety net either way.

use crate::s3_event::CreatedObject;
use chrono::{DateTime, Duration, Utc};

/// What became of one object a message named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read and stored now, or read before (the listing, or an earlier copy of the message).
    Stored,
    /// Nothing to read here: not a log file of a trail this daemon reads, or outside the
    /// read window.
    NotOurs,
    /// The read or the store failed: read again when the message comes back.
    Failed,
}

/// Whether a message whose objects ended so may be deleted.
pub fn may_delete(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| *o != Outcome::Failed)
}

/// The objects a receive's messages announce, each once with the messages that name it (S3
/// may announce an object twice, and a message comes back while its copy is in flight):
/// read once, its outcome counts for each of them. `None`: a message that could not be
/// parsed, which names nothing.
pub fn objects_to_read(
    messages: &[Option<Vec<CreatedObject>>],
) -> Vec<(CreatedObject, Vec<usize>)> {
    let mut out: Vec<(CreatedObject, Vec<usize>)> = Vec::new();
    for (i, objects) in messages.iter().enumerate() {
        for object in objects.iter().flatten() {
            let same = |o: &CreatedObject| o.bucket == object.bucket && o.key == object.key;
            match out.iter_mut().find(|(o, _)| same(o)) {
                Some((_, named_by)) if named_by.last() == Some(&i) => {}
                Some((_, named_by)) => named_by.push(i),
                None => out.push((object.clone(), vec![i])),
            }
        }
    }
    out
}

/// Time allowed between an object's write and its notification being received, beyond which
/// a log file the listing finds first counts as missed by the notifications.
pub const NOTIFICATION_LAG: Duration = Duration::seconds(60);

/// Whether a log file the listing is about to read was missed by the notifications: written
/// (S3's LastModified) well before the queue was last found empty. One written since, or
/// while the queue was never drained, may still be on its way.
pub fn missed_by_notifications(
    written: Option<DateTime<Utc>>,
    queue_drained_at: Option<DateTime<Utc>>,
) -> bool {
    match (written, queue_drained_at) {
        (Some(w), Some(d)) => w + NOTIFICATION_LAG < d,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    #[test]
    fn a_message_goes_only_when_nothing_it_names_is_left_to_read() {
        let cases: &[(&[Outcome], bool)] = &[
            (&[], true), // a test event, or only removals
            (&[Stored], true),
            (&[NotOurs], true), // a digest file, another bucket
            (&[Stored, NotOurs], true),
            (&[Failed], false), // the read failed once: the message comes back
            (&[Stored, Failed], false),
            (&[NotOurs, Failed, Stored], false),
        ];
        for (outcomes, expected) in cases {
            assert_eq!(may_delete(outcomes), *expected, "{outcomes:?}");
        }
    }

    #[test]
    fn an_object_announced_twice_is_read_once_for_every_message_that_names_it() {
        let o = |bucket: &str, key: &str| CreatedObject {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: Some(1),
            event_time: None,
        };
        let (a, b, other_bucket) = (
            o("logs", "a.json.gz"),
            o("logs", "b.json.gz"),
            o("x", "a.json.gz"),
        );
        type Case = (
            &'static str,
            Vec<Option<Vec<CreatedObject>>>,
            Vec<(CreatedObject, Vec<usize>)>,
        );
        let cases: Vec<Case> = vec![
            ("nothing received", vec![], vec![]),
            (
                "a test event and an unparsable message name nothing",
                vec![Some(vec![]), None],
                vec![],
            ),
            (
                "one object per message",
                vec![Some(vec![a.clone()]), Some(vec![b.clone()])],
                vec![(a.clone(), vec![0]), (b.clone(), vec![1])],
            ),
            (
                "a duplicate notification",
                vec![
                    Some(vec![a.clone()]),
                    None,
                    Some(vec![a.clone(), b.clone()]),
                ],
                vec![(a.clone(), vec![0, 2]), (b.clone(), vec![2])],
            ),
            (
                "one message naming an object twice counts it once",
                vec![Some(vec![a.clone(), a.clone()])],
                vec![(a.clone(), vec![0])],
            ),
            (
                "the same key in another bucket is another object",
                vec![Some(vec![a.clone()]), Some(vec![other_bucket.clone()])],
                vec![(a.clone(), vec![0]), (other_bucket.clone(), vec![1])],
            ),
        ];
        for (name, messages, expected) in cases {
            assert_eq!(objects_to_read(&messages), expected, "{name}");
        }
    }

    #[test]
    fn the_listing_counts_a_miss_only_for_a_file_the_queue_had_time_to_bring() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0);
        let cases = [
            // Written long before the queue was found empty: missed.
            (t(0), t(600), true),
            // Just inside the lag: may still be on its way.
            (t(0), t(60), false),
            (t(0), t(61), true),
            // Written after the queue was last drained.
            (t(700), t(600), false),
            // The queue never drained (not configured, or never reached), or no write time.
            (t(0), None, false),
            (None, t(600), false),
        ];
        for (written, drained, expected) in cases {
            assert_eq!(
                missed_by_notifications(written, drained),
                expected,
                "{written:?} {drained:?}"
            );
        }
    }
}
