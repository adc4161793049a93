//! The only calls that change a trail or a key, and only for remediation: StartLogging,
//! UpdateTrail (log file validation on), EnableKey. Each returns its request id, which
//! CloudTrail records as the event's `requestID`: that is how the daemon knows its own events.

use super::aws::{Aws, unavailable};
use crate::plan::remediation::{Action, ActionKind};
use crate::posture::Unavailable;
use aws_sdk_cloudtrail::operation::RequestId as _;

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
    }
}
