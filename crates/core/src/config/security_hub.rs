//! The `security_hub` section: findings imported into Security Hub CSPM (ASFF) when their
//! verdict changes, and again after `refresh`. Opt-in: absent, nothing is imported.

use super::HumanDuration;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityHubSettings {
    /// Each finding is imported again this often, changed or not.
    #[serde(default = "default_refresh")]
    pub refresh: HumanDuration,
    /// The Security Hub region the findings go to; the first of `aws.regions` when unset.
    #[serde(default)]
    pub region: Option<String>,
}

fn default_refresh() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(24 * 3600))
}

impl SecurityHubSettings {
    pub fn check(&self) -> Result<(), String> {
        if self.refresh.0 < std::time::Duration::from_secs(60) {
            return Err("security_hub.refresh: at least 1m".into());
        }
        Ok(())
    }
}
