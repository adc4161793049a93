//! KMS: the trail's key, its state, rotation and aliases.

use super::aws::{Aws, error_code, unavailable};
use crate::posture::{Fetched, KeyPosture, Unavailable, arn_account, arn_region};

/// Collects the key a trail names (key id, key ARN, alias name or alias ARN). The call goes
/// to the key's region (from its ARN) or else the trail's home region.
pub async fn key_posture(aws: &Aws, home_region: &str, key: &str) -> Fetched<KeyPosture> {
    let region = arn_region(key).unwrap_or(home_region);
    let kms = aws.kms(region);
    let described = match kms.describe_key().key_id(key).send().await {
        Ok(out) => out,
        Err(e) => {
            let mut reason = unavailable("DescribeKey", &e);
            if error_code(&e) == Some("NotFoundException") {
                // A key that does not exist is a finding, not a gap: CloudTrail cannot use it.
                return Ok(KeyPosture {
                    key_id: key.to_string(),
                    arn: key.to_string(),
                    account: arn_account(key).unwrap_or_default().to_string(),
                    state: "NotFound".to_string(),
                    rotation_enabled: Err(Unavailable::new("the key does not exist")),
                    aliases: Ok(Vec::new()),
                });
            }
            if let Some(account) = arn_account(key) {
                reason
                    .reason
                    .push_str(&format!(" (key is in account {account})"));
            }
            return Err(reason);
        }
    };
    let Some(meta) = described.key_metadata() else {
        return Err(Unavailable::new("DescribeKey: answer without KeyMetadata"));
    };
    let arn = meta.arn().unwrap_or(key).to_string();
    let key_id = meta.key_id().to_string();
    let (rotation, aliases) = tokio::join!(
        kms.get_key_rotation_status().key_id(&key_id).send(),
        kms.list_aliases().key_id(&key_id).send(),
    );
    Ok(KeyPosture {
        account: meta
            .aws_account_id()
            .map(str::to_string)
            .or_else(|| arn_account(&arn).map(str::to_string))
            .unwrap_or_default(),
        state: meta
            .key_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| {
                if meta.enabled() {
                    "Enabled"
                } else {
                    "Disabled"
                }
                .to_string()
            }),
        key_id,
        arn,
        rotation_enabled: rotation
            .map(|r| r.key_rotation_enabled())
            .map_err(|e| unavailable("GetKeyRotationStatus", &e)),
        aliases: aliases
            .map(|a| {
                a.aliases()
                    .iter()
                    .filter_map(|a| a.alias_name().map(str::to_string))
                    .collect()
            })
            .map_err(|e| unavailable("ListAliases", &e)),
    })
}
