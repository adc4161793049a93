//! Who is calling: access keys mapped to principals. AssumeRole answers that pass through
//! trailsim teach it the assumed-role keys; any other key is moto's default IAM user.

use serde_json::{Value, json};
use std::collections::HashMap;

/// moto's default account and user for keys it has not issued.
pub const DEFAULT_ACCOUNT: &str = "123456789012";
/// A key moto maps to its default account, for trailsim's own calls.
pub const DEFAULT_KEY: &str = "AKIATRAILSIMDELIVERY";

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub kind: &'static str,
    pub arn: String,
    pub account_id: String,
    pub principal_id: String,
    /// The IAM user name, or the role session name.
    pub user_name: String,
    /// For an assumed role: the role's ARN.
    pub issuer_arn: Option<String>,
}

impl Identity {
    pub fn default_user(access_key_id: &str) -> Identity {
        Identity {
            kind: "IAMUser",
            arn: format!("arn:aws:iam::{DEFAULT_ACCOUNT}:user/moto"),
            account_id: DEFAULT_ACCOUNT.into(),
            principal_id: format!("AIDA{}", access_key_id.get(4..).unwrap_or("EXAMPLE")),
            user_name: "moto".into(),
            issuer_arn: None,
        }
    }

    /// `userIdentity` of a CloudTrail record.
    pub fn to_record(&self, access_key_id: &str) -> Value {
        let mut v = json!({
            "type": self.kind,
            "principalId": self.principal_id,
            "arn": self.arn,
            "accountId": self.account_id,
            "accessKeyId": access_key_id,
        });
        match &self.issuer_arn {
            None => v["userName"] = json!(self.user_name),
            Some(role) => {
                let role_name = role.rsplit('/').next().unwrap_or_default();
                v["sessionContext"] = json!({
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": self.principal_id.split(':').next().unwrap_or_default(),
                        "arn": role,
                        "accountId": self.account_id,
                        "userName": role_name,
                    },
                    "attributes": {"mfaAuthenticated": "false"},
                });
            }
        }
        v
    }
}

#[derive(Default)]
pub struct Identities {
    by_key: HashMap<String, Identity>,
}

impl Identities {
    pub fn of(&self, access_key_id: &str) -> Identity {
        self.by_key
            .get(access_key_id)
            .cloned()
            .unwrap_or_else(|| Identity::default_user(access_key_id))
    }

    /// Whether trailsim issued `access_key_id` (an AssumeRole answer taught it); any other key
    /// is moto's default user.
    pub fn issued(&self, access_key_id: &str) -> bool {
        self.by_key.contains_key(access_key_id)
    }

    /// Learns the keys of an AssumeRole answer (STS query protocol, XML).
    pub fn learn_assume_role(&mut self, response: &[u8]) {
        let Some((_, doc)) = crate::xml::document(response) else {
            return;
        };
        let result = &doc["AssumeRoleResult"];
        let (Some(key), Some(arn), Some(id)) = (
            result["Credentials"]["AccessKeyId"].as_str(),
            result["AssumedRoleUser"]["Arn"].as_str(),
            result["AssumedRoleUser"]["AssumedRoleId"].as_str(),
        ) else {
            return;
        };
        // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
        let account = arn.split(':').nth(4).unwrap_or(DEFAULT_ACCOUNT).to_string();
        let mut parts = arn.rsplit('/');
        let session = parts.next().unwrap_or_default().to_string();
        let role = parts.next().unwrap_or_default();
        self.by_key.insert(
            key.to_string(),
            Identity {
                kind: "AssumedRole",
                arn: arn.to_string(),
                account_id: account.clone(),
                principal_id: id.to_string(),
                user_name: session,
                issuer_arn: Some(format!("arn:aws:iam::{account}:role/{role}")),
            },
        );
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
    }

    /// One access key per known account (moto tells accounts apart by key), the default
    /// account's first.
    pub fn accounts(&self) -> Vec<(String, String)> {
        let mut seen = std::collections::BTreeMap::new();
        for (key, id) in &self.by_key {
            seen.entry(id.account_id.clone())
                .or_insert_with(|| key.clone());
        }
        let mut out = vec![(DEFAULT_ACCOUNT.to_string(), DEFAULT_KEY.to_string())];
        out.extend(seen.into_iter().filter(|(a, _)| a != DEFAULT_ACCOUNT));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_assumed_role_keys() {
        let mut ids = Identities::default();
        ids.learn_assume_role(br#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAXYZ</AccessKeyId><SecretAccessKey>s</SecretAccessKey></Credentials><AssumedRoleUser><AssumedRoleId>AROAXYZ:tests</AssumedRoleId><Arn>arn:aws:sts::222233334444:assumed-role/auditor/tests</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"#);
        let id = ids.of("ASIAXYZ");
        assert_eq!(id.kind, "AssumedRole");
        assert_eq!(id.account_id, "222233334444");
        assert_eq!(id.user_name, "tests");
        let r = id.to_record("ASIAXYZ");
        assert_eq!(
            r["arn"],
            "arn:aws:sts::222233334444:assumed-role/auditor/tests"
        );
        assert_eq!(
            r["sessionContext"]["sessionIssuer"]["arn"],
            "arn:aws:iam::222233334444:role/auditor"
        );
        assert_eq!(ids.of("AKIAOTHER").account_id, DEFAULT_ACCOUNT);
        assert!(ids.issued("ASIAXYZ") && !ids.issued("AKIAOTHER"));
    }
}
