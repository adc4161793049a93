//! Which replica watches what, when the work is split over `total` shards (issue 14): each
//! account, and each bucket, belongs to exactly one shard, chosen by rendezvous (highest
//! random weight) hashing. A resize from M to M+1 shards moves about 1/(M+1) of the keys,
//! most of them to the new shard, so a resize does not reset every shard's state. A
//! StatefulSet pod finds its ordinal in its hostname.
//!
//! Accounts are placed over the whole roster with bounded loads (`Placement`): hashing alone
//! places each key on its own, so shard sizes scatter like a die's throws, and the worst of 4
//! shards over 1,000 accounts passes 10 % over even in a fair share of organizations.
//! Buckets, a handful, are placed by hashing alone.
//!
//! The weights are SHA-256 based: the same on every build, platform and process, which is
//! what lets replicas agree without talking to each other.

use aws_lc_rs::digest::{Context, SHA256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One shard of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub ordinal: u32,
    pub total: u32,
}

impl Shard {
    /// A single replica: it owns everything.
    pub const ALONE: Shard = Shard {
        ordinal: 0,
        total: 1,
    };

    pub fn new(ordinal: u32, total: u32) -> Result<Shard, String> {
        if total == 0 {
            return Err("the total number of shards must be at least 1".into());
        }
        if ordinal >= total {
            return Err(format!(
                "shard {ordinal} does not exist among {total} (ordinals are 0 to {})",
                total - 1
            ));
        }
        Ok(Shard { ordinal, total })
    }

    /// Whether this shard reads `bucket` (an organization trail's bucket is read once).
    pub fn owns_bucket(&self, bucket: &str) -> bool {
        owner(&format!("bucket:{bucket}"), self.total) == self.ordinal
    }
}

/// How far from an even share a shard may be, either way: 1/20, so 5 % (plus rounding to
/// whole accounts). Smaller would split more evenly and move more accounts when the roster
/// changes.
const SLACK_DIVISOR: usize = 20;

/// Where each account of a roster is watched: rendezvous hashing with bounded loads. Each
/// shard holds at most `capacity` accounts; the accounts, in id order, each take the
/// highest-weighted shard that still has room. Every replica that holds the same roster
/// computes the same placement. An account outside the roster (a trail's owner outside
/// scope) is placed by hashing alone, which every replica agrees on too.
///
/// The cost of seeing the whole roster: an account's shard depends on the others, so two
/// replicas that discovered different rosters (for up to one organization refresh) may
/// disagree on a few accounts that did not change. The alerts on accounts watched twice or by
/// none see it if it lasts; the next discovery mends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub shard: Shard,
    /// Account id to the ordinal that watches it; shared, as every poll reads it.
    owners: Arc<BTreeMap<String, u32>>,
}

impl Placement {
    /// `accounts` is the roster in scope, whichever shard watches each; duplicates count once.
    pub fn over<'a>(shard: Shard, accounts: impl IntoIterator<Item = &'a str>) -> Placement {
        let accounts: BTreeSet<&str> = accounts.into_iter().collect();
        let total = shard.total.max(1) as usize;
        let capacity = capacity(accounts.len(), total);
        let mut load = vec![0usize; total];
        let mut owners = BTreeMap::new();
        for account in accounts {
            let key = account_key(account);
            let mut ranked: Vec<(u64, std::cmp::Reverse<u32>)> = (0..total as u32)
                .map(|s| (weight(&key, s), std::cmp::Reverse(s)))
                .collect();
            ranked.sort_unstable_by(|a, b| b.cmp(a));
            // capacity × total ≥ accounts, so some shard always has room.
            let chosen = ranked
                .iter()
                .map(|(_, std::cmp::Reverse(s))| *s)
                .find(|s| load[*s as usize] < capacity)
                .unwrap_or(ranked[0].1.0);
            load[chosen as usize] += 1;
            owners.insert(account.to_string(), chosen);
        }
        Placement {
            shard,
            owners: Arc::new(owners),
        }
    }

    /// Hashing alone, before any roster is known.
    pub fn unplaced(shard: Shard) -> Placement {
        Placement::over(shard, [])
    }

    /// The ordinal of the shard that watches `account`.
    pub fn owner_of_account(&self, account: &str) -> u32 {
        match self.owners.get(account) {
            Some(ordinal) => *ordinal,
            None => owner(&account_key(account), self.shard.total),
        }
    }

    /// Whether this shard watches `account`.
    pub fn owns_account(&self, account: &str) -> bool {
        self.owner_of_account(account) == self.shard.ordinal
    }

    /// Whether this shard reads `bucket` (hashing alone: see `Shard::owns_bucket`).
    pub fn owns_bucket(&self, bucket: &str) -> bool {
        self.shard.owns_bucket(bucket)
    }
}

/// The most accounts one of `total` shards holds: an even share and 1/(20 × (total - 1))
/// more, rounded up. The bound is on the top only, so the bottom follows from the others
/// being full: a shard holds at least `accounts - (total - 1) × capacity`, 1/20 under an even
/// share (less the rounding). A fixed 1/20 over would have let a shard of 4 fall 15 % under.
fn capacity(accounts: usize, total: usize) -> usize {
    if total <= 1 {
        return accounts.max(1);
    }
    let slack = SLACK_DIVISOR * (total - 1);
    (accounts * (slack + 1)).div_ceil(slack * total).max(1)
}

/// The key an account is placed by (typed apart from bucket names).
pub fn account_key(account: &str) -> String {
    format!("account:{account}")
}

/// The shard of `key` among `total`: the one that weighs most for it (ties, which SHA-256
/// makes vanishingly rare, go to the lower ordinal).
pub fn owner(key: &str, total: u32) -> u32 {
    (0..total.max(1))
        .max_by_key(|&shard| (weight(key, shard), std::cmp::Reverse(shard)))
        .unwrap_or(0)
}

fn weight(key: &str, shard: u32) -> u64 {
    let mut hash = Context::new(&SHA256);
    hash.update(key.as_bytes());
    // A separator no key holds, so "a" + 12 and "a1" + 2 cannot meet.
    hash.update(&[0]);
    hash.update(&shard.to_be_bytes());
    let digest = hash.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// A StatefulSet pod's ordinal from its hostname (`trailwarden-2` → 2).
pub fn ordinal_from_hostname(hostname: &str) -> Option<u32> {
    let (_, ordinal) = hostname.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Account ids as an organization hands them out: 12 digits, no pattern to lean on.
    fn accounts(n: u64) -> Vec<String> {
        organization(n, 0)
    }

    /// Another organization of `n` accounts for each `seed`.
    fn organization(n: u64, seed: u64) -> Vec<String> {
        (0..n)
            .map(|i| i * 7_919_381 + 104_729 + seed * 1_000_003_337)
            .map(|id| format!("{:012}", id % 1_000_000_000_000))
            .collect()
    }

    fn placements(all: &[String], total: u32) -> Vec<Placement> {
        (0..total)
            .map(|o| {
                Placement::over(
                    Shard::new(o, total).unwrap(),
                    all.iter().map(String::as_str),
                )
            })
            .collect()
    }

    /// Each account's ordinal under `total` shards, as shard 0 sees it (every shard sees the
    /// same: `every_account_belongs_to_exactly_one_shard`).
    fn owners(all: &[String], total: u32) -> Vec<u32> {
        let p = Placement::over(
            Shard::new(0, total).unwrap(),
            all.iter().map(String::as_str),
        );
        all.iter().map(|a| p.owner_of_account(a)).collect()
    }

    fn loads(owners: impl IntoIterator<Item = u32>, total: u32) -> Vec<u32> {
        let mut load = vec![0u32; total as usize];
        for o in owners {
            load[o as usize] += 1;
        }
        load
    }

    fn count_moved(before: &[u32], after: &[u32]) -> usize {
        before.iter().zip(after).filter(|(a, b)| a != b).count()
    }

    #[test]
    fn every_account_belongs_to_exactly_one_shard() {
        for n in [0, 1, 2, 30, 300] {
            let all = accounts(n);
            for total in 1..=6 {
                let shards = placements(&all, total);
                for account in &all {
                    let owners = shards.iter().filter(|s| s.owns_account(account)).count();
                    assert_eq!(owners, 1, "{account} among {total}");
                }
            }
        }
    }

    #[test]
    fn every_shard_holds_about_an_even_share() {
        // (accounts, organization, shards, the most hashing alone puts on one shard, the most
        // and the least one shard may hold). An even share and 5 % / (shards - 1) more, rounded
        // up, at most; what the others leave, at least.
        let cases = [
            (1, 0, 1, 1, 1, 1),
            (1, 0, 4, 1, 1, 0),
            (2, 0, 2, 2, 2, 0),
            (3, 0, 2, 3, 2, 1),
            (30, 0, 3, 13, 11, 8),
            (30, 0, 4, 11, 8, 6),
            (1000, 0, 4, 260, 255, 235),
            (1000, 8, 4, 295, 255, 235),
            (1000, 25, 4, 283, 255, 235),
            (1001, 8, 4, 295, 255, 236),
            (1000, 8, 7, 175, 145, 130),
            (17, 0, 16, 4, 2, 0),
        ];
        for (n, seed, total, by_hashing, most, least) in cases {
            let all = organization(n, seed);
            let hashed = loads(all.iter().map(|a| owner(&account_key(a), total)), total);
            assert_eq!(
                hashed.iter().max(),
                Some(&by_hashing),
                "{n}/{seed} hashed over {total}"
            );
            let placed = loads(owners(&all, total), total);
            assert_eq!(
                placed.iter().sum::<u32>() as u64,
                n,
                "{n}/{seed} over {total}"
            );
            assert!(
                placed.iter().all(|&l| (least..=most).contains(&l)),
                "{n}/{seed} over {total}: {placed:?}, {least} to {most} each"
            );
        }
    }

    #[test]
    fn a_resize_moves_about_what_the_new_shard_takes() {
        // Organization 8 is one where hashing alone overloads a shard, so the bound is at work.
        let all = organization(1000, 8);
        let (three, four) = (owners(&all, 3), owners(&all, 4));
        let to_new = four.iter().filter(|&&o| o == 3).count();
        // The new shard takes about a quarter; bounded loads move a few more between the
        // old ones (a shard that was full has room again).
        assert!((230..=255).contains(&to_new), "{to_new} on the new shard");
        let moved = count_moved(&three, &four);
        assert!(
            moved <= to_new + 25,
            "{moved} of 1000 moved, the new shard took {to_new}"
        );
        // Shrinking back puts every account where it was.
        assert_eq!(owners(&all, 3), three);
    }

    #[test]
    fn an_account_joining_or_leaving_moves_few_others() {
        for seed in 0..12 {
            let all = organization(1000, seed);
            // One that sorts early, so every account placed after it sees the change.
            let newcomer = format!("{:012}", all[3].parse::<u64>().unwrap() + 1);
            let mut joined = all.clone();
            joined.push(newcomer);
            // Measured over 60 organizations, the most others moved: 1, 3 and 2 on a join, 1, 6
            // and 11 on a leave, over 2, 4 and 7 shards (a leave frees a place that a chain of
            // accounts placed after it each move up into). Hashing alone moves none, and splits
            // unevenly.
            for total in [2, 4, 7] {
                let before = owners(&all, total);
                let after = owners(&joined, total);
                let moved = count_moved(&before, &after[..1000]);
                assert!(
                    moved <= 12,
                    "{seed}: one joining moved {moved} over {total} shards"
                );
                let mut left = all.clone();
                left.remove(3);
                let mut kept = before.clone();
                kept.remove(3);
                let moved = count_moved(&kept, &owners(&left, total));
                assert!(
                    moved <= 12,
                    "{seed}: one leaving moved {moved} over {total} shards"
                );
            }
        }
    }

    #[test]
    fn an_account_outside_the_roster_is_placed_by_hashing_alone() {
        let all = accounts(100);
        let outside = "999999999999";
        for p in placements(&all, 4) {
            assert_eq!(p.owner_of_account(outside), owner(&account_key(outside), 4));
        }
        let before_any_roster = Placement::unplaced(Shard::new(1, 4).unwrap());
        for a in &all {
            assert_eq!(
                before_any_roster.owner_of_account(a),
                owner(&account_key(a), 4)
            );
        }
    }

    #[test]
    fn hashing_alone_moves_only_what_the_new_shard_takes() {
        // What bucket placement relies on.
        let all = accounts(1000);
        let moved: Vec<&String> = all.iter().filter(|a| owner(a, 3) != owner(a, 4)).collect();
        assert!(moved.iter().all(|a| owner(a, 4) == 3));
        assert!((200..=300).contains(&moved.len()), "{} moved", moved.len());
    }

    #[test]
    fn an_account_and_a_bucket_of_the_same_name_are_placed_apart() {
        // Keys are typed: a bucket named like an account id is not tied to that account.
        let differ = accounts(200)
            .iter()
            .filter(|a| owner(&format!("account:{a}"), 4) != owner(&format!("bucket:{a}"), 4))
            .count();
        assert!(differ > 100, "{differ}");
    }

    #[test]
    fn ordinals_from_hostnames_and_bad_shards() {
        let cases = [
            ("trailwarden-0", Some(0)),
            ("trailwarden-12", Some(12)),
            ("trail-warden-3", Some(3)),
            ("trailwarden", None),
            ("trailwarden-", None),
            ("trailwarden-x1", None),
            ("trailwarden-7d9f8b6c5-abcde", None),
            ("trailwarden-99999999999", None),
        ];
        for (host, expected) in cases {
            assert_eq!(ordinal_from_hostname(host), expected, "{host}");
        }
        assert!(Shard::new(0, 0).is_err());
        assert!(Shard::new(4, 4).unwrap_err().contains("0 to 3"));
        assert_eq!(Shard::new(0, 1).unwrap(), Shard::ALONE);
        assert!(Placement::unplaced(Shard::ALONE).owns_account("123456789012"));
        assert!(Shard::ALONE.owns_bucket("any"));
    }
}
