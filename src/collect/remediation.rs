//! The only calls that change a trail or a key, and only for remediation: StartLogging,
//! UpdateTrail (log file validation on), EnableKey, PutEventSelectors (management events
//! recorded again, the data event selectors kept). Each returns its request id, which
//! CloudTrail records as the event's `requestID`: that is how the daemon knows its own events.

use super::aws::{Aws, unavailable};
use crate::plan::remediation::{Action, ActionKind};
use crate::posture::Unavailable;
use aws_sdk_cloudtrail::operation::RequestId as _;
use aws_sdk_cloudtrail::types::{
    AdvancedEventSelector, AdvancedFieldSelector, EventSelector, ReadWriteType,
};

/// Carries out `action`; its request id, or why it failed.
pub async fn act(aws: &Aws, action: &Action) -> Result<Option<String>, Unavailable> {
    let target = action.target.as_str();
    match action.kind {
        ActionKind::StartLogging => aws
            .cloudtrail(&action.region)
            .start_logging()
            .name(target)
            .send()
            .await
            .map(|out| out.request_id().map(str::to_string))
            .map_err(|e| unavailable("StartLogging", &e)),
        ActionKind::EnableLogFileValidation => aws
            .cloudtrail(&action.region)
            .update_trail()
            .name(target)
            .enable_log_file_validation(true)
            .send()
            .await
            .map(|out| out.request_id().map(str::to_string))
            .map_err(|e| unavailable("UpdateTrail", &e)),
        ActionKind::EnableKey => aws
            .kms(&action.region)
            .enable_key()
            .key_id(target)
            .send()
            .await
            .map(|out| out.request_id().map(str::to_string))
            .map_err(|e| unavailable("EnableKey", &e)),
        ActionKind::RestoreManagementEvents => restore_management_events(aws, action).await,
    }
}

/// The trail's selectors read now (the posture keeps only their shape) and written back
/// with one selector for every management event.
async fn restore_management_events(
    aws: &Aws,
    action: &Action,
) -> Result<Option<String>, Unavailable> {
    let client = aws.cloudtrail(&action.region);
    let now = client
        .get_event_selectors()
        .trail_name(&action.target)
        .send()
        .await
        .map_err(|e| unavailable("GetEventSelectors", &e))?;
    let put = client.put_event_selectors().trail_name(&action.target);
    let put = if now.advanced_event_selectors().is_empty() {
        put.set_event_selectors(Some(
            restored_basic(now.event_selectors()).map_err(Unavailable::new)?,
        ))
    } else {
        put.set_advanced_event_selectors(Some(restored_advanced(now.advanced_event_selectors())))
    };
    put.send()
        .await
        .map(|out| out.request_id().map(str::to_string))
        .map_err(|e| unavailable("PutEventSelectors", &e))
}

/// The name of the selector remediation adds.
const RESTORED: &str = "Management events (restored by trailwarden)";

/// Advanced selectors: those for other events kept as they are, every management one
/// replaced by one that records all management events.
fn restored_advanced(selectors: &[AdvancedEventSelector]) -> Vec<AdvancedEventSelector> {
    let is_management = |s: &AdvancedEventSelector| {
        s.field_selectors()
            .iter()
            .any(|f| f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management"))
    };
    let mut out: Vec<AdvancedEventSelector> = selectors
        .iter()
        .filter(|s| !is_management(s))
        .cloned()
        .collect();
    let category = AdvancedFieldSelector::builder()
        .field("eventCategory")
        .equals("Management")
        .build()
        .expect("field is set");
    out.push(
        AdvancedEventSelector::builder()
            .name(RESTORED)
            .field_selectors(category)
            .build()
            .expect("field selectors are set"),
    );
    out
}

/// Basic selectors: each one's data resources kept with its read/write type, management
/// events taken out of all of them and recorded by one more selector (read and write, no
/// source excluded). A trail holds at most five: when the data selectors fill them, nothing
/// is written and the reason says so.
fn restored_basic(selectors: &[EventSelector]) -> Result<Vec<EventSelector>, String> {
    let mut out: Vec<EventSelector> = selectors
        .iter()
        .filter(|s| !s.data_resources().is_empty())
        .map(|s| {
            let mut s = s.clone();
            s.include_management_events = Some(false);
            s.exclude_management_event_sources = None;
            s
        })
        .collect();
    if out.len() >= 5 {
        return Err(
            "five selectors hold data resources: a management events selector would be a sixth; restore by hand"
                .into(),
        );
    }
    out.push(
        EventSelector::builder()
            .read_write_type(ReadWriteType::All)
            .include_management_events(true)
            .build(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudtrail::types::DataResource;

    fn field(name: &str, value: &str) -> AdvancedFieldSelector {
        AdvancedFieldSelector::builder()
            .field(name)
            .equals(value)
            .build()
            .unwrap()
    }

    #[test]
    fn advanced_data_selectors_are_kept_and_management_ones_replaced() {
        let data = AdvancedEventSelector::builder()
            .name("S3 objects")
            .field_selectors(field("eventCategory", "Data"))
            .field_selectors(field("resources.type", "AWS::S3::Object"))
            .build()
            .unwrap();
        let write_only = AdvancedEventSelector::builder()
            .field_selectors(field("eventCategory", "Management"))
            .field_selectors(field("readOnly", "false"))
            .build()
            .unwrap();
        let out = restored_advanced(&[data.clone(), write_only]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], data);
        assert_eq!(out[1].name(), Some(RESTORED));
        assert_eq!(
            out[1].field_selectors(),
            [field("eventCategory", "Management")]
        );
    }

    #[test]
    fn basic_data_resources_are_kept_with_their_read_write_type() {
        let objects = DataResource::builder()
            .r#type("AWS::S3::Object")
            .values("arn:aws:s3:::bucket/")
            .build();
        let data = EventSelector::builder()
            .read_write_type(ReadWriteType::ReadOnly)
            .include_management_events(true)
            .exclude_management_event_sources("kms.amazonaws.com")
            .data_resources(objects)
            .build();
        let management_only = EventSelector::builder()
            .read_write_type(ReadWriteType::WriteOnly)
            .include_management_events(true)
            .build();
        let out = restored_basic(&[data.clone(), management_only]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data_resources(), data.data_resources());
        assert_eq!(out[0].read_write_type(), Some(&ReadWriteType::ReadOnly));
        assert_eq!(out[0].include_management_events(), Some(false));
        assert_eq!(out[1].read_write_type(), Some(&ReadWriteType::All));
        assert_eq!(out[1].include_management_events(), Some(true));
        assert!(out[1].exclude_management_event_sources().is_empty());
        assert!(restored_basic(&vec![data; 5]).is_err(), "no sixth selector");
    }
}
