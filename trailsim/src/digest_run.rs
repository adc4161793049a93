//! Writing digests: for each trail with log file validation, each of its chains gets a digest
//! listing the log files delivered since the last one (possibly none), linked and signed.

use crate::delivery::describe_trails;
use crate::digest::{DigestFile, Previous, data_to_sign, digest_key, sha256_hex, utc};
use crate::server::Sim;
use serde_json::{Value, json};

pub async fn run(sim: &Sim) -> Value {
    let _one_at_a_time = sim.delivering.lock().await;
    let accounts = sim.identities.lock().expect("identities lock").accounts();
    let mut written = Vec::new();
    let mut errors = Vec::new();
    for (account, key) in accounts {
        let trails = describe_trails(sim, &account, &key, &mut errors).await;
        for trail in trails.values().filter(|t| t.log_file_validation) {
            let chains: Vec<(String, crate::digest::Chain)> = {
                let mut digests = sim.digests.lock().expect("digests lock");
                digests
                    .chains
                    .entry((trail.arn.clone(), trail.home_region.clone()))
                    .or_default();
                digests
                    .chains
                    .iter()
                    .filter(|((arn, _), _)| *arn == trail.arn)
                    .map(|((_, region), chain)| (region.clone(), chain.clone()))
                    .collect()
            };
            for (region, chain) in chains {
                // A stopped trail gets a final digest for what it delivered, then none.
                if !trail.is_logging && chain.files.is_empty() {
                    continue;
                }
                let mut end = sim.now();
                // Keys carry the end time to the second: never two digests in one second.
                if let Some(last) = chain.last_end
                    && end < last + chrono::Duration::seconds(1)
                {
                    end = last + chrono::Duration::seconds(1);
                }
                let start = chain.start.unwrap_or(end);
                let object = digest_key(
                    trail.prefix.as_deref(),
                    &account,
                    &region,
                    &trail.name,
                    &trail.home_region,
                    end,
                );
                let bytes = DigestFile {
                    account: &account,
                    start,
                    end,
                    bucket: &trail.bucket,
                    key: &object,
                    fingerprint: &sim.signer.fingerprint,
                    previous: chain.previous.as_ref(),
                    files: &chain.files,
                }
                .to_bytes();
                let sha256 = sha256_hex(&bytes);
                let message = data_to_sign(
                    &utc(end),
                    &trail.bucket,
                    &object,
                    &sha256,
                    chain.previous.as_ref().map(|p| p.signature.as_str()),
                );
                let signature = sim.signer.sign(message.as_bytes());
                let put = sim
                    .upstream
                    .put_object(
                        &key,
                        &trail.home_region,
                        &trail.bucket,
                        &object,
                        crate::delivery::gzip(&bytes),
                        &[
                            ("signature", &signature),
                            ("signature-algorithm", "SHA256withRSA"),
                        ],
                    )
                    .await;
                if let Err(code) = put {
                    errors.push(json!({"trail": trail.arn, "digest": object, "error": code}));
                    continue;
                }
                let mut digests = sim.digests.lock().expect("digests lock");
                digests.latest_delivery.insert(trail.arn.clone(), sim.now());
                let c = digests
                    .chains
                    .entry((trail.arn.clone(), region.clone()))
                    .or_default();
                // Files delivered while this digest was written stay for the next one.
                let listed = chain.files.len();
                c.files.drain(..listed.min(c.files.len()));
                c.start = Some(end);
                c.last_end = Some(end);
                c.previous = Some(Previous {
                    bucket: trail.bucket.clone(),
                    key: object.clone(),
                    sha256,
                    signature,
                });
                written.push(json!({"trail": trail.arn, "key": object, "log_files": listed}));
            }
        }
    }
    json!({"digests": written, "errors": errors})
}
