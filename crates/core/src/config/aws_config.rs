//! The `aws_config` section: trailwarden's verdicts published to AWS Config (a conformance
//! pack of process checks), and Config's managed CloudTrail rules read back to cross-check
//! them. Opt-in: without it the daemon only reads Config's recorder status.

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
    /// Read the results of Config's managed CloudTrail rules where they are deployed and
    /// report where they disagree with trailwarden's verdicts.
    #[serde(default)]
    pub cross_check: bool,
    /// How often the managed rules are read (each account: its rules, then each CloudTrail
    /// rule's results).
    #[serde(default = "default_cross_check_interval")]
    pub cross_check_interval: HumanDuration,
}

fn default_cross_check_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15 * 60))
}

fn default_refresh() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(24 * 3600))
}

impl AwsConfigSettings {
    /// A section that does nothing is a mistake worth naming.
    pub fn check(&self) -> Result<(), String> {
        if self.conformance_pack.is_none() && !self.cross_check {
            return Err(
                "aws_config: set conformance_pack (publish verdicts) or cross_check: true (compare with Config's rules), or remove the section"
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
        assert_eq!(parse("cross_check: true"), Ok(()));
        assert!(
            parse("conformance_pack: p\ncrosscheck: true")
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
