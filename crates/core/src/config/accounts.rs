//! The `accounts` section: which accounts one deployment watches, and how it reaches them.
//!
//! Without the section only the daemon's own account is watched. With it, the accounts come
//! from AWS Organizations (the daemon running in the management or a delegated administrator
//! account) or from a fixed list; in each one an audit role is assumed. The daemon's own
//! account is watched with its own credentials, without a role.

use super::yaml::{self, CronSchedule, HumanDuration};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// Discover the accounts with Organizations (ListRoots, ListOrganizationalUnitsForParent,
    /// ListAccountsForParent, ListTagsForResource).
    #[serde(default)]
    pub organization: Option<OrganizationDiscovery>,
    /// Or name them.
    #[serde(default)]
    pub list: Option<Vec<AccountId>>,
    /// Only these accounts (after discovery); empty: every account discovered.
    #[serde(default)]
    pub include: Vec<AccountId>,
    /// Never these accounts.
    #[serde(default)]
    pub exclude: Vec<AccountId>,
    pub role: RoleSettings,
    /// The account that owns a trail's bucket, by bucket name, where ListBuckets of the
    /// watched accounts cannot tell (the owner's role lacks it). Others are discovered.
    #[serde(default)]
    pub bucket_owners: std::collections::BTreeMap<String, AccountId>,
    /// Accounts collected at the same time.
    #[serde(default = "default_concurrency", deserialize_with = "concurrency")]
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationDiscovery {
    /// Only accounts under these organizational units (at any depth) or roots; empty: the
    /// whole organization.
    #[serde(default)]
    pub organizational_units: Vec<OrganizationalUnitId>,
    /// When the account list is read again: new accounts are watched from then on, accounts
    /// that left, were suspended or closed are retired.
    #[serde(default = "default_refresh")]
    pub refresh: CronSchedule,
}

/// The audit role assumed in every watched account but the daemon's own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSettings {
    /// The role's ARN with `{account}` where the account id goes.
    pub arn: RoleArnTemplate,
    /// The external ID the role's trust policy requires.
    #[serde(default)]
    pub external_id: Option<ExternalId>,
    #[serde(default = "default_session_name")]
    pub session_name: SessionName,
    /// How long assumed credentials last; the SDK refreshes them before they expire.
    #[serde(default = "default_duration", deserialize_with = "session_duration")]
    pub duration: HumanDuration,
}

impl AccountSettings {
    /// Checks between fields.
    pub fn check(&self) -> Result<(), String> {
        match (&self.organization, &self.list) {
            (Some(_), Some(_)) => {
                Err("accounts: give either organization or list, not both".into())
            }
            (None, None) => Err(
                "accounts: give organization (discover the accounts) or list (name them)".into(),
            ),
            _ => Ok(()),
        }
    }

    /// Whether `account` is in scope by the include and exclude lists.
    pub fn selects(&self, account: &str) -> bool {
        let listed = |l: &[AccountId]| l.iter().any(|a| a.0 == account);
        (self.include.is_empty() || listed(&self.include)) && !listed(&self.exclude)
    }
}

impl RoleSettings {
    /// The role to assume in `account`.
    pub fn arn_for(&self, account: &str) -> String {
        self.arn.0.replace("{account}", account)
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccountId(pub String);

impl yaml::ParseScalar for AccountId {
    const EXPECTING: &'static str = "a 12-digit account id, quoted";
    fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(text.to_string()))
        } else {
            Err(format!("{text:?} is not a 12-digit account id"))
        }
    }
}
yaml::scalar_deserialize!(AccountId);

/// `ou-xxxx-yyyyyyyy` or a root, `r-xxxx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationalUnitId(pub String);

impl yaml::ParseScalar for OrganizationalUnitId {
    const EXPECTING: &'static str = "an organizational unit id (ou-...) or root id (r-...)";
    fn parse(text: &str) -> Result<Self, String> {
        let id_chars = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        let ok = match text.strip_prefix("ou-") {
            Some(rest) => rest.split('-').count() == 2 && rest.split('-').all(id_chars),
            None => text.strip_prefix("r-").is_some_and(id_chars),
        };
        if ok {
            Ok(OrganizationalUnitId(text.to_string()))
        } else {
            Err(format!(
                "{text:?} is not an organizational unit id (ou-ab12-cd34ef56) or root id (r-ab12)"
            ))
        }
    }
}
yaml::scalar_deserialize!(OrganizationalUnitId);

/// `arn:<partition>:iam::{account}:role/<path and name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArnTemplate(pub String);

impl yaml::ParseScalar for RoleArnTemplate {
    const EXPECTING: &'static str = "a role ARN template: arn:aws:iam::{account}:role/NAME";
    fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "iam"
            && parts[3].is_empty()
            && parts[4] == "{account}"
            && parts[5]
                .strip_prefix("role/")
                .is_some_and(|n| !n.is_empty());
        if ok {
            Ok(RoleArnTemplate(text.to_string()))
        } else {
            Err(format!(
                "{text:?} is not a role ARN template like arn:aws:iam::{{account}}:role/trailwarden-audit"
            ))
        }
    }
}
yaml::scalar_deserialize!(RoleArnTemplate);

/// STS's rules for an external ID: 2 to 1224 of `[\w+=,.@:/-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId(pub String);

impl yaml::ParseScalar for ExternalId {
    const EXPECTING: &'static str = "an external ID";
    fn parse(text: &str) -> Result<Self, String> {
        let ok = (2..=1224).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
        if ok {
            Ok(ExternalId(text.to_string()))
        } else {
            Err("an external ID is 2 to 1224 letters, digits or _+=,.@:/-".into())
        }
    }
}
yaml::scalar_deserialize!(ExternalId);

/// STS's rules for a session name: 2 to 64 of `[\w+=,.@-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionName(pub String);

impl yaml::ParseScalar for SessionName {
    const EXPECTING: &'static str = "a session name";
    fn parse(text: &str) -> Result<Self, String> {
        let ok = (2..=64).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
        if ok {
            Ok(SessionName(text.to_string()))
        } else {
            Err(format!(
                "{text:?}: a session name is 2 to 64 letters, digits or _+=,.@-"
            ))
        }
    }
}
yaml::scalar_deserialize!(SessionName);

fn default_concurrency() -> usize {
    8
}
fn concurrency<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    yaml::deserialize_bounded(d, "concurrency", 1, 256).map(|n| n as usize)
}
fn default_refresh() -> CronSchedule {
    CronSchedule("0 */15 * * * *".to_string())
}
fn default_session_name() -> SessionName {
    SessionName("trailwarden".to_string())
}
fn default_duration() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
/// STS accepts 15 minutes to 12 hours (the role's own maximum may be lower).
fn session_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let v = HumanDuration::deserialize(d)?;
    if !(Duration::from_secs(900)..=Duration::from_secs(12 * 3600)).contains(&v.0) {
        return Err(serde::de::Error::custom(
            "a role session lasts from 15m to 12h",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_str;
    use std::path::Path;

    fn parse(text: &str) -> Result<AccountSettings, String> {
        let s: AccountSettings = parse_str(Path::new("a.yaml"), text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    const ROLE: &str = "role: { arn: 'arn:aws:iam::{account}:role/trailwarden-audit' }\n";

    #[test]
    fn an_organization_with_defaults() {
        let s = parse(&format!("organization: {{}}\n{ROLE}")).unwrap();
        let org = s.organization.as_ref().unwrap();
        assert!(org.organizational_units.is_empty());
        assert_eq!(org.refresh.0, "0 */15 * * * *");
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.role.session_name.0, "trailwarden");
        assert_eq!(s.role.duration.0, Duration::from_secs(3600));
        assert_eq!(
            s.role.arn_for("123456789012"),
            "arn:aws:iam::123456789012:role/trailwarden-audit"
        );
    }

    #[test]
    fn include_and_exclude_select() {
        let s = parse(&format!(
            "list: ['111111111111', '222222222222']\nexclude: ['222222222222']\n{ROLE}"
        ))
        .unwrap();
        assert!(s.selects("111111111111"));
        assert!(!s.selects("222222222222"));
        let s = parse(&format!(
            "organization: {{}}\ninclude: ['111111111111']\n{ROLE}"
        ))
        .unwrap();
        assert!(s.selects("111111111111"));
        assert!(!s.selects("333333333333"));
    }

    #[test]
    fn every_bad_value_is_refused_with_its_reason() {
        for (text, says) in [
            (ROLE.to_string(), "give organization"),
            (
                format!("organization: {{}}\nlist: ['111111111111']\n{ROLE}"),
                "not both",
            ),
            (format!("list: ['1234']\n{ROLE}"), "12-digit"),
            (
                format!("organization: {{}}\nbucket_owners: {{ logs: '12' }}\n{ROLE}"),
                "12-digit",
            ),
            (
                format!("organization: {{ organizational_units: [prod] }}\n{ROLE}"),
                "organizational unit id",
            ),
            (
                "list: ['111111111111']\nrole: { arn: 'arn:aws:iam::111111111111:role/x' }\n"
                    .into(),
                "role ARN template",
            ),
            (
                "list: ['111111111111']\nrole: { arn: 'arn:aws:iam::{account}:role/x', duration: 5m }\n"
                    .into(),
                "15m to 12h",
            ),
            (
                "list: ['111111111111']\nrole: { arn: 'arn:aws:iam::{account}:role/x', external_id: 'a b' }\n"
                    .into(),
                "external ID",
            ),
            (
                format!("list: ['111111111111']\nconcurrency: 0\n{ROLE}"),
                "from 1 to 256",
            ),
            (
                format!("organization: {{ refresh: hourly }}\n{ROLE}"),
                "cron",
            ),
        ] {
            let e = parse(&text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn bucket_owners_name_accounts() {
        let s = parse(&format!(
            "organization: {{}}\nbucket_owners: {{ org-logs: '444455556666' }}\n{ROLE}"
        ))
        .unwrap();
        assert_eq!(s.bucket_owners["org-logs"].0, "444455556666");
    }

    #[test]
    fn root_and_unit_ids_are_accepted() {
        let s = parse(&format!(
            "organization: {{ organizational_units: [r-ab12, ou-ab12-cd34ef56] }}\n{ROLE}"
        ))
        .unwrap();
        assert_eq!(s.organization.unwrap().organizational_units.len(), 2);
    }
}
