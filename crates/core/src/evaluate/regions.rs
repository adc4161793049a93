//! The bucket checks judge each delivering region on its own, then conclude: a definite
//! failure anywhere fails the policy (naming what else is unknown), else a region that could
//! not be read makes it `error`, else a region too young for evidence makes it `pending`, else
//! it passes. A failed region never turns into a pass on the others' evidence, nor into a
//! failure of its own.

use super::{CheckResult, Verdict};
use crate::posture::{RegionEvidence, Trail, TrailEvidence, Unavailable};

#[derive(Debug, Default)]
pub struct RegionResults {
    pub failed: Vec<String>,
    pub unknown: Vec<String>,
    pub pending: Vec<String>,
    pub passed: Vec<String>,
}

impl RegionResults {
    /// The regions whose log folders a trail must fill (see `delivery::expected_regions`),
    /// with their evidence; the ones whose folder could not be read are noted unknown here
    /// and left out.
    pub fn readable<'e>(
        &mut self,
        trail: &Trail,
        evidence: &'e TrailEvidence,
        monitored: &[String],
    ) -> Vec<(String, Option<&'e RegionEvidence>)> {
        let mut out = Vec::new();
        for region in super::delivery::expected_regions(trail, monitored) {
            let r = evidence.region(&trail.account, &region);
            match r.and_then(|r| r.log_error.as_deref()) {
                Some(e) => self.unknown.push(format!("{region}: {e}")),
                None => out.push((region, r)),
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
