//! AWS Config: are configuration recorders recording in a region.

use super::aws::{Aws, unavailable};
use super::nonempty;
use crate::posture::{Fetched, Recorder};

/// The recorders of `region` and whether each records. An empty list means none exists.
pub async fn recorders(aws: &Aws, region: &str) -> Fetched<Vec<Recorder>> {
    let config = aws.config(region);
    let out = config
        .describe_configuration_recorder_status()
        .send()
        .await
        .map_err(|e| unavailable("DescribeConfigurationRecorderStatus", &e))?;
    Ok(out
        .configuration_recorders_status()
        .iter()
        .map(|s| Recorder {
            name: s.name().unwrap_or("default").to_string(),
            recording: s.recording(),
            // Unknown statuses (moto answers PENDING) are kept as text, not rejected.
            last_status: s.last_status().map(|l| l.as_str().to_string()),
            last_error_code: nonempty(s.last_error_code()),
        })
        .collect())
}
