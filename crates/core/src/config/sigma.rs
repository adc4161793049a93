//! Sigma rules as SigmaHQ writes them (logsource `product: aws`, `service: cloudtrail`),
//! loaded from files and folders beside the YAML detections, evaluated with rsigma
//! (docs/sigma.md says why that crate). A rule that cannot be loaded is kept as a problem
//! with its file and the reason; the others load.

use super::policies::Severity;
use super::sigma_event::CloudTrailEvent;
use rsigma_eval::Engine;
use rsigma_parser::ast::{Level, SigmaRule};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded rule: what its hits say about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SigmaInfo {
    /// The rule's `id`: the `detection` label of its hits.
    pub id: String,
    pub title: String,
    pub severity: Severity,
    /// Kept with every hit: the Detection Rule License asks for it.
    pub author: Option<String>,
    pub file: PathBuf,
}

/// A rule, or a whole file, that could not be loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SigmaProblem {
    pub file: PathBuf,
    pub reason: String,
}

/// The rules loaded, and the problems of those that were not.
#[derive(Clone, Default)]
pub struct SigmaRules {
    engine: Arc<Engine>,
    by_id: HashMap<String, usize>,
    /// The event names some rule can match (lowercased); `None`: a rule can match any.
    names: super::sigma_names::Names,
    pub rules: Vec<SigmaInfo>,
    pub problems: Vec<SigmaProblem>,
}

impl fmt::Debug for SigmaRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigmaRules")
            .field("rules", &self.rules)
            .field("problems", &self.problems)
            .finish()
    }
}

impl PartialEq for SigmaRules {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules && self.problems == other.problems
    }
}

impl SigmaRules {
    /// Every `.yml` and `.yaml` file of `paths` (folders read recursively, in name order).
    pub fn load(paths: &[PathBuf]) -> SigmaRules {
        let mut texts = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            for file in rule_files(path, &mut problems) {
                match std::fs::read_to_string(&file) {
                    Ok(text) => texts.push((file, text)),
                    Err(e) => problems.push(SigmaProblem {
                        file,
                        reason: format!("cannot read: {e}"),
                    }),
                }
            }
        }
        let mut rules = SigmaRules::from_texts(&texts);
        problems.append(&mut rules.problems);
        rules.problems = problems;
        rules
    }

    /// Rules from file contents.
    pub fn from_texts(files: &[(PathBuf, String)]) -> SigmaRules {
        let mut engine = Engine::new();
        let mut out = SigmaRules::default();
        for (file, text) in files {
            let problem = |reason: String| SigmaProblem {
                file: file.clone(),
                reason,
            };
            let collection = match rsigma_parser::parse_sigma_yaml(text) {
                Ok(c) => c,
                Err(e) => {
                    out.problems.push(problem(e.to_string()));
                    continue;
                }
            };
            out.problems
                .extend(collection.errors.iter().map(|e| problem(e.clone())));
            if !collection.correlations.is_empty() || !collection.filters.is_empty() {
                out.problems.push(problem(
                    "correlation and filter rules are not supported: only detection rules".into(),
                ));
            }
            for rule in &collection.rules {
                let info = match accept(rule, file) {
                    Ok(info) => info,
                    Err(reason) => {
                        out.problems.push(problem(reason));
                        continue;
                    }
                };
                if out.by_id.contains_key(&info.id) {
                    out.problems
                        .push(problem(format!("rule id {} is used twice", info.id)));
                    continue;
                }
                if let Err(e) = engine.add_rule(rule) {
                    out.problems.push(problem(format!("rule {}: {e}", info.id)));
                    continue;
                }
                out.names = match (out.rules.is_empty(), out.names.take()) {
                    (true, _) => super::sigma_names::required(&rule.detection),
                    (false, Some(mut names)) => {
                        super::sigma_names::required(&rule.detection).map(|more| {
                            names.extend(more);
                            names
                        })
                    }
                    (false, None) => None,
                };
                out.by_id.insert(info.id.clone(), out.rules.len());
                out.rules.push(info);
            }
        }
        out.engine = Arc::new(engine);
        out
    }

    /// Whether some rule can match a record named `event_name`: the others need not be
    /// parsed.
    pub fn may_match(&self, event_name: &str) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let Some(names) = &self.names else {
            return true;
        };
        // Every record asks: event names are short ASCII, lowercased without allocating.
        let mut buffer = [0u8; 64];
        match buffer.get_mut(..event_name.len()) {
            Some(lower) if event_name.is_ascii() => {
                lower.copy_from_slice(event_name.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower).is_ok_and(|l| names.contains(l))
            }
            _ => names.contains(event_name.to_lowercase().as_str()),
        }
    }

    /// The rules a CloudTrail record matches.
    pub fn matches(&self, record: &serde_json::Value) -> Vec<&SigmaInfo> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        self.engine
            .evaluate(&CloudTrailEvent::borrow(record))
            .iter()
            .filter_map(|r| self.by_id.get(r.header.rule_id.as_deref()?))
            .map(|&i| &self.rules[i])
            .collect()
    }

    pub fn by_id(&self, id: &str) -> Option<&SigmaInfo> {
        self.by_id.get(id).map(|&i| &self.rules[i])
    }
}

/// A CloudTrail detection rule with an id, or why not.
fn accept(rule: &SigmaRule, file: &Path) -> Result<SigmaInfo, String> {
    let source = &rule.logsource;
    let named = |v: &Option<String>| v.as_deref().unwrap_or("-").to_ascii_lowercase();
    if named(&source.product) != "aws" || named(&source.service) != "cloudtrail" {
        return Err(format!(
            "rule {:?}: logsource is {}/{}, not aws/cloudtrail",
            rule.title,
            named(&source.product),
            named(&source.service)
        ));
    }
    let id = rule
        .id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| format!("rule {:?} has no id (it names its hits)", rule.title))?;
    Ok(SigmaInfo {
        id,
        title: rule.title.clone(),
        severity: match rule.level {
            Some(Level::Critical) => Severity::Critical,
            Some(Level::High) => Severity::High,
            Some(Level::Low) => Severity::Low,
            Some(Level::Informational) => Severity::Info,
            Some(Level::Medium) | None => Severity::Medium,
        },
        author: rule.author.clone(),
        file: file.to_path_buf(),
    })
}

/// A file, or the rule files under a folder; a path that is neither is a problem.
fn rule_files(path: &Path, problems: &mut Vec<SigmaProblem>) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => {
            problems.push(SigmaProblem {
                file: path.to_path_buf(),
                reason: format!("cannot read: {e}"),
            });
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(rule_files(&p, problems));
        } else if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            files.push(p);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn record(source: &str, name: &str, request: Value, error: Option<&str>) -> Value {
        let mut v = json!({
            "eventVersion": "1.09", "eventTime": "2026-11-24T10:00:00Z", "eventSource": source,
            "eventName": name, "awsRegion": "us-east-1", "recipientAccountId": "123456789012",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/ops/eve"},
            "requestParameters": request, "readOnly": false,
        });
        if let Some(code) = error {
            v["errorCode"] = json!(code);
        }
        v
    }

    /// PutBucketVersioning's request as CloudTrail records it.
    fn versioning(status: &str) -> Value {
        json!({
            "bucketName": "trail-logs", "Host": "trail-logs.s3.us-east-1.amazonaws.com",
            "versioning": "",
            "VersioningConfiguration": {
                "Status": status, "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"
            }
        })
    }

    fn shipped() -> SigmaRules {
        SigmaRules::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/sigma")])
    }

    #[test]
    fn every_shipped_rule_loads_and_fires_on_its_own_example() {
        let rules = shipped();
        assert!(rules.problems.is_empty(), "{:#?}", rules.problems);
        // (rule file, a record it is written for)
        let examples = [
            (
                "aws_cloudtrail_disable_logging.yml",
                record(
                    "cloudtrail.amazonaws.com",
                    "StopLogging",
                    json!({"name": "lab"}),
                    None,
                ),
            ),
            (
                "aws_config_disable_recording.yml",
                record(
                    "config.amazonaws.com",
                    "StopConfigurationRecorder",
                    json!({"configurationRecorderName": "default"}),
                    None,
                ),
            ),
            (
                "aws_cloudtrail_guardduty_detector_deleted_or_updated.yml",
                record(
                    "guardduty.amazonaws.com",
                    "UpdateDetector",
                    json!({"detectorId": "d", "enable": false}),
                    None,
                ),
            ),
            (
                "aws_s3_data_management_tampering.yml",
                record(
                    "s3.amazonaws.com",
                    "PutBucketLogging",
                    json!({"bucketName": "trail-logs"}),
                    None,
                ),
            ),
            (
                "aws_cloudtrail_vpc_flow_logs_deleted.yml",
                record(
                    "ec2.amazonaws.com",
                    "DeleteFlowLogs",
                    json!({"DeleteFlowLogsRequest": {"FlowLogId": {"content": "fl-1"}}}),
                    None,
                ),
            ),
            (
                "aws_kms_import_key_material.yml",
                record(
                    "kms.amazonaws.com",
                    "ImportKeyMaterial",
                    json!({"keyId": "k"}),
                    None,
                ),
            ),
            (
                // Its `requestParameters|contains` reads an object as text (sigma_event.rs).
                "aws_disable_bucket_versioning.yml",
                record(
                    "s3.amazonaws.com",
                    "PutBucketVersioning",
                    versioning("Suspended"),
                    None,
                ),
            ),
            (
                "aws_cloudtrail_bucket_deleted.yml",
                record(
                    "s3.amazonaws.com",
                    "DeleteBucket",
                    json!({"bucketName": "trail-logs"}),
                    None,
                ),
            ),
        ];
        assert_eq!(
            examples.len(),
            rules.rules.len(),
            "an example per shipped rule"
        );
        for (file, event) in &examples {
            let fired: Vec<&Path> = rules
                .matches(event)
                .iter()
                .map(|r| r.file.as_path())
                .collect();
            assert!(
                fired.iter().any(|f| f.ends_with(file)),
                "{file} on {event}: fired {fired:?}"
            );
            // The name filter that spares parsing lets every firing record through.
            let name = event["eventName"].as_str().unwrap();
            assert!(rules.may_match(name), "{file}: {name} filtered out");
        }
        // ...and keeps the rest out: the shipped set pins its event names.
        for name in ["GetObject", "ListBuckets", "AssumeRole", "Decrypt"] {
            assert!(!rules.may_match(name), "{name}");
        }
        // Rules written for success only (`errorCode: null`) leave a failed attempt alone.
        let failed = record(
            "s3.amazonaws.com",
            "DeleteBucket",
            json!({"bucketName": "b"}),
            Some("AccessDenied"),
        );
        assert!(rules.matches(&failed).is_empty());
        let benign = record("s3.amazonaws.com", "ListBuckets", json!(null), None);
        assert!(rules.matches(&benign).is_empty());
        let enabled = record(
            "s3.amazonaws.com",
            "PutBucketVersioning",
            versioning("Enabled"),
            None,
        );
        assert!(rules.matches(&enabled).is_empty(), "versioning enabled");
        let info = rules.by_id("4db60cc0-36fb-42b7-9b58-a5b53019fb74").unwrap();
        assert_eq!(info.title, "AWS CloudTrail Important Change");
        assert_eq!(info.severity, Severity::Medium);
        assert_eq!(info.author.as_deref(), Some("vitaliy0x1"));
    }

    #[test]
    fn a_string_modifier_on_an_object_reads_it_as_text_in_a_filter_too() {
        // The shape of SigmaHQ's aws_ec2_vm_export_failure: an export is reported unless its
        // response (an object) says Failure.
        let rule = "title: export\nid: 22222222-0000-0000-0000-000000000001\n\
                    logsource:\n  product: aws\n  service: cloudtrail\n\
                    detection:\n  selection:\n    eventName: CreateInstanceExportTask\n\
                    \x20 failed:\n    responseElements|contains: Failure\n\
                    \x20 condition: selection and not failed\nlevel: low\n";
        let rules = SigmaRules::from_texts(&[(PathBuf::from("export.yml"), rule.to_string())]);
        assert!(rules.problems.is_empty(), "{:#?}", rules.problems);
        let export = |state: &str| {
            let mut r = record(
                "ec2.amazonaws.com",
                "CreateInstanceExportTask",
                json!({}),
                None,
            );
            r["responseElements"] = json!({"exportTask": {"state": state, "statusMessage": ""}});
            r
        };
        assert_eq!(rules.matches(&export("active")).len(), 1);
        assert!(rules.matches(&export("Failure")).is_empty());
    }

    #[test]
    fn a_rule_that_cannot_load_is_reported_with_its_file_and_the_others_load() {
        let rule = |id: &str, product: &str, selection: &str| {
            format!(
                "title: t {id}\nid: {id}\nlogsource:\n  product: {product}\n  service: cloudtrail\n\
                 detection:\n  selection:\n    {selection}\n  condition: selection\nlevel: high\n"
            )
        };
        let good = rule(
            "11111111-0000-0000-0000-000000000001",
            "aws",
            "eventName: StopLogging",
        );
        let files = [
            ("good.yml", good.clone()),
            ("syntax.yml", "title: [unclosed\n".to_string()),
            (
                "modifier.yml",
                rule(
                    "11111111-0000-0000-0000-000000000002",
                    "aws",
                    "eventName|nosuchmodifier: x",
                ),
            ),
            (
                "windows.yml",
                rule(
                    "11111111-0000-0000-0000-000000000003",
                    "windows",
                    "eventName: x",
                ),
            ),
            (
                "no-id.yml",
                good.replace("id: 11111111-0000-0000-0000-000000000001\n", ""),
            ),
            ("twice.yml", good.clone()),
        ];
        let texts: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(f, t)| (PathBuf::from(f), t.clone()))
            .collect();
        let rules = SigmaRules::from_texts(&texts);
        assert_eq!(rules.rules.len(), 1, "{:#?}", rules.problems);
        assert_eq!(rules.rules[0].file, Path::new("good.yml"));
        let problem = |file: &str| {
            rules
                .problems
                .iter()
                .find(|p| p.file == Path::new(file))
                .map(|p| p.reason.clone())
                .unwrap_or_else(|| panic!("no problem for {file}: {:#?}", rules.problems))
        };
        assert!(!problem("syntax.yml").is_empty());
        assert!(
            problem("modifier.yml").contains("nosuchmodifier"),
            "{}",
            problem("modifier.yml")
        );
        assert!(problem("windows.yml").contains("not aws/cloudtrail"));
        assert!(problem("no-id.yml").contains("no id"));
        assert!(problem("twice.yml").contains("used twice"));
        let stop = record("cloudtrail.amazonaws.com", "StopLogging", json!({}), None);
        assert_eq!(rules.matches(&stop).len(), 1);
    }
}
