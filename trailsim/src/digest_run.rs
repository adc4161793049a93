//! Writing digests: for each trail with log file validation, each of its chains gets a digest
//! listing the log files delivered since the last one (possibly none), linked and signed. A
//! restart (StartLogging after StopLogging) first closes the old chain with a final digest of
//! what was delivered before it, then starts a new chain. Files delivered late are left out
//! of the next digest; a backfill run lists them in backfill digests (`…_backfill.json.gz`,
//! with `backfill-generation-timestamp`), each on its own, linked to nothing.

use crate::delivery::{TrailInfo, describe_trails};
use crate::digest::{
    Chain, DigestFile, LeftOut, LogFile, Previous, backfill_key, data_to_sign, digest_key,
    sha256_hex, utc,
};
use crate::server::Sim;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Writes the digests due (`backfill`: the backfill digests due instead).
pub async fn run(sim: &Sim, backfill: bool) -> Value {
    let _one_at_a_time = sim.delivering.lock().await;
    let accounts = sim.identities.lock().expect("identities lock").accounts();
    let mut written = Vec::new();
    let mut errors = Vec::new();
    for (account, key) in accounts {
        let trails = describe_trails(sim, &account, &key, &mut errors).await;
        for trail in trails.values().filter(|t| t.log_file_validation) {
            // Never take the history lock while holding the digests lock.
            let active_regions: Vec<(String, BTreeSet<String>)> = {
                let history = sim.history.lock().expect("history lock");
                let accounts = trail.accounts();
                accounts
                    .into_iter()
                    .map(|a| {
                        let regions = history.regions_of(&a);
                        (a, regions)
                    })
                    .collect()
            };
            let chains: Vec<(String, String, Chain)> = {
                let mut digests = sim.digests.lock().expect("digests lock");
                // Each account a trail logs for has a chain in the home region; a
                // multi-region trail one in every region, here every region the account has
                // been active in, so quiet ones get empty digests too.
                for (member, regions) in &active_regions {
                    let home = std::iter::once(&trail.home_region);
                    let others = regions.iter().filter(|_| trail.multi_region);
                    for region in home.chain(others) {
                        let key = (trail.arn.clone(), member.clone(), region.clone());
                        digests.chains.entry(key).or_default();
                    }
                }
                digests
                    .chains
                    .iter()
                    .filter(|((arn, member, _), _)| *arn == trail.arn && trail.covers(member))
                    .map(|((_, member, region), chain)| {
                        (member.clone(), region.clone(), chain.clone())
                    })
                    .collect()
            };
            for (member, region, chain) in chains {
                let target = Target {
                    sim,
                    trail,
                    account: &member,
                    key: &key,
                    region: &region,
                };
                if backfill {
                    let (objects, error) = write_backfills(&target, &chain.left_out).await;
                    for (object, files) in &objects {
                        written.push(json!({"trail": trail.arn, "key": object, "log_files": files, "backfill": true}));
                    }
                    if let Some(e) = error {
                        errors.push(json!({"trail": trail.arn, "region": region, "error": e}));
                    }
                    let mut digests = sim.digests.lock().expect("digests lock");
                    let c = digests
                        .chains
                        .entry((trail.arn.clone(), member.clone(), region.clone()))
                        .or_default();
                    c.left_out.drain(..objects.len().min(c.left_out.len()));
                    continue;
                }
                let outcome = close_and_continue(&target, &chain).await;
                for (object, files) in &outcome.written {
                    written.push(json!({"trail": trail.arn, "key": object, "log_files": files}));
                }
                if let Some(e) = &outcome.error {
                    errors.push(json!({"trail": trail.arn, "region": region, "error": e}));
                }
                write_back(sim, trail, &member, &region, &chain, outcome);
            }
        }
    }
    json!({"digests": written, "errors": errors})
}

/// Where a chain's digests go.
struct Target<'a> {
    sim: &'a Sim,
    trail: &'a TrailInfo,
    account: &'a str,
    key: &'a str,
    region: &'a str,
}

/// What a run did to one chain.
struct Outcome {
    /// Digest keys written, with the number of log files each lists.
    written: Vec<(String, usize)>,
    /// Pending files now listed in a digest (from the front).
    listed: usize,
    previous: Option<Previous>,
    start: Option<DateTime<Utc>>,
    last_end: Option<DateTime<Utc>>,
    /// The restart the run found was handled.
    restarted: bool,
    /// Interval of the last digest written: late files are left out of it.
    interval: Option<(DateTime<Utc>, DateTime<Utc>)>,
    error: Option<String>,
}

async fn close_and_continue(t: &Target<'_>, chain: &Chain) -> Outcome {
    let mut out = Outcome {
        written: Vec::new(),
        listed: 0,
        previous: chain.previous.clone(),
        start: chain.start,
        last_end: chain.last_end,
        restarted: false,
        interval: None,
        error: None,
    };
    let mut files: &[LogFile] = &chain.files;
    if let Some(n) = chain.restart_at {
        let (old, new) = files.split_at(n.min(files.len()));
        // The old chain's final digest, for what it delivered before the restart.
        if !old.is_empty() {
            match write(t, &mut out, old).await {
                Ok(()) => out.listed += old.len(),
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
        out.previous = None;
        out.restarted = true;
        files = new;
    }
    // A stopped trail gets a final digest for what it delivered, then none.
    if !t.trail.is_logging && files.is_empty() {
        return out;
    }
    match write(t, &mut out, files).await {
        Ok(()) => out.listed += files.len(),
        Err(e) => out.error = Some(e),
    }
    out
}

/// Writes one digest listing `files`, linked to `out.previous`, and advances `out`.
async fn write(t: &Target<'_>, out: &mut Outcome, files: &[LogFile]) -> Result<(), String> {
    let mut end = t.sim.now();
    // Keys carry the end time to the second: never two digests in one second.
    if let Some(last) = out.last_end
        && end < last + chrono::Duration::seconds(1)
    {
        end = last + chrono::Duration::seconds(1);
    }
    let start = out.start.unwrap_or(end);
    let object = t.digest_key(end);
    let (sha256, signature) =
        put_signed(t, &object, start, end, out.previous.as_ref(), files, None).await?;
    out.written.push((object.clone(), files.len()));
    out.interval = Some((start, end));
    out.start = Some(end);
    out.last_end = Some(end);
    out.previous = Some(Previous {
        bucket: t.trail.bucket.clone(),
        key: object,
        sha256,
        signature,
    });
    Ok(())
}

/// Stores what the run did. Files delivered, or a restart made, while it ran stay pending.
fn write_back(
    sim: &Sim,
    trail: &TrailInfo,
    account: &str,
    region: &str,
    seen: &Chain,
    out: Outcome,
) {
    let mut digests = sim.digests.lock().expect("digests lock");
    if !out.written.is_empty() {
        digests.latest_delivery.insert(trail.arn.clone(), sim.now());
    }
    let c = digests
        .chains
        .entry((trail.arn.clone(), account.to_string(), region.to_string()))
        .or_default();
    c.files.drain(..out.listed.min(c.files.len()));
    if let Some((start, end)) = out.interval {
        let files: Vec<LogFile> = c.late.drain(..seen.late.len().min(c.late.len())).collect();
        if !files.is_empty() {
            c.left_out.push(LeftOut { start, end, files });
        }
    }
    c.previous = out.previous;
    c.start = out.start;
    c.last_end = out.last_end;
    c.restart_at = match (seen.restart_at, c.restart_at) {
        // The restart this run saw is done.
        (Some(_), Some(now)) if out.restarted && Some(now) == seen.restart_at => None,
        // A restart came in while the run wrote: it applies to what is still pending.
        (_, Some(now)) => Some(now.saturating_sub(out.listed)),
        (_, None) => None,
    };
}

/// Writes a backfill digest for each of `left_out`, in order, until one fails. Returns the
/// keys written with their number of files, and the failure.
async fn write_backfills(
    t: &Target<'_>,
    left_out: &[LeftOut],
) -> (Vec<(String, usize)>, Option<String>) {
    let mut written = Vec::new();
    for entry in left_out {
        let object = backfill_key(&t.digest_key(entry.end));
        let generated = utc(t.sim.now());
        let put = put_signed(
            t,
            &object,
            entry.start,
            entry.end,
            None,
            &entry.files,
            Some(&generated),
        )
        .await;
        if let Err(e) = put {
            return (written, Some(e));
        }
        written.push((object, entry.files.len()));
    }
    (written, None)
}

impl Target<'_> {
    /// The key of this chain's digest ending at `end`.
    fn digest_key(&self, end: DateTime<Utc>) -> String {
        let trail = self.trail;
        digest_key(
            trail.prefix.as_deref(),
            trail.org_id(),
            self.account,
            self.region,
            &trail.name,
            &trail.home_region,
            end,
        )
    }
}

/// Writes digest `object` listing `files`, signed, with its signature metadata (and
/// `backfill-generation-timestamp` for a backfill digest). Returns its SHA-256 and signature.
async fn put_signed(
    t: &Target<'_>,
    object: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    previous: Option<&Previous>,
    files: &[LogFile],
    backfill_generated: Option<&str>,
) -> Result<(String, String), String> {
    let trail = t.trail;
    let bytes = DigestFile {
        account: t.account,
        start,
        end,
        bucket: &trail.bucket,
        key: object,
        fingerprint: &t.sim.signer.fingerprint,
        previous,
        files,
    }
    .to_bytes();
    let sha256 = sha256_hex(&bytes);
    let message = data_to_sign(
        &utc(end),
        &trail.bucket,
        object,
        &sha256,
        previous.map(|p| p.signature.as_str()),
    );
    let signature = t.sim.signer.sign(message.as_bytes());
    let mut metadata = vec![
        ("signature", signature.as_str()),
        ("signature-algorithm", "SHA256withRSA"),
    ];
    if let Some(generated) = backfill_generated {
        metadata.push(("backfill-generation-timestamp", generated));
    }
    t.sim
        .upstream
        .put_object(
            t.key,
            &trail.home_region,
            &trail.bucket,
            object,
            crate::delivery::gzip(&bytes),
            &metadata,
        )
        .await
        .map_err(|code| format!("{object}: {code}"))?;
    Ok((sha256, signature))
}
