//! The bucket checks judge each delivering region on its own, then conclude: a definite
//! failure anywhere fails the policy (naming what else is unknown), else a region that could
//! not be read makes it `error`, else a region too young for evidence makes it `pending`, else
//! it passes. A failed region never turns into a pass on the others' evidence, nor into a
//! failure of its own.

use super::{CheckResult, Verdict};
use crate::posture::{Membership, RegionEvidence, Trail, TrailEvidence, Unavailable};
use std::collections::BTreeMap;

/// A folder a trail must fill: an account folder's delivering region, with its evidence, and
/// for a member of an organization trail when it belonged.
pub struct Folder<'e> {
    /// `us-east-1`, or `111122223333 us-east-1` when the trail fills several account folders.
    pub label: String,
    pub evidence: Option<&'e RegionEvidence>,
    pub membership: Membership,
}

#[derive(Debug, Default)]
pub struct RegionResults {
    pub failed: Vec<String>,
    pub unknown: Vec<String>,
    pub pending: Vec<String>,
    pub passed: Vec<String>,
}

impl RegionResults {
    /// The folders a trail must fill, with their evidence: the regions of
    /// `delivery::expected_regions` in the owner's account folder and, for an organization
    /// trail, in each member's (`members`, empty outside many-account mode). The ones whose
    /// folder could not be read are noted unknown here and left out.
    pub fn readable<'e>(
        &mut self,
        trail: &Trail,
        evidence: &'e TrailEvidence,
        monitored: &[String],
        members: &BTreeMap<String, Membership>,
    ) -> Vec<Folder<'e>> {
        let mut accounts = vec![(trail.account.clone(), Membership::default())];
        if trail.is_organization_trail {
            accounts.extend(
                members
                    .iter()
                    .filter(|(a, _)| **a != trail.account)
                    .map(|(a, m)| (a.clone(), *m)),
            );
        }
        let several = accounts.len() > 1;
        let mut out = Vec::new();
        for (account, membership) in &accounts {
            for region in super::delivery::expected_regions(trail, monitored) {
                let label = if several {
                    format!("{account} {region}")
                } else {
                    region.clone()
                };
                let r = evidence.region(account, &region);
                match r.and_then(|r| r.log_error.as_deref()) {
                    Some(e) => self.unknown.push(format!("{label}: {e}")),
                    None => out.push(Folder {
                        label,
                        evidence: r,
                        membership: *membership,
                    }),
                }
            }
        }
        out
    }

    /// `failing` and `passing` open the message of a failure and of a pass.
    pub fn conclude(self, failing: &str, passing: &str) -> CheckResult {
        if !self.failed.is_empty() {
            let mut message = format!("{failing}: {}", self.failed.join("; "));
            if !self.unknown.is_empty() {
                message.push_str(&format!("; not known: {}", self.unknown.join("; ")));
            }
            return Ok(Verdict::fail(message));
        }
        if !self.unknown.is_empty() {
            return Err(Unavailable::new(self.unknown.join("; ")));
        }
        if !self.pending.is_empty() {
            return Ok(Verdict::pending(self.pending.join("; ")));
        }
        Ok(Verdict::pass(format!(
            "{passing}: {}",
            self.passed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(failed: &[&str], unknown: &[&str], pending: &[&str]) -> RegionResults {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        RegionResults {
            failed: strings(failed),
            unknown: strings(unknown),
            pending: strings(pending),
            passed: vec!["us-east-1".into()],
        }
    }

    #[test]
    fn failure_beats_unknown_beats_pending_beats_pass() {
        let cases = [
            (results(&["eu: stale"], &["ap: AccessDenied"], &[]), "fail"),
            (results(&[], &["ap: AccessDenied"], &["eu: new"]), "error"),
            (results(&[], &[], &["eu: new"]), "pending"),
            (results(&[], &[], &[]), "pass"),
        ];
        for (r, expected) in cases {
            let got = crate::evaluate::finding::status_of(&r.conclude("stale", "fresh"));
            assert_eq!(got.as_str(), expected);
        }
        let v = results(&["eu: stale"], &["ap: AccessDenied"], &[])
            .conclude("stale", "fresh")
            .unwrap();
        assert!(
            v.message.contains("not known: ap: AccessDenied"),
            "{}",
            v.message
        );
    }
}
