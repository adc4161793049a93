//! The `aws_config` section: trailwarden's verdicts published to AWS Config (a conformance
//! pack of process checks). Opt-in: without it the daemon only reads Config's recorder status.

use super::HumanDuration;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfigSettings {
    /// The conformance pack (deploy/aws/conformance-pack.yaml) whose process checks receive
    /// each policy's verdict, per account, with PutExternalEvaluation. Absent: nothing is sent.
    #[serde(default)]
    pub conformance_pack: Option<String>,
    /// Each verdict is sent again this often, changed or not (a changed one is sent at once).
    #[serde(default = "default_refresh")]
    pub refresh: HumanDuration,
    /// The region whose Config receives the evaluations; the first
    /// of `aws.regions` when unset.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_refresh() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(24 * 3600))
}

impl AwsConfigSettings {
    /// A section that does nothing is a mistake worth naming.
    pub fn check(&self) -> Result<(), String> {
        if self.conformance_pack.is_none() {
            return Err(
                "aws_config: set conformance_pack (where verdicts go), or remove the section"
                    .into(),
            );
        }
        if self.refresh.0 < std::time::Duration::from_secs(60) {
            return Err("aws_config.refresh: at least 1m".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(), String> {
        let s: AwsConfigSettings = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        s.check()
    }

    #[test]
    fn a_section_that_sends_nothing_or_too_often_is_refused() {
        assert_eq!(parse("conformance_pack: trailwarden"), Ok(()));
        assert!(
            parse("refresh: 1h")
                .unwrap_err()
                .contains("conformance_pack")
        );
        assert!(
            parse("conformance_pack: p\nrefresh: 30s")
                .unwrap_err()
                .contains("1m")
        );
        assert!(
            parse("conformance_pack: p\ncross_check: true")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
