//! Property tests of the plans, over many generated histories: a simulated log folder (keys
//! arriving late and out of order, reads failing, the process dying between pages) and a
//! simulated digest chain (reads failing, walks lost to a crash), driven by the same plan
//! functions the pollers use. Whatever happens, every event is counted exactly once and the
//! chain ends judged valid, as on a run with no fault at all.

use super::digest_folder::{self, DigestFolder};
use super::log_folder::{self, Decision, Handled, Known, LogFolder, Rules};
use super::retry::{self, Retry};
use crate::integrity::chain::{DigestRead, ListedDigest, Unjudged, judge};
use crate::integrity::forge::{chain_logs, digest_end as end, forge, hourly_chain, scope};
use crate::integrity::layout::{AccountRoot, parse_log_key};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn root() -> AccountRoot {
    AccountRoot {
        prefix: None,
        org: None,
        account: "111122223333".into(),
    }
}

fn rules() -> Rules {
    Rules {
        initial_window: Duration::days(1),
        look_back: Duration::minutes(60),
        rescan: Duration::minutes(360),
        read_window: Duration::days(3),
    }
}

/// One log file of the simulation: written at pass `arrives` (a minute each), its key
/// naming minute `arrives - late`, its random suffix `suffix`.
#[derive(Debug, Clone)]
struct File {
    arrives: i64,
    late: i64,
    suffix: u16,
}

fn key_of(f: &File) -> String {
    let t = t0() + Duration::minutes(f.arrives - f.late);
    format!(
        "{}{}/111122223333_CloudTrail_us-east-1_{}_{:016}.json.gz",
        root().logs("us-east-1"),
        t.format("%Y/%m/%d"),
        t.format("%Y%m%dT%H%MZ"),
        f.suffix
    )
}

/// What the store holds, committed page by page.
#[derive(Debug, Clone, Default)]
struct Store {
    state: LogFolder,
    read: BTreeSet<String>,
    retrying: BTreeMap<String, Retry>,
    /// Times each event (one per key) was claimed first: must end at exactly 1.
    claimed: BTreeMap<String, u32>,
    /// Keys of the pages committed so far.
    listed: BTreeSet<String>,
}

/// One pass, as `watch::bucket::log_files` runs it. `fails(key, attempt)` says whether a read
/// fails; `crash_after` the page after which the process dies (that page's work is lost).
fn pass(
    store: &mut Store,
    visible: &[String],
    now: DateTime<Utc>,
    fails: &dyn Fn(&str, u32) -> bool,
    crash_after: Option<usize>,
) {
    let rules = rules();
    let state = store.state.clone();
    let listing = log_folder::listing(&root(), "us-east-1", &state, now, &rules);
    let mut next = LogFolder {
        read_from: Some(log_folder::read_from(&state, now, &rules)),
        ..state.clone()
    };
    let mut listed: Vec<&String> = visible
        .iter()
        .filter(|k| listing.start_after.as_ref().is_none_or(|s| *k > s))
        .collect();
    listed.sort();
    let pages: Vec<Vec<&String>> = listed.chunks(3).map(|c| c.to_vec()).collect();
    let backoff = Duration::minutes(1);
    let attempt = |store: &Store, key: &str| store.retrying.get(key).map_or(0, |r| r.attempts);
    for (i, page) in pages.iter().enumerate() {
        let mut work = store.clone();
        let mut outcomes = Vec::new();
        for key in page {
            let delivered = parse_log_key(key).unwrap().delivered;
            let known = if work.read.contains(*key) {
                Known::Read
            } else if work.retrying.contains_key(*key) {
                Known::Retrying
            } else {
                Known::New
            };
            if log_folder::decide(delivered, known, &state, now, &rules) == Decision::Read {
                if fails(key, attempt(&work, key)) {
                    let r = retry::after_failure(None, "AccessDenied", now, backoff);
                    work.retrying.insert(key.to_string(), r);
                } else {
                    work.read.insert(key.to_string());
                    *work.claimed.entry(key.to_string()).or_default() += 1;
                }
            }
            outcomes.push((delivered, Handled::Done));
        }
        if crash_after == Some(i) {
            return;
        }
        work.listed.extend(page.iter().map(|k| k.to_string()));
        next.listed_until = next.listed_until.max(page.last().map(|k| k.to_string()));
        next.done_until = log_folder::advance(next.done_until, outcomes);
        if i + 1 == pages.len() && listing.full {
            next.scanned_at = Some(now);
        }
        work.state = next.clone();
        *store = work;
    }
    if pages.is_empty() {
        if listing.full {
            next.scanned_at = Some(now);
        }
        store.state = next;
    }
    // Retries that are due.
    let due: Vec<(String, Retry)> = store
        .retrying
        .iter()
        .filter(|(_, r)| retry::due(r, now))
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    for (key, r) in due {
        if fails(&key, r.attempts) {
            let again = retry::after_failure(Some(&r), "AccessDenied", now, backoff);
            store.retrying.insert(key, again);
        } else {
            store.retrying.remove(&key);
            store.read.insert(key.clone());
            *store.claimed.entry(key).or_default() += 1;
        }
    }
}

fn files() -> impl Strategy<Value = Vec<File>> {
    prop::collection::vec(
        (
            0i64..120,
            prop_oneof![3 => Just(0i64), 2 => 0i64..5, 1 => 0i64..90],
            any::<u16>(),
        )
            .prop_map(|(arrives, late, suffix)| File {
                arrives,
                late: late.min(arrives + 60),
                suffix,
            }),
        1..40,
    )
}

proptest! {
    // PROPTEST_CASES=10000 for a longer campaign (docs/reliability.md).
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128)
    ))]

    /// Keys arriving late, out of order, with smaller suffixes; reads failing for a while;
    /// crashes between pages: every log file is read, and every event counted once.
    #[test]
    fn every_log_file_is_read_and_counted_once(
        files in files(),
        failing in prop::collection::btree_set(any::<u16>(), 0..6),
        crashes in prop::collection::btree_map(0i64..120, 0usize..4, 0..10),
    ) {
        let keys: Vec<(i64, String)> = files.iter().map(|f| (f.arrives, key_of(f))).collect();
        // A read of a file whose suffix is in `failing` fails its first three attempts.
        let fails = |key: &str, attempt: u32| {
            failing.iter().any(|s| key.ends_with(&format!("{s:016}.json.gz"))) && attempt < 3
        };
        let mut store = Store::default();
        // Passes a minute apart, then long enough for retries and a full rescan.
        for minute in 0..(120 + 500) {
            let now = t0() + Duration::minutes(minute);
            let visible: Vec<String> = keys
                .iter()
                .filter(|(arrives, _)| *arrives <= minute)
                .map(|(_, k)| k.clone())
                .collect();
            pass(&mut store, &visible, now, &fails, crashes.get(&minute).copied());
            // A key less late than the look-back is read at the next pass that completes,
            // not at the next full listing.
            let crashed = |from: i64| crashes.range(from..=minute).count() as i64;
            for (f, k) in files.iter().zip(keys.iter().map(|(_, k)| k)) {
                let readable = !failing.contains(&f.suffix);
                if readable && f.late < 55 && f.arrives < minute && minute - f.arrives > crashed(f.arrives) {
                    prop_assert!(store.read.contains(k), "{k}, {} min late, unread at minute {minute}", f.late);
                }
            }
            // No key a committed listing showed is left behind: it is read, or its retry
            // is waiting.
            for k in &store.listed {
                prop_assert!(
                    store.read.contains(k) || store.retrying.contains_key(k),
                    "{k} listed at minute {minute}, neither read nor retried"
                );
            }
        }
        let distinct: BTreeSet<&String> = keys.iter().map(|(_, k)| k).collect();
        prop_assert_eq!(store.claimed.len(), distinct.len(), "every file read");
        prop_assert!(store.claimed.values().all(|n| *n == 1), "{:?}", store.claimed);
        prop_assert!(store.retrying.is_empty());
    }

    /// Whatever cursor came before and whatever the pass left open, the cursor never moves
    /// past an open key.
    #[test]
    fn advance_never_passes_an_open_key(
        previous in prop::option::of(0i64..1000),
        keys in prop::collection::vec((0i64..1000, any::<bool>()), 0..20),
    ) {
        let at = |m: i64| t0() + Duration::minutes(m);
        let outcomes = keys
            .iter()
            .map(|(m, open)| (at(*m), if *open { Handled::Open } else { Handled::Done }));
        let cursor = log_folder::advance(previous.map(at), outcomes);
        for (m, open) in &keys {
            if *open {
                prop_assert!(cursor.is_some_and(|c| c <= at(*m)));
            }
        }
    }

    /// A chain walked by passes that meet failed reads (held, retried) and lose walks to a
    /// crash (the walk's result never stored) ends judged as a run with no fault: every
    /// digest valid, no failure, no verdict counted twice.
    #[test]
    fn replayed_walks_judge_the_chain_as_a_clean_run(
        n in 2usize..8,
        unreadable in prop::collection::btree_set(0usize..8, 0..4),
        lost in prop::collection::btree_set(0usize..30, 0..8),
    ) {
        // One key for every case: making an RSA key is the slow part.
        static FORGE: std::sync::OnceLock<crate::integrity::forge::Forge> = std::sync::OnceLock::new();
        let f = FORGE.get_or_init(forge);
        let chain = hourly_chain(f, n as i64, None);
        let logs = chain_logs(n as i64);
        let mut state = DigestFolder::default();
        let mut hold: Option<Retry> = None;
        let mut failures_left: HashMap<usize, u32> = unreadable.iter().map(|i| (*i, 2)).collect();
        let mut verdicts: BTreeMap<(String, String), u32> = BTreeMap::new();
        for round in 0..30 {
            let now = end(n as i64) + Duration::minutes(round as i64);
            if !digest_folder::walk_now(hold.as_ref(), now) {
                continue;
            }
            let start = state.last.as_ref().map(|a| a.key.clone());
            let listed: Vec<ListedDigest> = chain
                .iter()
                .enumerate()
                .filter(|(_, d)| start.as_ref().is_none_or(|s| d.key > *s))
                .map(|(i, d)| {
                    let mut d = d.clone();
                    if let Some(left) = failures_left.get_mut(&i) && *left > 0 {
                        *left -= 1;
                        d.read = DigestRead::Unreadable("InternalError".into());
                    }
                    d
                })
                .collect();
            let report = judge(&scope(), state.last.as_ref(), &listed, &f.keys, &logs, &[],
                Unjudged::Hold { now, key_grace: Duration::hours(2) });
            if lost.contains(&round) {
                continue; // the process died before storing the walk
            }
            for i in &report.items {
                *verdicts.entry((i.class.as_str().to_string(), i.object.clone())).or_default() += 1;
            }
            hold = report.held.as_ref().map(|h| retry::after_failure(hold.as_ref(), &h.reason, now, Duration::minutes(1)));
            state = digest_folder::after(&state, &report);
        }
        let failed: Vec<_> = verdicts.keys().filter(|(c, _)| c != "valid_digest" && c != "valid_log").collect();
        prop_assert!(failed.is_empty(), "{:?}", failed);
        let valid = verdicts.keys().filter(|(c, _)| c == "valid_digest").count();
        prop_assert_eq!(valid, n, "every digest judged once");
        prop_assert!(verdicts.values().all(|n| *n == 1));
    }
}
