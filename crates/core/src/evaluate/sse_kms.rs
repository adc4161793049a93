//! SSE-KMS: the trail names a KMS key, the key exists and is enabled, optionally a required
//! key (by id, ARN or alias) and rotation.

use super::finding::{CheckResult, Verdict, need};
use crate::posture::{Fetched, KeyPosture, Trail};

pub fn sse_kms(
    trail: &Trail,
    key: Fetched<Option<&KeyPosture>>,
    required_key: Option<&str>,
    require_rotation: bool,
) -> CheckResult {
    let Some(configured) = trail.kms_key_id.as_deref() else {
        return Ok(Verdict::fail(
            "log files are not encrypted with SSE-KMS: the trail sets no KmsKeyId",
        ));
    };
    let Some(key) = key? else {
        return Ok(Verdict::fail(format!("KMS key {configured} was not found")));
    };
    if !key.is_enabled() {
        return Ok(Verdict::fail(format!(
            "KMS key {} is {}: CloudTrail cannot encrypt new log files with it",
            key.arn, key.state
        )));
    }
    if let Some(required) = required_key
        && !key_matches(key, required)?
    {
        return Ok(Verdict::fail(format!(
            "trail uses KMS key {} but policy requires {required}",
            key.arn
        )));
    }
    if require_rotation && !*need(&key.rotation_enabled)? {
        return Ok(Verdict::fail(format!(
            "automatic rotation is off for KMS key {}",
            key.arn
        )));
    }
    Ok(Verdict::pass(format!(
        "log files are encrypted with enabled KMS key {}",
        key.arn
    )))
}

/// Does `required` (key id, key ARN, `alias/name` or alias ARN) name this key?
fn key_matches(key: &KeyPosture, required: &str) -> Result<bool, crate::posture::Unavailable> {
    if required == key.key_id || required == key.arn {
        return Ok(true);
    }
    // An alias ARN ends in ":alias/name".
    let alias = match required.find(":alias/") {
        Some(at) => &required[at + 1..],
        None if required.starts_with("alias/") => required,
        None => return Ok(false),
    };
    Ok(need(&key.aliases)?.iter().any(|a| a == alias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::{enabled_key, logging_trail, unavailable};

    #[test]
    fn enabled_key_passes_and_matches_alias() {
        let state = logging_trail();
        let key = enabled_key();
        assert!(
            sse_kms(&state.trail, Ok(Some(&key)), None, false)
                .unwrap()
                .passed
        );
        assert!(
            sse_kms(&state.trail, Ok(Some(&key)), Some("alias/trail"), false)
                .unwrap()
                .passed
        );
        assert!(
            sse_kms(
                &state.trail,
                Ok(Some(&key)),
                Some("arn:aws:kms:us-east-1:111122223333:alias/trail"),
                false
            )
            .unwrap()
            .passed
        );
        assert!(
            !sse_kms(&state.trail, Ok(Some(&key)), Some("alias/other"), false)
                .unwrap()
                .passed
        );
    }

    #[test]
    fn no_key_fails() {
        let mut state = logging_trail();
        state.trail.kms_key_id = None;
        let v = sse_kms(&state.trail, Ok(None), None, false).unwrap();
        assert!(!v.passed);
        assert!(v.message.contains("no KmsKeyId"));
    }

    #[test]
    fn disabled_or_deleted_key_fails() {
        let state = logging_trail();
        for s in ["Disabled", "PendingDeletion", "NotFound"] {
            let mut key = enabled_key();
            key.state = s.into();
            let v = sse_kms(&state.trail, Ok(Some(&key)), None, false).unwrap();
            assert!(!v.passed, "{s}");
            assert!(v.message.contains(s));
        }
    }

    #[test]
    fn unreadable_key_or_rotation_is_an_error() {
        let state = logging_trail();
        assert!(
            sse_kms(
                &state.trail,
                Err(unavailable("DescribeKey: AccessDenied")),
                None,
                false
            )
            .is_err()
        );
        let mut key = enabled_key();
        key.rotation_enabled = Err(unavailable("GetKeyRotationStatus: AccessDenied"));
        assert!(sse_kms(&state.trail, Ok(Some(&key)), None, true).is_err());
        key.rotation_enabled = Ok(false);
        assert!(
            !sse_kms(&state.trail, Ok(Some(&key)), None, true)
                .unwrap()
                .passed
        );
    }
}
