//! CloudTrail answers trailsim corrects on their way back from moto: GetTrailStatus carries
//! what trailsim's delivery engine knows (moto sets LatestDeliveryTime to "now" on every call
//! while logging), GetEventSelectors gives a new trail AWS's default selector (moto gives
//! none), and StartLogging/StopLogging move the delivery state. One S3 answer is mended too:
//! moto's GetBucketVersioning has a root element no AWS SDK accepts.

use crate::call::Call;
use crate::delivery;
use crate::server::Sim;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// `seq` is the sequence number of this call's own event.
pub fn cloudtrail(sim: &Sim, call: &Call, answer: Bytes, seq: u64) -> Bytes {
    let account = sim.caller_account(call);
    let name = call.parameters["Name"]
        .as_str()
        .or(call.parameters["TrailName"].as_str());
    let Some(name) = name else {
        return answer;
    };
    let arn = delivery::trail_arn(name, &account, &call.region);
    match call.operation.as_str() {
        "StartLogging" | "StopLogging" => {
            let mut d = sim.deliveries.lock().expect("deliveries lock");
            if call.operation == "StartLogging" {
                // Only a start after a stop begins new digest chains.
                if d.started(&arn, sim.now(), seq) {
                    sim.digests.lock().expect("digests lock").restart(&arn);
                }
            } else {
                d.stopped(&arn, sim.now(), seq);
            }
            answer
        }
        "GetTrailStatus" => {
            let Ok(mut v) = serde_json::from_slice::<Value>(&answer) else {
                return answer;
            };
            let known = sim
                .deliveries
                .lock()
                .expect("deliveries lock")
                .trails
                .get(&arn)
                .cloned()
                .unwrap_or_default();
            let digest_time = sim
                .digests
                .lock()
                .expect("digests lock")
                .latest_delivery
                .get(&arn)
                .copied();
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| k == "IsLogging");
                let epoch = |t: DateTime<Utc>| json!(t.timestamp_millis() as f64 / 1000.0);
                let fields = [
                    ("LatestDeliveryTime", known.latest_delivery_time.map(epoch)),
                    (
                        "LatestDeliveryError",
                        known.latest_delivery_error.map(|e| json!(e)),
                    ),
                    ("StartLoggingTime", known.start_logging_time.map(epoch)),
                    ("StopLoggingTime", known.stop_logging_time.map(epoch)),
                    ("LatestDigestDeliveryTime", digest_time.map(epoch)),
                ];
                for (k, value) in fields {
                    if let Some(value) = value {
                        o.insert(k.into(), value);
                    }
                }
            }
            Bytes::from(v.to_string())
        }
        "GetEventSelectors" => {
            let Ok(mut v) = serde_json::from_slice::<Value>(&answer) else {
                return answer;
            };
            let empty = |k: &str| v[k].as_array().is_none_or(Vec::is_empty);
            if empty("EventSelectors") && empty("AdvancedEventSelectors") {
                v["EventSelectors"] = json!([{"ReadWriteType": "All", "IncludeManagementEvents": true,
                    "DataResources": [], "ExcludeManagementEventSources": []}]);
            }
            Bytes::from(v.to_string())
        }
        "UpdateTrail" => {
            // Re-enabling validation starts a new chain; logs delivered while it was off are
            // never in any digest (delivery only lists files while it is on).
            let mut digests = sim.digests.lock().expect("digests lock");
            match call.parameters["EnableLogFileValidation"].as_bool() {
                Some(false) => {
                    digests.validation_off.insert(arn);
                }
                Some(true) if digests.validation_off.remove(&arn) => digests.restart(&arn),
                _ => {}
            }
            answer
        }
        _ => answer,
    }
}

/// moto answers `<GetBucketVersioningResponse>`; S3 answers `<VersioningConfiguration>`.
pub fn bucket_versioning(answer: Bytes) -> Bytes {
    let text = String::from_utf8_lossy(&answer);
    if !text.contains("<GetBucketVersioningResponse") {
        return answer;
    }
    Bytes::from(
        text.replace("<GetBucketVersioningResponse", "<VersioningConfiguration")
            .replace(
                "</GetBucketVersioningResponse>",
                "</VersioningConfiguration>",
            ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioning_answers_get_the_s3_root_element() {
        let moto = Bytes::from_static(
            b"<?xml version=\"1.0\"?><GetBucketVersioningResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></GetBucketVersioningResponse>",
        );
        let fixed = bucket_versioning(moto);
        assert!(fixed.starts_with(b"<?xml version=\"1.0\"?><VersioningConfiguration xmlns="));
        assert!(fixed.ends_with(b"<Status>Enabled</Status></VersioningConfiguration>"));
    }
}
