//! The `remediation` section: whether the daemon puts a failure right (for the policies that
//! say `remediate: true`) or only reports what it would do, and the limits that keep it from
//! fighting a person in a loop.

use super::HumanDuration;
use super::yaml::Pattern;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationSettings {
    /// Only report what would be done (log, metric, `/status`); `false` acts.
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// After an action on a resource, none on the same resource for this long: a person who
    /// stops the trail again is left to it (and the alerts go on).
    #[serde(default = "default_cool_down")]
    pub cool_down: HumanDuration,
    /// At most this many actions in any hour, over every account.
    #[serde(default = "default_max_actions_per_hour")]
    pub max_actions_per_hour: u32,
    /// Principals (ARNs, each a regular expression matching the whole ARN) whose changes are
    /// left alone: a break-glass role, a change pipeline.
    #[serde(default)]
    pub allow_principals: Vec<Pattern>,
    /// How long a failure waits for the event that says who caused it (event history is
    /// minutes late) before it is put right without knowing.
    #[serde(default = "default_wait_for_event")]
    pub wait_for_event: HumanDuration,
}

fn yes() -> bool {
    true
}
fn default_cool_down() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30 * 60))
}
fn default_max_actions_per_hour() -> u32 {
    10
}
fn default_wait_for_event() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(15 * 60))
}

impl RemediationSettings {
    /// Whether `principal` is allowed: some pattern matches the whole of it (anchored, so a
    /// lazy pattern or an alternation matches as written).
    pub fn allows(&self, principal: &str) -> bool {
        self.allow_principals.iter().any(|p| {
            regex::Regex::new(&format!("^(?:{})$", p.0.as_str()))
                .is_ok_and(|whole| whole.is_match(principal))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_dry_run_and_an_allow_list_matches_whole_arns() {
        let s: RemediationSettings =
            serde_yaml::from_str("allow_principals: ['arn:aws:iam::\\d+:role/BreakGlass']")
                .unwrap();
        assert!(s.dry_run);
        assert_eq!(s.cool_down.0.as_secs(), 1800);
        assert!(s.allows("arn:aws:iam::123456789012:role/BreakGlass"));
        assert!(!s.allows("arn:aws:iam::123456789012:role/BreakGlassNot"));
        assert!(!s.allows("x-arn:aws:iam::123456789012:role/BreakGlass"));
        let s: RemediationSettings =
            serde_yaml::from_str("allow_principals: ['role/A|role/AB', 'sts/.*?']").unwrap();
        assert!(
            s.allows("role/AB"),
            "an alternation whose first branch is a prefix"
        );
        assert!(s.allows("sts/session"), "a lazy pattern");
        assert!(serde_yaml::from_str::<RemediationSettings>("dryrun: false").is_err());
    }
}
