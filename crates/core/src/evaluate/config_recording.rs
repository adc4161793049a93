//! AWS Config records in the region: a recorder exists and is recording.

use super::finding::{CheckResult, Verdict};
use crate::posture::{Fetched, Recorder};

pub fn config_recording(region: &str, recorders: Option<&Fetched<Vec<Recorder>>>) -> CheckResult {
    let Some(recorders) = recorders else {
        return Err(crate::posture::Unavailable::new(format!(
            "AWS Config recorders of {region} not collected yet"
        )));
    };
    let recorders = recorders.as_ref().map_err(Clone::clone)?;
    if recorders.is_empty() {
        return Ok(Verdict::fail(format!(
            "no AWS Config configuration recorder in {region}"
        )));
    }
    if let Some(r) = recorders.iter().find(|r| r.recording) {
        return Ok(Verdict::pass(format!(
            "AWS Config recorder {} is recording in {region}",
            r.name
        )));
    }
    let names: Vec<&str> = recorders.iter().map(|r| r.name.as_str()).collect();
    Ok(Verdict::fail(format!(
        "AWS Config recorder {} exists in {region} but is not recording",
        names.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(recording: bool) -> Recorder {
        Recorder {
            name: "default".into(),
            recording,
            last_status: Some("PENDING".into()),
            last_error_code: None,
        }
    }

    #[test]
    fn recording_passes_stopped_or_absent_fails() {
        assert!(
            config_recording("eu-west-1", Some(&Ok(vec![recorder(true)])))
                .unwrap()
                .passed
        );
        let v = config_recording("eu-west-1", Some(&Ok(vec![recorder(false)]))).unwrap();
        assert!(v.message.contains("not recording"));
        let v = config_recording("eu-west-1", Some(&Ok(vec![]))).unwrap();
        assert!(v.message.contains("no AWS Config"));
    }

    #[test]
    fn unknown_is_an_error() {
        assert!(config_recording("eu-west-1", None).is_err());
        let e = crate::posture::Unavailable::new("denied");
        assert!(config_recording("eu-west-1", Some(&Err(e))).is_err());
    }
}
