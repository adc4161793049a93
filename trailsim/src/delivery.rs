//! Log delivery: for each logging trail, the recorded events in its scope go as gzipped
//! `{"Records":[...]}` files under CloudTrail's key layout into the trail's bucket in moto.
//! Nothing while stopped, except a final delivery up to the StopLogging event. What
//! delivery did (and why it failed) feeds GetTrailStatus.

use crate::history::Event;
use crate::server::Sim;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write;

/// A trail as moto describes it, with its status and selectors.
#[derive(Debug, Clone)]
pub struct TrailInfo {
    pub arn: String,
    pub name: String,
    pub account: String,
    pub home_region: String,
    pub bucket: String,
    pub prefix: Option<String>,
    pub multi_region: bool,
    pub include_global: bool,
    pub is_logging: bool,
    pub log_file_validation: bool,
    /// The GetEventSelectors answer.
    pub selectors: Value,
    pub is_organization_trail: bool,
    /// The organization an organization trail logs for, when its account manages one.
    pub organization: Option<Organization>,
}

/// The organization an organization trail logs for.
#[derive(Debug, Clone)]
pub struct Organization {
    /// `o-` and 10 to 32 letters or digits.
    pub id: String,
    /// Every active account in it, the management account included (in AWS a closed or
    /// suspended account makes no calls: the trail logs it no more).
    pub accounts: Vec<String>,
}

impl TrailInfo {
    /// Whose events the trail records: its own account's, or its organization's.
    pub fn accounts(&self) -> Vec<String> {
        match &self.organization {
            Some(org) => org.accounts.clone(),
            None => vec![self.account.clone()],
        }
    }

    pub fn covers(&self, account: &str) -> bool {
        match &self.organization {
            Some(org) => org.accounts.iter().any(|a| a == account),
            None => self.account == account,
        }
    }

    pub fn org_id(&self) -> Option<&str> {
        self.organization.as_ref().map(|o| o.id.as_str())
    }
}

/// What trailsim knows of one trail's delivery (keyed by trail ARN).
#[derive(Debug, Clone, Default)]
pub struct TrailDelivery {
    /// Events up to this sequence number are delivered.
    pub cursor: Option<u64>,
    /// The sequence number of the StopLogging event while stopped: the final delivery
    /// goes up to it.
    pub stop_seq: Option<u64>,
    /// Sequence ranges (exclusive) that happened while the trail was stopped: never delivered.
    pub stopped_ranges: Vec<(u64, u64)>,
    pub latest_delivery_time: Option<DateTime<Utc>>,
    pub latest_delivery_error: Option<String>,
    pub start_logging_time: Option<DateTime<Utc>>,
    pub stop_logging_time: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct Deliveries {
    pub trails: HashMap<String, TrailDelivery>,
}

impl Deliveries {
    /// StartLogging went through at `time`; `seq` is the StartLogging event's number.
    /// Returns true when it restarts a stopped trail (a new digest chain begins).
    pub fn started(&mut self, arn: &str, time: DateTime<Utc>, seq: u64) -> bool {
        let t = self.trails.entry(arn.to_string()).or_default();
        t.start_logging_time = Some(time);
        match (t.cursor, t.stop_seq.take()) {
            // First sight: deliver from the StartLogging event on.
            (None, _) => {
                t.cursor = Some(seq.saturating_sub(1));
                false
            }
            // Events between the stop and this start are never delivered; what came before
            // the stop still is, even if no delivery ran in between.
            (Some(_), Some(stop)) => {
                t.stopped_ranges.push((stop, seq));
                true
            }
            // Already logging: nothing changes.
            (Some(_), None) => false,
        }
    }

    /// StopLogging went through at `time`; `seq` is the StopLogging event's number.
    pub fn stopped(&mut self, arn: &str, time: DateTime<Utc>, seq: u64) {
        let t = self.trails.entry(arn.to_string()).or_default();
        t.stop_logging_time = Some(time);
        if t.stop_seq.is_none() {
            t.stop_seq = Some(seq);
        }
    }

    /// Whether an event happened while the trail was stopped.
    pub fn skipped(&self, arn: &str, seq: u64) -> bool {
        self.trails.get(arn).is_some_and(|t| {
            t.stopped_ranges
                .iter()
                .any(|(stop, start)| seq > *stop && seq < *start)
        })
    }

    /// The range of sequence numbers to deliver now for a trail, and where the cursor goes.
    /// `None` when there is nothing to deliver.
    pub fn pending(&mut self, trail: &TrailInfo, last_seq: u64) -> Option<(u64, u64)> {
        let t = self.trails.entry(trail.arn.clone()).or_default();
        // A trail first seen now delivers from now on.
        let cursor = *t.cursor.get_or_insert(last_seq);
        let upto = if trail.is_logging {
            last_seq
        } else {
            t.stop_seq.unwrap_or(cursor)
        };
        (upto > cursor).then_some((cursor, upto))
    }
}

/// Sources CloudTrail treats as global service events.
const GLOBAL_SOURCES: &[&str] = &["iam.amazonaws.com", "cloudfront.amazonaws.com"];

/// Does `trail` deliver `event`: its account (or organization), its regions, global service events, and the
/// management events its selectors keep.
pub fn in_scope(trail: &TrailInfo, event: &Event) -> bool {
    let r = &event.record;
    if !trail.covers(&event.account) || r["managementEvent"] == false {
        return false;
    }
    let source = r["eventSource"].as_str().unwrap_or_default();
    if GLOBAL_SOURCES.contains(&source) {
        if !trail.include_global {
            return false;
        }
    } else if !trail.multi_region && event.region != trail.home_region {
        return false;
    }
    let read_only = r["readOnly"].as_bool().unwrap_or(false);
    keeps_management(&trail.selectors, source, read_only)
}

fn keeps_management(selectors: &Value, source: &str, read_only: bool) -> bool {
    let advanced = selectors["AdvancedEventSelectors"].as_array();
    if let Some(list) = advanced.filter(|l| !l.is_empty()) {
        return list.iter().any(|sel| {
            let fields = sel["FieldSelectors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let field = |name: &str| fields.iter().find(|f| f["Field"] == name).cloned();
            let has = |f: &Value, key: &str, v: &str| {
                f[key].as_array().is_some_and(|l| l.iter().any(|x| x == v))
            };
            let management =
                field("eventCategory").is_some_and(|f| has(&f, "Equals", "Management"));
            let ro = read_only.to_string();
            let read_ok = field("readOnly").is_none_or(|f| {
                f["Equals"]
                    .as_array()
                    .is_none_or(|l| l.is_empty() || has(&f, "Equals", &ro))
            });
            let source_ok = field("eventSource").is_none_or(|f| {
                !has(&f, "NotEquals", source)
                    && f["Equals"]
                        .as_array()
                        .is_none_or(|l| l.is_empty() || has(&f, "Equals", source))
            });
            management && read_ok && source_ok
        });
    }
    let basic = selectors["EventSelectors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if basic.is_empty() {
        // AWS's default for a trail without selectors: all management events.
        return true;
    }
    basic.iter().any(|sel| {
        let include = sel["IncludeManagementEvents"].as_bool().unwrap_or(true);
        let rw = match sel["ReadWriteType"].as_str().unwrap_or("All") {
            "ReadOnly" => read_only,
            "WriteOnly" => !read_only,
            _ => true,
        };
        let excluded = sel["ExcludeManagementEventSources"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x == source));
        include && rw && !excluded
    })
}

/// Does a bucket policy explicitly deny CloudTrail's PutObject of `object`? moto does not
/// evaluate policies, so trailsim does, for the one case that matters here: an explicit Deny
/// of `s3:PutObject` (or `s3:*`, `*`) to everyone or to `cloudtrail.amazonaws.com`.
pub fn policy_denies_delivery(policy: &Value, bucket: &str, object: &str) -> bool {
    let statements = match &policy["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return false,
    };
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let glob = |pattern: &str, text: &str| match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => text.starts_with(head) && text[head.len()..].ends_with(tail),
    };
    let arn = format!("arn:aws:s3:::{bucket}/{object}");
    statements.iter().any(|st| {
        let principal = &st["Principal"];
        let everyone = principal == "*" || list(&principal["AWS"]).iter().any(|p| p == "*");
        let cloudtrail = list(&principal["Service"])
            .iter()
            .any(|s| s == "cloudtrail.amazonaws.com");
        st["Effect"] == "Deny"
            && (everyone || cloudtrail)
            && list(&st["Action"])
                .iter()
                .any(|a| ["s3:PutObject", "s3:*", "*"].contains(&a.as_str()))
            && list(&st["Resource"]).iter().any(|r| glob(r, &arn))
    })
}

/// `{P}AWSLogs/[{o-id}/]{acct}`: where an account's files go (the org id for organization trails).
pub fn account_root(prefix: Option<&str>, org: Option<&str>, account: &str) -> String {
    let p = match prefix.map(|p| p.trim_matches('/')) {
        Some(p) if !p.is_empty() => format!("{p}/"),
        _ => String::new(),
    };
    match org {
        Some(org) => format!("{p}AWSLogs/{org}/{account}"),
        None => format!("{p}AWSLogs/{account}"),
    }
}

/// `{root}/CloudTrail/{region}/YYYY/MM/DD/{acct}_CloudTrail_{region}_{YYYYMMDDTHHmmZ}_{unique}.json.gz`
pub fn log_key(
    prefix: Option<&str>,
    org: Option<&str>,
    account: &str,
    region: &str,
    delivered: DateTime<Utc>,
    unique: &str,
) -> String {
    let root = account_root(prefix, org, account);
    format!(
        "{root}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}_{unique}.json.gz",
        delivered.format("%Y/%m/%d"),
        delivered.format("%Y%m%dT%H%MZ"),
    )
}

/// 16 letters and digits that "have no meaning", as in real file names.
pub fn unique16() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// The uncompressed log file for `records`: what digests hash.
pub fn log_json(records: &[Value]) -> Vec<u8> {
    json!({ "Records": records }).to_string().into_bytes()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(bytes).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// `{name}` or an ARN → the trail's ARN, in the caller's account and region.
pub fn trail_arn(name_or_arn: &str, account: &str, region: &str) -> String {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.to_string()
    } else {
        format!("arn:aws:cloudtrail:{region}:{account}:trail/{name_or_arn}")
    }
}

/// One delivery run over every account trailsim knows: returns what went where.
/// One delivery of what each trail logged since the last. `late_for`: only that account's
/// trails deliver, and their files are left out of the next digest (a backfill digest lists
/// them later).
pub async fn run(sim: &Sim, late_for: Option<&str>) -> Value {
    let _one_at_a_time = sim.delivering.lock().await;
    let late = late_for.is_some();
    let mut accounts = sim.identities.lock().expect("identities lock").accounts();
    if let Some(only) = late_for {
        accounts.retain(|(account, _)| account == only);
    }
    let mut delivered = Vec::new();
    let mut errors = Vec::new();
    for (account, key) in accounts {
        let trails = describe_trails(sim, &account, &key, &mut errors).await;
        for trail in trails.values() {
            let now = sim.now();
            let (by_region, upto) = {
                let history = sim.history.lock().expect("history lock");
                let mut d = sim.deliveries.lock().expect("deliveries lock");
                let Some((from, upto)) = d.pending(trail, history.last_seq()) else {
                    continue;
                };
                // One file per account and region, as CloudTrail writes them.
                let mut by_region: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
                for e in history.since(&trail.accounts(), from) {
                    if e.seq <= upto && !d.skipped(&trail.arn, e.seq) && in_scope(trail, &e) {
                        by_region
                            .entry((e.account.clone(), e.region.clone()))
                            .or_default()
                            .push(e.record);
                    }
                }
                (by_region, upto)
            };
            let mut failure = None;
            let policy = if by_region.is_empty() {
                None
            } else {
                sim.upstream
                    .bucket_policy(&key, &trail.home_region, &trail.bucket)
                    .await
            };
            for ((member, region), records) in &by_region {
                let object = log_key(
                    trail.prefix.as_deref(),
                    trail.org_id(),
                    member,
                    region,
                    now,
                    &unique16(),
                );
                let json = log_json(records);
                let denied = policy
                    .as_ref()
                    .is_some_and(|p| policy_denies_delivery(p, &trail.bucket, &object));
                let put = if denied {
                    Err("AccessDenied".to_string())
                } else {
                    sim.upstream
                        .put_object(
                            &key,
                            &trail.home_region,
                            &trail.bucket,
                            &object,
                            gzip(&json),
                            &[],
                        )
                        .await
                };
                match put {
                    Ok(()) => {
                        if trail.log_file_validation {
                            let times = records.iter().filter_map(|r| r["eventTime"].as_str());
                            let file = crate::digest::LogFile {
                                bucket: trail.bucket.clone(),
                                key: object.clone(),
                                sha256: crate::digest::sha256_hex(&json),
                                newest_event_time: times.clone().max().map(str::to_string),
                                oldest_event_time: times.min().map(str::to_string),
                            };
                            let mut digests = sim.digests.lock().expect("digests lock");
                            digests.add_file(&trail.arn, member, region, file, now, late);
                        }
                        delivered.push(json!({"trail": trail.arn, "bucket": trail.bucket,
                            "key": object, "records": records.len()}));
                    }
                    Err(code) => failure = Some(code),
                }
            }
            let mut d = sim.deliveries.lock().expect("deliveries lock");
            let t = d.trails.entry(trail.arn.clone()).or_default();
            match failure {
                // The cursor stays: the next run tries again, as CloudTrail does.
                Some(code) => {
                    errors.push(json!({"trail": trail.arn, "error": code}));
                    t.latest_delivery_error = Some(code);
                }
                None => {
                    t.cursor = Some(upto);
                    t.latest_delivery_error = None;
                    if !by_region.is_empty() {
                        t.latest_delivery_time = Some(now);
                    }
                }
            }
        }
    }
    json!({"delivered": delivered, "errors": errors})
}

/// The account's own trails, in every region it has events in, with status and selectors.
pub(crate) async fn describe_trails(
    sim: &Sim,
    account: &str,
    key: &str,
    errors: &mut Vec<Value>,
) -> BTreeMap<String, TrailInfo> {
    let mut regions = sim
        .history
        .lock()
        .expect("history lock")
        .regions_of(account);
    regions.insert("us-east-1".to_string());
    let mut trails = BTreeMap::new();
    let all = json!({"includeShadowTrails": true});
    for region in &regions {
        match sim
            .upstream
            .cloudtrail(key, region, "DescribeTrails", &all)
            .await
        {
            Ok(v) => {
                for t in v["trailList"].as_array().into_iter().flatten() {
                    if let Some(info) = trail_info(t, account) {
                        trails.entry(info.arn.clone()).or_insert(info);
                    }
                }
            }
            Err(e) => errors.push(json!({"account": account, "region": region, "error": e})),
        }
    }
    let organization = if trails.values().any(|t| t.is_organization_trail) {
        crate::organization::managed_by(sim, account).await
    } else {
        None
    };
    for trail in trails.values_mut() {
        if trail.is_organization_trail {
            // Outside an organization, an organization trail logs its own account only.
            trail.organization = organization.clone();
        }
        let home = trail.home_region.clone();
        let by_arn = json!({"Name": trail.arn});
        match sim
            .upstream
            .cloudtrail(key, &home, "GetTrailStatus", &by_arn)
            .await
        {
            Ok(v) => trail.is_logging = v["IsLogging"].as_bool().unwrap_or(false),
            Err(e) => errors.push(json!({"trail": trail.arn, "error": e})),
        }
        let by_arn = json!({"TrailName": trail.arn});
        if let Ok(v) = sim
            .upstream
            .cloudtrail(key, &home, "GetEventSelectors", &by_arn)
            .await
        {
            trail.selectors = v;
        }
    }
    trails
}

fn trail_info(t: &Value, account: &str) -> Option<TrailInfo> {
    let arn = t["TrailARN"].as_str()?.to_string();
    // Shadows of other accounts' trails are theirs to deliver.
    if arn.split(':').nth(4) != Some(account) {
        return None;
    }
    Some(TrailInfo {
        name: t["Name"].as_str().unwrap_or_default().to_string(),
        account: account.to_string(),
        home_region: t["HomeRegion"].as_str().unwrap_or("us-east-1").to_string(),
        bucket: t["S3BucketName"].as_str()?.to_string(),
        prefix: t["S3KeyPrefix"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        multi_region: t["IsMultiRegionTrail"].as_bool().unwrap_or(false),
        include_global: t["IncludeGlobalServiceEvents"].as_bool().unwrap_or(true),
        is_logging: false,
        log_file_validation: t["LogFileValidationEnabled"].as_bool().unwrap_or(false),
        selectors: Value::Null,
        is_organization_trail: t["IsOrganizationTrail"] == true,
        organization: None,
        arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn trail() -> TrailInfo {
        TrailInfo {
            arn: "arn:aws:cloudtrail:us-east-1:111122223333:trail/lab".into(),
            name: "lab".into(),
            account: "111122223333".into(),
            home_region: "us-east-1".into(),
            bucket: "logs".into(),
            prefix: None,
            multi_region: false,
            include_global: true,
            is_logging: true,
            log_file_validation: false,
            selectors: json!({"EventSelectors": []}),
            is_organization_trail: false,
            organization: None,
        }
    }

    fn event(region: &str, source: &str, read_only: bool) -> Event {
        Event {
            seq: 1,
            account: "111122223333".into(),
            region: region.into(),
            time: Utc::now(),
            visible_at: Utc::now(),
            record: json!({"eventSource": source, "readOnly": read_only, "managementEvent": true}),
        }
    }

    #[test]
    fn regions_and_global_events() {
        let mut t = trail();
        assert!(in_scope(&t, &event("us-east-1", "s3.amazonaws.com", false)));
        assert!(!in_scope(
            &t,
            &event("eu-west-1", "s3.amazonaws.com", false)
        ));
        t.multi_region = true;
        assert!(in_scope(&t, &event("eu-west-1", "s3.amazonaws.com", false)));
        assert!(in_scope(
            &t,
            &event("us-east-1", "iam.amazonaws.com", false)
        ));
        t.include_global = false;
        assert!(!in_scope(
            &t,
            &event("us-east-1", "iam.amazonaws.com", false)
        ));
        let mut other = event("us-east-1", "s3.amazonaws.com", false);
        other.account = "999999999999".into();
        assert!(!in_scope(&t, &other));
    }

    #[test]
    fn selectors_decide_management_events() {
        let mut t = trail();
        t.selectors = json!({"EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": true}]});
        assert!(in_scope(
            &t,
            &event("us-east-1", "kms.amazonaws.com", false)
        ));
        assert!(!in_scope(
            &t,
            &event("us-east-1", "kms.amazonaws.com", true)
        ));
        t.selectors = json!({"EventSelectors": [{"ReadWriteType": "All", "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]});
        assert!(!in_scope(
            &t,
            &event("us-east-1", "kms.amazonaws.com", false)
        ));
        t.selectors = json!({"AdvancedEventSelectors": [{"FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]}]}]});
        assert!(!in_scope(
            &t,
            &event("us-east-1", "s3.amazonaws.com", false)
        ));
        t.selectors = json!({"AdvancedEventSelectors": [{"FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management"]},
            {"Field": "readOnly", "Equals": ["true"]}]}]});
        assert!(in_scope(&t, &event("us-east-1", "s3.amazonaws.com", true)));
        assert!(!in_scope(
            &t,
            &event("us-east-1", "s3.amazonaws.com", false)
        ));
    }

    #[test]
    fn explicit_denials_of_cloudtrail_put_object() {
        let deny = |principal: Value, action: &str, resource: &str| {
            json!({"Statement": [{"Effect": "Deny", "Principal": principal,
                                  "Action": action, "Resource": resource}]})
        };
        let key = "AWSLogs/1/CloudTrail/us-east-1/x.json.gz";
        assert!(policy_denies_delivery(
            &deny(json!("*"), "s3:PutObject", "arn:aws:s3:::b/*"),
            "b",
            key
        ));
        assert!(policy_denies_delivery(
            &deny(
                json!({"Service": "cloudtrail.amazonaws.com"}),
                "s3:*",
                "arn:aws:s3:::b/AWSLogs/*"
            ),
            "b",
            key
        ));
        assert!(!policy_denies_delivery(
            &deny(json!("*"), "s3:DeleteObject", "arn:aws:s3:::b/*"),
            "b",
            key
        ));
        assert!(!policy_denies_delivery(
            &deny(json!("*"), "s3:PutObject", "arn:aws:s3:::b/other/*"),
            "b",
            key
        ));
        let allow = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
                                          "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}]});
        assert!(!policy_denies_delivery(&allow, "b", key));
    }

    #[test]
    fn the_real_key_layout() {
        let t = Utc.with_ymd_and_hms(2015, 8, 1, 2, 10, 59).unwrap();
        assert_eq!(
            log_key(
                None,
                None,
                "111122223333",
                "us-east-2",
                t,
                "Mu0KsOhtH1ar15ZZ"
            ),
            "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz"
        );
        assert!(log_key(Some("audit/"), None, "1", "r", t, "u").starts_with("audit/AWSLogs/1/"));
        assert!(
            log_key(Some("a/b"), Some("o-abcdefghij"), "2", "r", t, "u")
                .starts_with("a/b/AWSLogs/o-abcdefghij/2/CloudTrail/r/2015/08/01/2_CloudTrail_r_")
        );
        assert_eq!(unique16().len(), 16);
    }

    #[test]
    fn stopped_trails_deliver_up_to_the_stop_then_nothing() {
        let mut d = Deliveries::default();
        let mut t = trail();
        assert!(
            !d.started(&t.arn, Utc::now(), 10),
            "a first start is no restart"
        );
        assert_eq!(d.pending(&t, 15), Some((9, 15)));
        d.trails.get_mut(&t.arn).unwrap().cursor = Some(15);
        d.stopped(&t.arn, Utc::now(), 17);
        t.is_logging = false;
        assert_eq!(
            d.pending(&t, 20),
            Some((15, 17)),
            "final delivery up to StopLogging"
        );
        d.trails.get_mut(&t.arn).unwrap().cursor = Some(17);
        assert_eq!(d.pending(&t, 25), None, "nothing while stopped");
        assert!(d.started(&t.arn, Utc::now(), 30), "a restart");
        t.is_logging = true;
        assert_eq!(d.pending(&t, 31), Some((17, 31)));
        assert!(d.skipped(&t.arn, 25), "events while stopped are skipped");
        assert!(
            !d.skipped(&t.arn, 30),
            "the StartLogging event is delivered"
        );
    }

    #[test]
    fn a_restart_before_any_delivery_loses_nothing_before_the_stop() {
        let mut d = Deliveries::default();
        let t = trail();
        d.started(&t.arn, Utc::now(), 10);
        d.stopped(&t.arn, Utc::now(), 14);
        assert!(d.started(&t.arn, Utc::now(), 20));
        // No delivery ran: 10..=14 are still pending, 15..=19 were while stopped.
        assert_eq!(d.pending(&t, 22), Some((9, 22)));
        assert!(!d.skipped(&t.arn, 14), "the StopLogging event is delivered");
        assert!(d.skipped(&t.arn, 17));
        assert!(
            !d.started(&t.arn, Utc::now(), 25),
            "starting a logging trail is no restart"
        );
    }
}
