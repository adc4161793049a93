//! STS: which account the daemon's credentials belong to.

use super::aws::{Aws, unavailable};
use crate::posture::{Fetched, Unavailable};

/// The caller's account id (GetCallerIdentity needs no permission).
pub async fn caller_account(aws: &Aws) -> Fetched<String> {
    let out = aws
        .sts()
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| unavailable("GetCallerIdentity", &e))?;
    out.account()
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Unavailable::new("GetCallerIdentity: answer without an account"))
}
