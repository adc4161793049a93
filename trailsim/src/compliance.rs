//! AWS Config's compliance side, which moto 5.2.5 lacks: conformance packs (their rules made
//! from the template's `AWS::Config::ConfigRule` resources, named as AWS names them), process
//! checks fed by PutExternalEvaluation, and each rule's results (DescribeConformancePackCompliance,
//! GetComplianceDetailsByConfigRule). A managed rule's results, which AWS's own evaluator
//! would produce, are set through the control API (`/_trailsim/config/evaluations`).
//!
//! The answers keep AWS's constraints, so a client that breaks them fails here as it would
//! there: PutExternalEvaluation only for a process check, only `AWS::::Account` and the
//! caller's own account id, COMPLIANT / NON_COMPLIANT / NOT_APPLICABLE, an annotation of at
//! most 256 characters. Everything is kept per account and region, like Config itself.

use crate::call::Call;
use crate::server::Sim;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The source identifier of a process check.
pub const PROCESS_CHECK: &str = "AWS_CONFIG_PROCESS_CHECK";

/// Config's state in one account and region.
#[derive(Debug, Default)]
pub struct Compliance {
    packs: BTreeMap<(String, String), Pack>,
    /// Rules by (account, region, name as deployed).
    rules: BTreeMap<(String, String, String), Rule>,
}

#[derive(Debug, Clone)]
struct Pack {
    name: String,
    id: String,
    arn: String,
    updated: DateTime<Utc>,
    /// Rule names as deployed, in template order.
    rules: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    source_identifier: String,
    /// By (resource type, resource id).
    results: BTreeMap<(String, String), Evaluation>,
}

#[derive(Debug, Clone)]
struct Evaluation {
    compliance: String,
    annotation: Option<String>,
    ordering: DateTime<Utc>,
    recorded: DateTime<Utc>,
}

type Answer = (u16, String);

fn fault(code: &str, message: impl std::fmt::Display) -> Answer {
    (
        400,
        json!({"__type": code, "message": message.to_string()}).to_string(),
    )
}

/// The Config operations answered here; `None` for the others (forwarded to moto).
pub(crate) fn answer(sim: &Sim, call: &Call) -> Option<Answer> {
    if call.service != "config" {
        return None;
    }
    let account = sim.caller_account(call);
    let now = sim.now();
    let mut state = sim.compliance.lock().expect("compliance lock");
    let at = Place {
        account: &account,
        region: &call.region,
    };
    let p = &call.parameters;
    Some(match call.operation.as_str() {
        "PutConformancePack" => state.put_pack(at, p, now),
        "DescribeConformancePacks" => state.describe_packs(at, p),
        "DescribeConformancePackCompliance" => state.pack_compliance(at, p),
        "DeleteConformancePack" => state.delete_pack(at, p),
        "PutExternalEvaluation" => state.put_external(at, p, now),
        "GetComplianceDetailsByConfigRule" => state.rule_details(at, p),
        _ => return None,
    })
}

#[derive(Clone, Copy)]
struct Place<'a> {
    account: &'a str,
    region: &'a str,
}

impl Place<'_> {
    fn pack_key(self, name: &str) -> (String, String) {
        (
            format!("{}/{}", self.account, self.region),
            name.to_string(),
        )
    }

    fn rule_key(self, name: &str) -> (String, String, String) {
        (
            self.account.to_string(),
            self.region.to_string(),
            name.to_string(),
        )
    }
}

fn ms(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

impl Compliance {
    fn put_pack(&mut self, at: Place, p: &Value, now: DateTime<Utc>) -> Answer {
        let Some(name) = p["ConformancePackName"].as_str() else {
            return fault("ValidationException", "ConformancePackName is required");
        };
        let Some(body) = p["TemplateBody"].as_str() else {
            return fault(
                "ValidationException",
                "TemplateBody is required (trailsim reads no TemplateS3Uri)",
            );
        };
        let rules = match template_rules(body) {
            Ok(rules) => rules,
            Err(e) => return fault("ValidationException", e),
        };
        let key = at.pack_key(name);
        // AWS keeps a pack's id (and so its rules' names) across updates.
        let id = match self.packs.get(&key) {
            Some(pack) => pack.id.clone(),
            None => format!("conformance-pack-{}", short_id()),
        };
        let suffix = id.trim_start_matches("conformance-pack-").to_string();
        let mut deployed = Vec::new();
        for (rule_name, source_identifier) in rules {
            let full = format!("{rule_name}-conformance-pack-{suffix}");
            let entry = self
                .rules
                .entry(at.rule_key(&full))
                .or_insert_with(|| Rule {
                    source_identifier: source_identifier.clone(),
                    results: BTreeMap::new(),
                });
            entry.source_identifier = source_identifier;
            deployed.push(full);
        }
        if let Some(old) = self.packs.get(&key) {
            for gone in old.rules.iter().filter(|r| !deployed.contains(r)) {
                self.rules.remove(&at.rule_key(gone));
            }
        }
        let arn = format!(
            "arn:aws:config:{}:{}:conformance-pack/{name}/{id}",
            at.region, at.account
        );
        self.packs.insert(
            key,
            Pack {
                name: name.to_string(),
                id,
                arn: arn.clone(),
                updated: now,
                rules: deployed,
            },
        );
        (200, json!({"ConformancePackArn": arn}).to_string())
    }

    fn describe_packs(&self, at: Place, p: &Value) -> Answer {
        let wanted: Option<Vec<&str>> = p["ConformancePackNames"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let prefix = format!("{}/{}", at.account, at.region);
        let mut details = Vec::new();
        for ((place, name), pack) in &self.packs {
            if *place != prefix {
                continue;
            }
            if wanted.as_ref().is_some_and(|w| !w.contains(&name.as_str())) {
                continue;
            }
            details.push(json!({
                "ConformancePackName": pack.name,
                "ConformancePackArn": pack.arn,
                "ConformancePackId": pack.id,
                "LastUpdateRequestedTime": ms(pack.updated),
            }));
        }
        if let Some(missing) = wanted
            .iter()
            .flatten()
            .find(|n| !self.packs.contains_key(&at.pack_key(n)))
        {
            return fault(
                "NoSuchConformancePackException",
                format!("Conformance pack {missing} does not exist"),
            );
        }
        (200, json!({"ConformancePackDetails": details}).to_string())
    }

    fn delete_pack(&mut self, at: Place, p: &Value) -> Answer {
        let name = p["ConformancePackName"].as_str().unwrap_or_default();
        let Some(pack) = self.packs.remove(&at.pack_key(name)) else {
            return fault(
                "NoSuchConformancePackException",
                format!("Conformance pack {name} does not exist"),
            );
        };
        for rule in &pack.rules {
            self.rules.remove(&at.rule_key(rule));
        }
        (200, "{}".into())
    }

    /// Each rule of the pack with its overall compliance: NON_COMPLIANT if any resource is,
    /// COMPLIANT if any is and none is not, else INSUFFICIENT_DATA.
    fn pack_compliance(&self, at: Place, p: &Value) -> Answer {
        let name = p["ConformancePackName"].as_str().unwrap_or_default();
        let Some(pack) = self.packs.get(&at.pack_key(name)) else {
            return fault(
                "NoSuchConformancePackException",
                format!("Conformance pack {name} does not exist"),
            );
        };
        let list: Vec<Value> = pack
            .rules
            .iter()
            .map(|r| {
                let results = self.rules.get(&at.rule_key(r)).map(|rule| &rule.results);
                let any = |c: &str| results.is_some_and(|m| m.values().any(|e| e.compliance == c));
                let overall = if any("NON_COMPLIANT") {
                    "NON_COMPLIANT"
                } else if any("COMPLIANT") {
                    "COMPLIANT"
                } else {
                    "INSUFFICIENT_DATA"
                };
                json!({"ConfigRuleName": r, "ComplianceType": overall, "Controls": []})
            })
            .collect();
        (
            200,
            json!({"ConformancePackName": name, "ConformancePackRuleComplianceList": list})
                .to_string(),
        )
    }

    fn put_external(&mut self, at: Place, p: &Value, now: DateTime<Utc>) -> Answer {
        let name = p["ConfigRuleName"].as_str().unwrap_or_default();
        let e = &p["ExternalEvaluation"];
        let Some(rule) = self.rules.get_mut(&at.rule_key(name)) else {
            return fault(
                "NoSuchConfigRuleException",
                format!("The ConfigRule '{name}' provided in the request is invalid."),
            );
        };
        if rule.source_identifier != PROCESS_CHECK {
            return fault(
                "NoSuchConfigRuleException",
                format!("The ConfigRule '{name}' is not an AWS Config process check."),
            );
        }
        if e["ComplianceResourceType"] != "AWS::::Account" {
            return fault(
                "InvalidParameterValueException",
                "ComplianceResourceType must be AWS::::Account",
            );
        }
        if e["ComplianceResourceId"] != at.account {
            return fault(
                "InvalidParameterValueException",
                "ComplianceResourceId must be the caller's account id",
            );
        }
        let compliance = e["ComplianceType"].as_str().unwrap_or_default();
        if !["COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"].contains(&compliance) {
            return fault(
                "InvalidParameterValueException",
                format!("ComplianceType {compliance:?} is not accepted for a process check"),
            );
        }
        let annotation = e["Annotation"].as_str().map(str::to_string);
        if annotation.as_ref().is_some_and(|a| a.chars().count() > 256) {
            return fault(
                "ValidationException",
                "Annotation: length must be at most 256",
            );
        }
        let Some(ordering) = epoch(&e["OrderingTimestamp"]) else {
            return fault("ValidationException", "OrderingTimestamp is required");
        };
        rule.results.insert(
            ("AWS::::Account".into(), at.account.to_string()),
            Evaluation {
                compliance: compliance.to_string(),
                annotation,
                ordering,
                recorded: now,
            },
        );
        (200, "{}".into())
    }

    fn rule_details(&self, at: Place, p: &Value) -> Answer {
        let name = p["ConfigRuleName"].as_str().unwrap_or_default();
        let wanted: Option<Vec<&str>> = p["ComplianceTypes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        // A rule trailsim never heard of (a managed rule without results yet) has none.
        let Some(rule) = self.rules.get(&at.rule_key(name)) else {
            return (200, json!({"EvaluationResults": []}).to_string());
        };
        let results: Vec<Value> = rule
            .results
            .iter()
            .filter(|(_, e)| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(&e.compliance.as_str()))
            })
            .map(|((kind, id), e)| {
                let mut v = json!({
                    "EvaluationResultIdentifier": {
                        "EvaluationResultQualifier": {
                            "ConfigRuleName": name, "ResourceType": kind, "ResourceId": id,
                        },
                        "OrderingTimestamp": ms(e.ordering),
                    },
                    "ComplianceType": e.compliance,
                    "ResultRecordedTime": ms(e.recorded),
                    "ConfigRuleInvokedTime": ms(e.recorded),
                });
                if let Some(a) = &e.annotation {
                    v["Annotation"] = json!(a);
                }
                v
            })
            .collect();
        (200, json!({"EvaluationResults": results}).to_string())
    }

    /// A managed rule's result, as AWS's evaluator would record it (control API).
    pub(crate) fn set_result(&mut self, set: &SetResult, now: DateTime<Utc>) {
        let at = Place {
            account: &set.account,
            region: &set.region,
        };
        let rule = self
            .rules
            .entry(at.rule_key(&set.rule))
            .or_insert_with(|| Rule {
                source_identifier: set.source_identifier.clone().unwrap_or_default(),
                results: BTreeMap::new(),
            });
        rule.results.insert(
            (set.resource_type.clone(), set.resource_id.clone()),
            Evaluation {
                compliance: set.compliance.clone(),
                annotation: set.annotation.clone(),
                ordering: now,
                recorded: now,
            },
        );
    }
}

/// `POST /_trailsim/config/evaluations`: one result of a (managed) rule.
#[derive(Debug, Clone)]
pub(crate) struct SetResult {
    pub account: String,
    pub region: String,
    pub rule: String,
    pub source_identifier: Option<String>,
    pub resource_type: String,
    pub resource_id: String,
    pub compliance: String,
    pub annotation: Option<String>,
}

impl SetResult {
    pub(crate) fn from_json(v: &Value) -> Result<SetResult, String> {
        let text = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{k} (a string) is required"))
        };
        let compliance = text("compliance")?;
        if ![
            "COMPLIANT",
            "NON_COMPLIANT",
            "NOT_APPLICABLE",
            "INSUFFICIENT_DATA",
        ]
        .contains(&compliance.as_str())
        {
            return Err(format!("compliance {compliance:?} is not a ComplianceType"));
        }
        Ok(SetResult {
            account: text("account")?,
            region: text("region")?,
            rule: text("rule")?,
            source_identifier: v["source_identifier"].as_str().map(str::to_string),
            resource_type: text("resource_type")?,
            resource_id: text("resource_id")?,
            compliance,
            annotation: v["annotation"].as_str().map(str::to_string),
        })
    }
}

/// Seconds since the epoch as the JSON protocol sends timestamps (a number).
fn epoch(v: &Value) -> Option<DateTime<Utc>> {
    let secs = v.as_f64()?;
    DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

/// The rules a conformance pack template declares: (ConfigRuleName or logical id, source
/// identifier). Only Config rules and remediation configurations may be in a pack.
fn template_rules(body: &str) -> Result<Vec<(String, String)>, String> {
    let template: Value = serde_yaml::from_str(body).map_err(|e| format!("template: {e}"))?;
    let Some(resources) = template["Resources"].as_object() else {
        return Err("template: no Resources".into());
    };
    let mut rules = Vec::new();
    for (logical, r) in resources {
        match r["Type"].as_str() {
            Some("AWS::Config::ConfigRule") => {}
            Some("AWS::Config::RemediationConfiguration") => continue,
            other => {
                return Err(format!(
                    "template: resource {logical} has type {other:?}; a conformance pack holds only Config rules and remediation configurations"
                ));
            }
        }
        let props = &r["Properties"];
        let name = props["ConfigRuleName"].as_str().unwrap_or(logical);
        let Some(source) = props["Source"]["SourceIdentifier"].as_str() else {
            return Err(format!(
                "template: {logical}: Source.SourceIdentifier is required"
            ));
        };
        rules.push((name.to_string(), source.to_string()));
    }
    if rules.is_empty() {
        return Err("template: no AWS::Config::ConfigRule".into());
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "Resources:\n  Logging:\n    Type: AWS::Config::ConfigRule\n    Properties:\n      ConfigRuleName: trailwarden-logging\n      Source: {Owner: AWS, SourceIdentifier: AWS_CONFIG_PROCESS_CHECK}\n  Managed:\n    Type: AWS::Config::ConfigRule\n    Properties:\n      Source: {Owner: AWS, SourceIdentifier: CLOUD_TRAIL_ENABLED}\n";

    const AT: Place = Place {
        account: "111111111111",
        region: "us-east-1",
    };

    fn pack(c: &mut Compliance) -> Vec<String> {
        let (status, _) = c.put_pack(
            AT,
            &json!({"ConformancePackName": "tw", "TemplateBody": TEMPLATE}),
            Utc::now(),
        );
        assert_eq!(status, 200);
        c.packs[&AT.pack_key("tw")].rules.clone()
    }

    fn external(rule: &str, resource_id: &str, compliance: &str) -> Value {
        json!({"ConfigRuleName": rule, "ExternalEvaluation": {
            "ComplianceResourceType": "AWS::::Account", "ComplianceResourceId": resource_id,
            "ComplianceType": compliance, "OrderingTimestamp": 1.7e9}})
    }

    #[test]
    fn pack_rules_are_named_as_aws_names_them_and_keep_their_names_across_updates() {
        let mut c = Compliance::default();
        let first = pack(&mut c);
        assert_eq!(first.len(), 2);
        assert!(first[0].starts_with("trailwarden-logging-conformance-pack-"));
        assert!(first[1].starts_with("Managed-conformance-pack-"));
        assert_eq!(pack(&mut c), first);
    }

    #[test]
    fn external_evaluations_keep_aws_constraints() {
        let mut c = Compliance::default();
        let rules = pack(&mut c);
        let now = Utc::now();
        let code = |a: Answer| {
            serde_json::from_str::<Value>(&a.1).unwrap()["__type"]
                .as_str()
                .map(str::to_string)
        };
        assert_eq!(
            code(c.put_external(AT, &external(&rules[0], AT.account, "COMPLIANT"), now)),
            None
        );
        assert_eq!(
            code(c.put_external(AT, &external(&rules[1], AT.account, "COMPLIANT"), now)).as_deref(),
            Some("NoSuchConfigRuleException"),
            "a managed rule is no process check"
        );
        assert_eq!(
            code(c.put_external(AT, &external("nope", AT.account, "COMPLIANT"), now)).as_deref(),
            Some("NoSuchConfigRuleException")
        );
        assert_eq!(
            code(c.put_external(AT, &external(&rules[0], "222222222222", "COMPLIANT"), now))
                .as_deref(),
            Some("InvalidParameterValueException"),
            "another account's id"
        );
        assert_eq!(
            code(c.put_external(
                AT,
                &external(&rules[0], AT.account, "INSUFFICIENT_DATA"),
                now
            ))
            .as_deref(),
            Some("InvalidParameterValueException")
        );
        let mut long = external(&rules[0], AT.account, "COMPLIANT");
        long["ExternalEvaluation"]["Annotation"] = json!("x".repeat(257));
        assert_eq!(
            code(c.put_external(AT, &long, now)).as_deref(),
            Some("ValidationException")
        );
    }

    #[test]
    fn pack_compliance_follows_the_latest_evaluation() {
        let mut c = Compliance::default();
        let rules = pack(&mut c);
        let overall = |c: &Compliance| {
            let (_, body) = c.pack_compliance(AT, &json!({"ConformancePackName": "tw"}));
            let v: Value = serde_json::from_str(&body).unwrap();
            v["ConformancePackRuleComplianceList"][0]["ComplianceType"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(overall(&c), "INSUFFICIENT_DATA");
        c.put_external(
            AT,
            &external(&rules[0], AT.account, "NON_COMPLIANT"),
            Utc::now(),
        );
        assert_eq!(overall(&c), "NON_COMPLIANT");
        c.put_external(
            AT,
            &external(&rules[0], AT.account, "COMPLIANT"),
            Utc::now(),
        );
        assert_eq!(overall(&c), "COMPLIANT");
    }

    #[test]
    fn templates_with_other_resources_are_refused() {
        let bad = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n";
        assert!(
            template_rules(bad)
                .unwrap_err()
                .contains("only Config rules")
        );
        assert!(template_rules("{}").is_err());
    }
}
