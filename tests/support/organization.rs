//! An AWS Organization in moto, through trailsim: a management account, member accounts
//! made with CreateAccount, the audit role in members, and accounts closed.

use super::Account;
use super::lab::{Lab, account_at, isolated_account_at, sdk_config};
use aws_config::SdkConfig;
use aws_sdk_s3::config::Credentials;

pub const AUDIT_ROLE: &str = "trailwarden-audit";
pub const EXTERNAL_ID: &str = "trailwarden-org-test";

pub struct Organization {
    pub management: Account,
    pub sdk: SdkConfig,
    pub id: String,
    pub root: String,
}

/// The SDK configuration of an account's credentials.
pub async fn sdk_of(a: &Account) -> SdkConfig {
    sdk_config(
        &a.endpoint,
        Credentials::new(
            a.access_key_id.clone(),
            a.secret_access_key.clone(),
            Some(a.session_token.clone()),
            None,
            "tests",
        ),
    )
    .await
}

impl Organization {
    /// A fresh management account and its organization (all features).
    pub async fn create(endpoint: &str) -> Organization {
        let management = isolated_account_at(endpoint).await;
        let sdk = sdk_of(&management).await;
        let org = aws_sdk_organizations::Client::new(&sdk)
            .create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await
            .expect("CreateOrganization");
        let id = org.organization().unwrap().id().unwrap().to_string();
        let roots = aws_sdk_organizations::Client::new(&sdk)
            .list_roots()
            .send()
            .await
            .expect("ListRoots");
        let root = roots.roots()[0].id().unwrap().to_string();
        Organization {
            management,
            sdk,
            id,
            root,
        }
    }

    pub fn client(&self) -> aws_sdk_organizations::Client {
        aws_sdk_organizations::Client::new(&self.sdk)
    }

    /// A new member account (CreateAccount), under `unit` when given.
    pub async fn add_account(&self, name: &str, unit: Option<&str>) -> String {
        let created = self
            .client()
            .create_account()
            .email(format!("{name}@example.com"))
            .account_name(name)
            .send()
            .await
            .expect("CreateAccount");
        let id = created
            .create_account_status()
            .and_then(|s| s.account_id())
            .expect("account id")
            .to_string();
        if let Some(unit) = unit {
            self.client()
                .move_account()
                .account_id(&id)
                .source_parent_id(&self.root)
                .destination_parent_id(unit)
                .send()
                .await
                .expect("MoveAccount");
        }
        id
    }

    /// A new organizational unit under the root.
    pub async fn add_unit(&self, name: &str) -> String {
        self.client()
            .create_organizational_unit()
            .parent_id(&self.root)
            .name(name)
            .send()
            .await
            .expect("CreateOrganizationalUnit")
            .organizational_unit()
            .unwrap()
            .id()
            .unwrap()
            .to_string()
    }

    /// Credentials in a member, as an administrator would get them.
    pub async fn enter(&self, id: &str) -> Account {
        account_at(
            &self.management.endpoint,
            id.to_string(),
            "OrganizationAccountAccessRole",
        )
        .await
    }

    /// The audit role in `member`, trusting the management account with the external ID
    /// (what deploy/aws/audit-role.yaml makes).
    pub fn create_audit_role(&self, member: &Account) {
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.management.id)},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }],
        });
        cli(
            member,
            &[
                "iam",
                "create-role",
                "--role-name",
                AUDIT_ROLE,
                "--assume-role-policy-document",
                &trust.to_string(),
            ],
        );
    }

    /// A member entered as an administrator would, with the audit role made in it.
    pub async fn enter_with_role(&self, id: &str) -> Account {
        let member = self.enter(id).await;
        self.create_audit_role(&member);
        member
    }

    /// The organization trail, in the management account, writing to the log archive's
    /// bucket with its key, logging. Returns its ARN.
    pub async fn start_trail_into(&self, log_archive: &Lab) -> String {
        let ct = aws_sdk_cloudtrail::Client::new(&self.sdk);
        let arn = ct
            .create_trail()
            .name("org")
            .s3_bucket_name(&log_archive.bucket)
            .kms_key_id(&log_archive.key_arn)
            .is_organization_trail(true)
            .is_multi_region_trail(true)
            .include_global_service_events(true)
            .enable_log_file_validation(true)
            .send()
            .await
            .expect("CreateTrail")
            .trail_arn()
            .unwrap()
            .to_string();
        ct.start_logging().name(&arn).send().await.unwrap();
        arn
    }

    /// CloseAccount: moto makes it SUSPENDED at once.
    pub async fn close(&self, id: &str) {
        self.client()
            .close_account()
            .account_id(id)
            .send()
            .await
            .expect("CloseAccount");
    }
}

/// The AWS CLI as `account`; panics unless it succeeds.
pub fn cli(account: &Account, args: &[&str]) -> String {
    let out = std::process::Command::new(testbed::awscli())
        .args(args)
        .args([
            "--endpoint-url",
            &account.endpoint,
            "--output",
            "json",
            "--region",
            "us-east-1",
        ])
        .envs(account.env())
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run the AWS CLI");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "aws {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
