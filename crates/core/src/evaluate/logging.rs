//! Trail logging: `IsLogging` and no `LatestDeliveryError`. The Stop Logging signal.

use super::finding::{CheckResult, Verdict, need};
use crate::posture::TrailState;

pub fn trail_logging(state: &TrailState) -> CheckResult {
    let status = need(&state.status)?;
    if !status.is_logging {
        let when = status
            .stop_logging_time
            .map(|t| format!(" (stopped at {})", t.to_rfc3339()))
            .unwrap_or_default();
        return Ok(Verdict::fail(format!("trail is not logging{when}")));
    }
    if let Some(error) = &status.latest_delivery_error {
        return Ok(Verdict::fail(format!(
            "trail is logging but its last delivery to S3 failed: {error}"
        )));
    }
    let delivered = status
        .latest_delivery_time
        .map(|t| format!("; last delivery at {}", t.to_rfc3339()))
        .unwrap_or_default();
    Ok(Verdict::pass(format!("trail is logging{delivered}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::testing::{logging_trail, unavailable};

    #[test]
    fn logging_passes() {
        assert!(trail_logging(&logging_trail()).unwrap().passed);
    }

    #[test]
    fn stopped_fails() {
        let mut state = logging_trail();
        state.status.as_mut().unwrap().is_logging = false;
        let v = trail_logging(&state).unwrap();
        assert!(!v.passed);
        assert!(v.message.contains("not logging"));
    }

    #[test]
    fn delivery_error_fails_even_while_logging() {
        let mut state = logging_trail();
        state.status.as_mut().unwrap().latest_delivery_error = Some("AccessDenied".into());
        let v = trail_logging(&state).unwrap();
        assert!(!v.passed);
        assert!(v.message.contains("AccessDenied"));
    }

    #[test]
    fn unknown_status_is_an_error() {
        let mut state = logging_trail();
        state.status = Err(unavailable("GetTrailStatus: timed out"));
        assert_eq!(
            trail_logging(&state).unwrap_err().reason,
            "GetTrailStatus: timed out"
        );
    }
}
