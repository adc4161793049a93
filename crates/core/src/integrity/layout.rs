//! Where CloudTrail puts things in a trail's bucket (specs/cloudtrail-digest.md §8):
//!
//! ```text
//! {P}AWSLogs/[{o-id}/]{acct}/CloudTrail/{region}/YYYY/MM/DD/{acct}_CloudTrail_{region}_{YYYYMMDDTHHmmZ}_{unique16}.json.gz
//! {P}AWSLogs/[{o-id}/]{acct}/CloudTrail-Digest/{region}/YYYY/MM/DD/{acct}_CloudTrail-Digest_{region}_{trail}_{home}_{YYYYMMDDTHHmmssZ}[_backfill].json.gz
//! ```
//!
//! File names are parsed from both ends, never split on `_`: trail names may contain it.

use chrono::{DateTime, NaiveDateTime, Utc};

/// One account's folder in a trail's bucket: `{P}AWSLogs/[{o-id}/]{acct}/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountRoot {
    /// The trail's S3KeyPrefix without surrounding slashes; `None` when there is none.
    pub prefix: Option<String>,
    /// The organization id, for an organization trail's layout.
    pub org: Option<String>,
    pub account: String,
}

impl AccountRoot {
    /// `{P}AWSLogs/`: where the account (or organization) folders are.
    pub fn logs_root(prefix: Option<&str>) -> String {
        match prefix.map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => format!("{p}/AWSLogs/"),
            _ => "AWSLogs/".to_string(),
        }
    }

    pub fn path(&self) -> String {
        let mut s = Self::logs_root(self.prefix.as_deref());
        if let Some(org) = &self.org {
            s.push_str(org);
            s.push('/');
        }
        s.push_str(&self.account);
        s.push('/');
        s
    }

    /// `…/CloudTrail/{region}/`
    pub fn logs(&self, region: &str) -> String {
        format!("{}CloudTrail/{region}/", self.path())
    }

    /// `…/CloudTrail-Digest/{region}/`
    pub fn digests(&self, region: &str) -> String {
        format!("{}CloudTrail-Digest/{region}/", self.path())
    }
}

/// True for a 12-digit account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// True for an organization id: `o-` and 10 to 32 lowercase letters or digits.
pub fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// A region name: lowercase letters, digits and dashes (never `_`).
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// What a log file's key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogKey {
    pub account: String,
    pub region: String,
    /// Delivery time, to the minute.
    pub delivered: DateTime<Utc>,
}

/// Parses `{acct}_CloudTrail_{region}_{YYYYMMDDTHHmmZ}_{unique}.json.gz`; `None` for anything
/// else (digests, Insights files, stray objects).
pub fn parse_log_key(key: &str) -> Option<LogKey> {
    let name = file_name(key).strip_suffix(".json.gz")?;
    let (rest, unique) = name.rsplit_once('_')?;
    if unique.is_empty() || !unique.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (rest, stamp) = rest.rsplit_once('_')?;
    let delivered = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%MZ")
        .ok()?
        .and_utc();
    let (account, region) = rest.split_once("_CloudTrail_")?;
    (is_account_id(account) && is_region(region)).then(|| LogKey {
        account: account.to_string(),
        region: region.to_string(),
        delivered,
    })
}

/// The account folder a log file's key lies in, for a trail writing under `prefix`: what a
/// notified key is checked against before it is read. `None` for anything else (a digest,
/// another prefix, a key whose name and folder disagree).
pub fn log_root_of(key: &str, prefix: Option<&str>) -> Option<(AccountRoot, LogKey)> {
    let rest = key.strip_prefix(&AccountRoot::logs_root(prefix))?;
    let (first, _) = rest.split_once('/')?;
    let org = is_org_id(first).then(|| first.to_string());
    let parsed = parse_log_key(key)?;
    let root = AccountRoot {
        prefix: prefix
            .map(|p| p.trim_matches('/').to_string())
            .filter(|p| !p.is_empty()),
        org,
        account: parsed.account.clone(),
    };
    key.starts_with(&root.logs(&parsed.region))
        .then_some((root, parsed))
}

/// What a digest file's key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestKey {
    pub account: String,
    /// The region that delivered (and signed) it.
    pub region: String,
    pub trail: String,
    pub home_region: String,
    /// `digestEndTime`, to the second.
    pub end: DateTime<Utc>,
    pub backfill: bool,
}

/// Parses a digest file name (§8.2): strip `.json.gz` and `_backfill`, the 16-char timestamp
/// from the end, then `_{home}`, then `{acct}_CloudTrail-Digest_{region}_` from the front; the
/// trail name is what is left.
pub fn parse_digest_key(key: &str) -> Option<DigestKey> {
    let name = file_name(key).strip_suffix(".json.gz")?;
    let (name, backfill) = match name.strip_suffix("_backfill") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let (rest, stamp) = name.rsplit_once('_')?;
    if stamp.len() != 16 {
        return None;
    }
    let end = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()?
        .and_utc();
    let (rest, home_region) = rest.rsplit_once('_')?;
    let (account, rest) = rest.split_once("_CloudTrail-Digest_")?;
    let (region, trail) = rest.split_once('_')?;
    let ok =
        is_account_id(account) && is_region(region) && is_region(home_region) && !trail.is_empty();
    ok.then(|| DigestKey {
        account: account.to_string(),
        region: region.to_string(),
        trail: trail.to_string(),
        home_region: home_region.to_string(),
        end,
        backfill,
    })
}

/// The listing marker for keys of `folder` (a `…/CloudTrail[-Digest]/{region}/` prefix)
/// delivered at or after `time`: keys under a date folder sort by time within it.
pub fn start_after_for(folder: &str, time: DateTime<Utc>) -> String {
    // One day earlier's folder, past its last key: "YYYY/MM/DD0" sorts after every
    // "YYYY/MM/DD/..." and before the next day.
    let day = time - chrono::Duration::days(1);
    format!("{folder}{}0", day.format("%Y/%m/%d"))
}

/// The listing marker just before every log key of `root`'s `region` folder delivered in the
/// minute of `time` or later: finer than [`start_after_for`], which restarts at the day.
pub fn log_key_floor(root: &AccountRoot, region: &str, time: DateTime<Utc>) -> String {
    format!(
        "{}{}/{}_CloudTrail_{region}_{}",
        root.logs(region),
        time.format("%Y/%m/%d"),
        root.account,
        time.format("%Y%m%dT%H%MZ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_notified_key_is_placed_in_its_account_folder_or_refused() {
        let file = "111122223333_CloudTrail_eu-west-1_20261202T1550Z_a1B2.json.gz";
        let in_folder =
            |root: &str| format!("{root}111122223333/CloudTrail/eu-west-1/2026/12/02/{file}");
        // (key, the trail's prefix, the folder's prefix and organization when placed)
        type Placed<'a> = Option<(Option<&'a str>, Option<&'a str>)>;
        let cases: Vec<(String, Option<&str>, Placed)> = vec![
            (in_folder("AWSLogs/"), None, Some((None, None))),
            (in_folder("AWSLogs/o-abcdefghij/"), None, Some((None, Some("o-abcdefghij")))),
            (in_folder("audit/AWSLogs/"), Some("audit"), Some((Some("audit"), None))),
            (in_folder("audit/AWSLogs/"), Some("/audit/"), Some((Some("audit"), None))),
            // Another trail's prefix, or none where one is expected.
            (in_folder("AWSLogs/"), Some("audit"), None),
            (in_folder("audit/AWSLogs/"), None, None),
            // A digest, a file named for another account or region than its folder.
            (
                "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/12/02/111122223333_CloudTrail-Digest_eu-west-1_t_us-east-1_20261202T155000Z.json.gz".into(),
                None,
                None,
            ),
            (format!("AWSLogs/444455556666/CloudTrail/eu-west-1/2026/12/02/{file}"), None, None),
            (format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/02/{file}"), None, None),
            ("AWSLogs/111122223333/CloudTrail/eu-west-1/notes.txt".into(), None, None),
        ];
        for (key, prefix, expected) in cases {
            let got = log_root_of(&key, prefix);
            match (got, expected) {
                (Some((root, parsed)), Some((want_prefix, want_org))) => {
                    assert_eq!(root.prefix.as_deref(), want_prefix, "{key}");
                    assert_eq!(root.org.as_deref(), want_org, "{key}");
                    assert_eq!(root.account, "111122223333");
                    assert_eq!(parsed.region, "eu-west-1");
                }
                (None, None) => {}
                (got, _) => panic!("{key} under {prefix:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn the_log_key_floor_sorts_before_its_minute_and_after_the_one_before() {
        let root = AccountRoot {
            prefix: None,
            org: None,
            account: "111122223333".into(),
        };
        let t = Utc.with_ymd_and_hms(2015, 8, 1, 2, 10, 30).unwrap();
        let floor = log_key_floor(&root, "us-east-2", t);
        let key = |minute: &str, suffix: &str| {
            format!(
                "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/111122223333_CloudTrail_us-east-2_20150801T{minute}Z_{suffix}.json.gz"
            )
        };
        assert!(floor < key("0210", "0000000000000000"));
        assert!(floor > key("0209", "zzzzzzzzzzzzzzzz"));
        assert_eq!(
            parse_log_key(&key("0210", "a")).unwrap().delivered,
            t - chrono::Duration::seconds(30)
        );
    }

    #[test]
    fn log_keys_from_the_documentation() {
        let k = parse_log_key("AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz").unwrap();
        assert_eq!(k.account, "111122223333");
        assert_eq!(k.region, "us-east-2");
        assert_eq!(
            k.delivered,
            Utc.with_ymd_and_hms(2015, 8, 1, 2, 10, 0).unwrap()
        );
        assert_eq!(
            parse_log_key("AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/notes.txt"),
            None
        );
        // A digest is not a log file.
        assert_eq!(
            parse_log_key(
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_t_us-east-2_20150817T150131Z.json.gz"
            ),
            None
        );
    }

    #[test]
    fn digest_keys_with_underscores_in_the_trail_name_and_backfill() {
        let k = parse_digest_key("AWSLogs/835404217325/CloudTrail-Digest/eu-west-3/2020/08/28/835404217325_CloudTrail-Digest_eu-west-3_XXXX_Infosec_Audit_us-west-2_20200828T220732Z.json.gz").unwrap();
        assert_eq!(k.trail, "XXXX_Infosec_Audit");
        assert_eq!(k.region, "eu-west-3");
        assert_eq!(k.home_region, "us-west-2");
        assert_eq!(k.end, Utc.with_ymd_and_hms(2020, 8, 28, 22, 7, 32).unwrap());
        assert!(!k.backfill);
        let b = parse_digest_key("team/ct/AWSLogs/o-wwwwwwgggg/234567890123/CloudTrail-Digest/ca-central-1/2020/02/14/234567890123_CloudTrail-Digest_ca-central-1_my_trail.v2_us-east-1_20200214T001007Z_backfill.json.gz").unwrap();
        assert!(b.backfill);
        assert_eq!(b.trail, "my_trail.v2");
        assert_eq!(b.account, "234567890123");
    }

    #[test]
    fn roots_with_prefixes_and_organizations() {
        let r = AccountRoot {
            prefix: Some("/team/ct/".into()),
            org: Some("o-abcdefghij".into()),
            account: "123456789012".into(),
        };
        assert_eq!(
            r.digests("eu-west-1"),
            "team/ct/AWSLogs/o-abcdefghij/123456789012/CloudTrail-Digest/eu-west-1/"
        );
        assert_eq!(AccountRoot::logs_root(Some("")), "AWSLogs/");
        assert!(is_org_id("o-abcdefghij") && !is_org_id("o-short") && !is_org_id("123"));
    }

    #[test]
    fn the_start_marker_sorts_between_days() {
        let folder = "AWSLogs/1/CloudTrail/us-east-1/";
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 0, 30, 0).unwrap();
        let marker = start_after_for(folder, t);
        assert_eq!(marker, "AWSLogs/1/CloudTrail/us-east-1/2026/02/280");
        assert!(marker.as_str() > "AWSLogs/1/CloudTrail/us-east-1/2026/02/28/x.json.gz");
        assert!(marker.as_str() < "AWSLogs/1/CloudTrail/us-east-1/2026/03/01/x.json.gz");
    }
}
