//! What evaluation produces: one finding per policy and resource.

use crate::config::Severity;
use crate::posture::Unavailable;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The policy could not be evaluated; the message says why.
    Error,
    /// The resource is too young to have the evidence yet (a trail before its first
    /// expected delivery or digest): neither a pass nor a failure, and not an error either.
    Pending,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Pass, Status::Fail, Status::Error, Status::Pending];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Pending => "pending",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub policy: String,
    pub severity: Severity,
    pub status: Status,
    pub account: String,
    pub region: String,
    /// The full identifier (a trail ARN, or the region for regional checks): for `/status`.
    pub resource: String,
    /// A short name for the `resource` metric label: never an ARN.
    pub resource_name: String,
    pub message: String,
}

impl Finding {
    /// The finding's id, the same at every evaluation: account, policy and resource (OCSF's
    /// `finding_info.uid`, Security Hub's `Id`).
    pub fn uid(&self) -> String {
        format!(
            "trailwarden/{}/{}/{}",
            self.account, self.policy, self.resource
        )
    }
}

/// A check's answer when it had the data it needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// Not passed and not failed: the evidence is not due yet.
    pub pending: bool,
    pub message: String,
}

impl Verdict {
    pub fn pass(message: impl Into<String>) -> Self {
        Verdict {
            passed: true,
            pending: false,
            message: message.into(),
        }
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Verdict {
            passed: false,
            pending: false,
            message: message.into(),
        }
    }

    pub fn pending(message: impl Into<String>) -> Self {
        Verdict {
            passed: false,
            pending: true,
            message: message.into(),
        }
    }
}

/// `Err` when the check could not be evaluated: that becomes status `error`, never `pass`.
pub type CheckResult = Result<Verdict, Unavailable>;

/// The status a check's result gives its finding.
pub fn status_of(result: &CheckResult) -> Status {
    match result {
        Ok(v) if v.passed => Status::Pass,
        Ok(v) if v.pending => Status::Pending,
        Ok(_) => Status::Fail,
        Err(_) => Status::Error,
    }
}

/// Clones the error out of a borrowed [`crate::posture::Fetched`], for use with `?`.
pub fn need<T>(fetched: &Result<T, Unavailable>) -> Result<&T, Unavailable> {
    fetched.as_ref().map_err(Clone::clone)
}
