//! Findings in the AWS Security Finding Format (ASFF), as Security Hub CSPM imports them
//! with BatchImportFindings: one finding per trailwarden finding, its `Id` the finding's uid
//! (so each import updates the same finding), `Compliance.Status` PASSED or FAILED. Security
//! Hub reopens a finding that fails again (workflow NEW); one that passes again is resolved by
//! the daemon (BatchUpdateFindings). An `error` or `pending` finding is not imported: Security
//! Hub keeps the last verdict rather than a pass or fail trailwarden cannot vouch for.

use crate::config::Severity;
use crate::evaluate::{Finding, Status};

pub const SCHEMA_VERSION: &str = "2018-10-08";

/// What one imported finding says; the edge builds the SDK's finding from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsffFinding {
    pub id: String,
    pub account: String,
    /// The policy: Security Hub groups findings by it.
    pub generator_id: String,
    pub title: String,
    pub description: String,
    /// INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL.
    pub severity: &'static str,
    /// PASSED or FAILED.
    pub compliance: &'static str,
    /// The message, as Compliance.StatusReasons' description.
    pub reason: String,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub resource_region: String,
}

/// ASFF's finding type for a configuration check against trailwarden's policies.
pub const FINDING_TYPE: &str = "Software and Configuration Checks/AWS Security Best Practices";

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFORMATIONAL",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// The ASFF resource type of a finding's resource.
fn resource_type(resource: &str) -> &'static str {
    if resource.starts_with("arn:") && resource.contains(":cloudtrail:") {
        "AwsCloudTrailTrail"
    } else if resource.starts_with("account/") {
        "AwsAccount"
    } else {
        "Other"
    }
}

/// The finding to import; `None` for `error` and `pending`.
pub fn asff_finding(f: &Finding, description: Option<&str>) -> Option<AsffFinding> {
    let compliance = match f.status {
        Status::Pass => "PASSED",
        Status::Fail => "FAILED",
        Status::Error | Status::Pending => return None,
    };
    // Description is required and at most 1024 characters.
    let mut text = description.map_or_else(|| f.message.clone(), |d| format!("{d}: {}", f.message));
    if text.chars().count() > 1024 {
        text = text.chars().take(1023).collect::<String>() + "…";
    }
    Some(AsffFinding {
        id: f.uid(),
        account: f.account.clone(),
        generator_id: format!("trailwarden/{}", f.policy),
        // Title: at most 256 characters.
        title: format!("trailwarden {}: {}", f.policy, f.resource_name)
            .chars()
            .take(256)
            .collect(),
        description: text,
        severity: severity(f.severity),
        compliance,
        reason: f.message.chars().take(2048).collect(),
        resource_type: resource_type(&f.resource),
        resource_id: f.resource.clone(),
        resource_region: f.region.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(status: Status) -> Finding {
        Finding {
            policy: "trail-logging".into(),
            severity: Severity::Critical,
            status,
            account: "123456789012".into(),
            region: "us-east-1".into(),
            resource: "arn:aws:cloudtrail:us-east-1:123456789012:trail/org".into(),
            resource_name: "org".into(),
            message: "stopped".into(),
        }
    }

    #[test]
    fn only_a_pass_or_a_fail_is_imported_and_always_under_the_same_id() {
        let fail = asff_finding(&finding(Status::Fail), Some("Trail logs")).unwrap();
        let pass = asff_finding(&finding(Status::Pass), None).unwrap();
        assert_eq!((fail.compliance, pass.compliance), ("FAILED", "PASSED"));
        assert_eq!(fail.id, pass.id);
        assert_eq!(fail.severity, "CRITICAL");
        assert_eq!(fail.resource_type, "AwsCloudTrailTrail");
        assert_eq!(fail.description, "Trail logs: stopped");
        assert_eq!(asff_finding(&finding(Status::Error), None), None);
        assert_eq!(asff_finding(&finding(Status::Pending), None), None);
    }

    #[test]
    fn a_long_message_fits_asffs_limit() {
        let mut f = finding(Status::Fail);
        f.message = "x".repeat(5000);
        f.resource_name = "t".repeat(500);
        let a = asff_finding(&f, None).unwrap();
        assert_eq!(a.title.chars().count(), 256);
        assert_eq!(a.description.chars().count(), 1024);
        assert_eq!(a.reason.chars().count(), 2048);
    }
}
