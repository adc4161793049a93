//! CloudTrail's digest signing keys of one region: ListPublicKeys.

use super::aws::{Aws, unavailable};
use crate::integrity::digest::{PublicKey, PublicKeys};
use crate::posture::Unavailable;
use chrono::{DateTime, Utc};

/// Keys that signed digests in `[from, to]` in `region` (keys are per delivering region).
/// A key whose fingerprint does not match its bytes is left out and reported in `rejected`.
pub async fn public_keys(
    aws: &Aws,
    region: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(PublicKeys, Vec<String>), Unavailable> {
    let ct = aws.cloudtrail(region);
    let mut keys = PublicKeys::default();
    let mut rejected = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ct
            .list_public_keys()
            .start_time(aws_smithy_types::DateTime::from_secs(from.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(to.timestamp()))
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| unavailable("ListPublicKeys", &e))?;
        for k in out.public_key_list() {
            let (Some(value), Some(fp)) = (k.value(), k.fingerprint()) else {
                continue;
            };
            let time = |t: Option<&aws_smithy_types::DateTime>| t.and_then(super::to_utc);
            match PublicKey::new(
                value.as_ref(),
                fp,
                time(k.validity_start_time()),
                time(k.validity_end_time()),
            ) {
                Ok(key) => keys.insert(key),
                Err(e) => rejected.push(e),
            }
        }
        // NextToken is "reserved for future use"; follow it if it ever comes.
        match out.next_token() {
            Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.into()),
            _ => return Ok((keys, rejected)),
        }
    }
}
