//! A CloudTrail record as rsigma sees it. SigmaHQ's rules apply string modifiers to fields
//! whose CloudTrail value is an object: `requestParameters|contains: 'Suspended'` looks for
//! a bucket's versioning being suspended anywhere in the request. The SIEM backends those
//! rules are written for search the field as text; rsigma's `JsonEvent` hands the object over
//! as a map, which no string matches, so the rule never fires. Here an object is handed over
//! as its JSON text; every other value, and every other question rsigma asks, is
//! `JsonEvent`'s.

use rsigma_eval::JsonEvent;
use rsigma_eval::event::{Event, EventValue};
use serde_json::Value;
use std::borrow::Cow;

pub(super) struct CloudTrailEvent<'a>(JsonEvent<'a>);

impl<'a> CloudTrailEvent<'a> {
    pub(super) fn borrow(record: &'a Value) -> CloudTrailEvent<'a> {
        CloudTrailEvent(JsonEvent::borrow(record))
    }
}

/// An object as its JSON text; an array's objects each so (rsigma matches any element).
fn objects_as_text(value: EventValue<'_>) -> EventValue<'_> {
    match value {
        EventValue::Map(_) => EventValue::Str(Cow::Owned(value.to_json().to_string())),
        EventValue::Array(items) => {
            EventValue::Array(items.into_iter().map(objects_as_text).collect())
        }
        other => other,
    }
}

impl Event for CloudTrailEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        self.0.get_field(path).map(objects_as_text)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.0.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.0.all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.0.visit_string_values(visit)
    }

    fn to_json(&self) -> Value {
        self.0.to_json()
    }

    fn field_keys(&self) -> Vec<Cow<'_, str>> {
        self.0.field_keys()
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        self.0.top_level_keys()
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        self.0.visit_top_level_keys(visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_text_and_everything_else_is_as_json_event_gives_it() {
        let record = json!({
            "eventName": "PutBucketVersioning",
            "requestParameters": {"bucketName": "b", "VersioningConfiguration": {"Status": "Suspended"}},
            "resources": [{"ARN": "arn:aws:s3:::b"}, "plain"],
            "errorCode": null,
            "readOnly": false,
        });
        let event = CloudTrailEvent::borrow(&record);
        let text = |path: &str| match event.get_field(path) {
            Some(EventValue::Str(s)) => Some(s.into_owned()),
            other => panic!("{path}: {other:?}"),
        };
        // (path, what a string modifier sees)
        let cases = [
            ("eventName", "PutBucketVersioning"),
            ("requestParameters.bucketName", "b"),
            (
                "requestParameters.VersioningConfiguration.Status",
                "Suspended",
            ),
            (
                "requestParameters",
                r#"{"VersioningConfiguration":{"Status":"Suspended"},"bucketName":"b"}"#,
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(text(path).as_deref(), Some(expected), "{path}");
        }
        match event.get_field("resources") {
            Some(EventValue::Array(items)) => {
                assert!(
                    matches!(&items[0], EventValue::Str(s) if s == r#"{"ARN":"arn:aws:s3:::b"}"#)
                );
                assert!(matches!(&items[1], EventValue::Str(s) if s == "plain"));
            }
            other => panic!("resources: {other:?}"),
        }
        // Null stays null (rules written for success: `errorCode: null`); absent stays absent.
        assert!(matches!(
            event.get_field("errorCode"),
            Some(EventValue::Null)
        ));
        assert!(event.get_field("errorMessage").is_none());
        assert!(matches!(
            event.get_field("readOnly"),
            Some(EventValue::Bool(false))
        ));
    }
}
