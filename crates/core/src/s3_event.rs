//! S3 event notifications as they arrive in an SQS queue: the bucket's own notification
//! (`{"Records": [...]}`), the same wrapped by SNS (`{"Type": "Notification", "Message":
//! "..."}`), or the test event S3 sends when the notification is configured. Keys arrive
//! URL-encoded (`+` for a space); they are decoded here, so a key is the object's real name.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What one queue message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// `s3:TestEvent`, or SNS's subscription confirmation: nothing to read.
    Test,
    /// The objects created (`ObjectCreated:*`); other events (removals, restores) name none.
    Created(Vec<CreatedObject>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreatedObject {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub event_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
    /// SNS: `Notification`, `SubscriptionConfirmation`, ...
    #[serde(rename = "Type")]
    sns_type: Option<String>,
    /// SNS: the S3 notification, as a string.
    #[serde(rename = "Message")]
    message: Option<String>,
    /// S3's test event: `s3:TestEvent`.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventSource")]
    event_source: Option<String>,
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<DateTime<Utc>>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Named,
    object: Object,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Object {
    key: String,
    size: Option<u64>,
}

/// Reads one message body. An error says what is wrong; the message is not an S3 event
/// notification this daemon can act on.
pub fn parse(body: &str) -> Result<Notification, String> {
    parse_at(body, 0)
}

fn parse_at(body: &str, depth: u8) -> Result<Notification, String> {
    let envelope: Envelope = serde_json::from_str(body.trim_start_matches('\u{feff}'))
        .map_err(|e| format!("not JSON: {e}"))?;
    if envelope.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    match (
        envelope.sns_type.as_deref(),
        envelope.message,
        envelope.records,
    ) {
        (Some("Notification"), Some(inner), _) if depth == 0 => parse_at(&inner, depth + 1)
            .map_err(|e| format!("SNS notification whose message is no S3 event: {e}")),
        (Some("SubscriptionConfirmation" | "UnsubscribeConfirmation"), _, _) => {
            Ok(Notification::Test)
        }
        (_, _, Some(records)) => created(records).map(Notification::Created),
        _ => Err("neither an S3 event notification (Records) nor one sent through SNS".into()),
    }
}

fn created(records: Vec<Record>) -> Result<Vec<CreatedObject>, String> {
    let mut out = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        if r.event_source.as_deref() != Some("aws:s3") {
            return Err(format!(
                "record {i} comes from {:?}, not aws:s3",
                r.event_source.unwrap_or_default()
            ));
        }
        let name = r.event_name.unwrap_or_default();
        if !name.starts_with("ObjectCreated:") {
            continue;
        }
        let s3 =
            r.s3.ok_or_else(|| format!("record {i} ({name}) names no object"))?;
        let key = url_decoded(&s3.object.key).map_err(|e| format!("record {i}: key {e}"))?;
        out.push(CreatedObject {
            bucket: s3.bucket.name,
            key,
            size: s3.object.size,
            event_time: r.event_time,
        });
    }
    Ok(out)
}

/// A key as S3 notifications write it: form-encoded (`+` is a space, `%2B` a plus).
pub fn url_decoded(key: &str) -> Result<String, String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{key:?} has a bad escape at byte {i}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{key:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2026/12/02/111122223333_CloudTrail_us-east-1_20261202T1550Z_a1.json.gz";

    fn record(event_name: &str, bucket: &str, key: &str) -> String {
        format!(
            r#"{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-12-02T15:50:07.123Z","eventName":"{event_name}","s3":{{"s3SchemaVersion":"1.0","configurationId":"trailwarden","bucket":{{"name":"{bucket}","arn":"arn:aws:s3:::{bucket}"}},"object":{{"key":"{key}","size":1234,"eTag":"abc","sequencer":"0A"}}}}}}"#
        )
    }

    fn created(bucket: &str, key: &str) -> CreatedObject {
        CreatedObject {
            bucket: bucket.into(),
            key: key.into(),
            size: Some(1234),
            event_time: Some("2026-12-02T15:50:07.123Z".parse().unwrap()),
        }
    }

    #[test]
    fn every_shape_a_queue_receives() {
        let direct = format!(
            r#"{{"Records":[{}]}}"#,
            record("ObjectCreated:Put", "logs", KEY)
        );
        let through_sns = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:logs",
            "Subject": "Amazon S3 Notification",
            "Message": direct,
        })
        .to_string();
        let two = format!(
            r#"{{"Records":[{},{},{}]}}"#,
            record("ObjectCreated:CompleteMultipartUpload", "logs", KEY),
            record("ObjectRemoved:Delete", "logs", "gone.json.gz"),
            record(
                "ObjectCreated:Copy",
                "logs",
                "AWSLogs/a+b/c%2Bd/%C3%A9.json.gz"
            ),
        );
        let cases: Vec<(&str, String, Result<Notification, &str>)> = vec![
            ("direct", direct.clone(), Ok(Notification::Created(vec![created("logs", KEY)]))),
            ("through SNS", through_sns, Ok(Notification::Created(vec![created("logs", KEY)]))),
            (
                "raw SNS delivery with a byte order mark",
                format!("\u{feff}{direct}"),
                Ok(Notification::Created(vec![created("logs", KEY)])),
            ),
            (
                "a removal names nothing to read; keys decoded",
                two,
                Ok(Notification::Created(vec![
                    created("logs", KEY),
                    created("logs", "AWSLogs/a b/c+d/é.json.gz"),
                ])),
            ),
            (
                "S3's test event",
                r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-02T15:50:07.123Z","Bucket":"logs","RequestId":"r","HostId":"h"}"#.into(),
                Ok(Notification::Test),
            ),
            (
                "SNS subscription confirmation",
                r#"{"Type":"SubscriptionConfirmation","Message":"You have chosen to subscribe"}"#.into(),
                Ok(Notification::Test),
            ),
            ("not JSON", "ObjectCreated".into(), Err("not JSON")),
            ("another shape", r#"{"detail-type":"Object Created"}"#.into(), Err("neither")),
            (
                "SNS wrapping something else",
                r#"{"Type":"Notification","Message":"hello"}"#.into(),
                Err("SNS notification whose message is no S3 event"),
            ),
            (
                "a record of another service",
                r#"{"Records":[{"eventSource":"aws:sqs","eventName":"ObjectCreated:Put"}]}"#.into(),
                Err("not aws:s3"),
            ),
            (
                "a created record without its object",
                r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put"}]}"#.into(),
                Err("names no object"),
            ),
            (
                "a key with a broken escape",
                format!(r#"{{"Records":[{}]}}"#, record("ObjectCreated:Put", "logs", "a%2")),
                Err("bad escape at byte 1"),
            ),
        ];
        for (what, body, expected) in cases {
            match (parse(&body), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{what}: {got}"),
                (got, want) => panic!("{what}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn keys_decode_as_s3_encodes_them() {
        for (encoded, decoded) in [
            ("plain/key.json.gz", Ok("plain/key.json.gz")),
            ("a+b", Ok("a b")),
            ("a%2Bb", Ok("a+b")),
            ("%3A%2f", Ok(":/")),
            ("%E2%82%AC", Ok("€")),
            ("%", Err(())),
            ("%zz", Err(())),
            ("%C3", Err(())),
        ] {
            assert_eq!(
                url_decoded(encoded).map_err(|_| ()),
                decoded.map(String::from),
                "{encoded}"
            );
        }
    }
}
