//! The `security_hub` poller: each finding imported into Security Hub (ASFF) when its
//! verdict changes and again after `refresh` (`plan/config_evaluations.rs`' `due`), never for
//! `error` or `pending`, into the finding's own account; one that passes again is resolved
//! (BatchUpdateFindings). `/status.security_hub` says what was imported and what failed.

use super::Watch;
use crate::asff::{AsffFinding, asff_finding};
use crate::collect::security_hub::{import, resolve};
use crate::config::SecurityHubSettings;
use crate::plan::config_evaluations::{Sent, due};
use crate::posture::Unavailable;
use chrono::Utc;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const SECURITY_HUB: &str = "security_hub";

/// Accounts imported into at a time.
const CONCURRENCY: usize = 8;

pub(super) struct HubWatch {
    settings: SecurityHubSettings,
    region: String,
    writer: bool,
    /// The compliance Security Hub last accepted, by finding id (in memory: a restart
    /// imports every finding once more, under the same ids).
    sent: Mutex<BTreeMap<String, Sent<&'static str>>>,
    /// The last failure of each finding id, until it is imported.
    failed: Mutex<BTreeMap<String, String>>,
}

impl HubWatch {
    pub(super) fn new(settings: SecurityHubSettings, regions: &[String], writer: bool) -> HubWatch {
        let region = (settings.region.clone())
            .or_else(|| regions.first().cloned())
            .unwrap_or_else(|| "us-east-1".into());
        HubWatch {
            settings,
            region,
            writer,
            sent: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
        }
    }

    fn status_json(&self) -> Value {
        let imported: Vec<Value> = (self.sent.lock().iter())
            .map(|(id, s)| json!({"id": id, "compliance": s.verdict, "imported_at": s.at}))
            .collect();
        let failed: Vec<Value> = (self.failed.lock().iter())
            .map(|(id, why)| json!({"id": id, "error": why}))
            .collect();
        json!({"region": self.region, "writer": self.writer, "imported": imported, "failed": failed})
    }
}

impl Watch {
    pub async fn poll_security_hub(&self) {
        if self.security_hub.is_none() {
            return;
        }
        self.execute(
            &self.pollers.security_hub,
            super::runner::Overlap::Skip,
            self.run_security_hub(),
        )
        .await;
    }

    async fn run_security_hub(&self) -> Vec<Unavailable> {
        let Some(h) = &self.security_hub else {
            return Vec::new();
        };
        if !h.writer {
            self.published.status.write().security_hub = Some(h.status_json());
            return Vec::new();
        }
        let (findings, descriptions) = {
            let doc = self.published.status.read();
            if doc.evaluated_at.is_none() {
                return Vec::new();
            }
            let findings: Vec<_> = doc.findings.iter().map(|e| e.finding.clone()).collect();
            (findings, doc.descriptions.clone())
        };
        let mut asff: BTreeMap<String, AsffFinding> = BTreeMap::new();
        let mut verdicts: BTreeMap<String, Option<&'static str>> = BTreeMap::new();
        for f in &findings {
            let a = asff_finding(f, descriptions.get(&f.policy).map(String::as_str));
            verdicts.insert(f.uid(), a.as_ref().map(|a| a.compliance));
            if let Some(a) = a {
                asff.insert(a.id.clone(), a);
            }
        }
        let now = Utc::now();
        let refresh =
            chrono::Duration::from_std(h.settings.refresh.0).unwrap_or(chrono::Duration::hours(24));
        let mut by_account: BTreeMap<String, Vec<AsffFinding>> = BTreeMap::new();
        for (id, _) in due(&verdicts, &h.sent.lock(), now, refresh) {
            if let Some(a) = asff.remove(&id) {
                by_account.entry(a.account.clone()).or_default().push(a);
            }
        }
        let clients = self.account_clients();
        let region = h.region.clone();
        let was_passing: BTreeMap<String, bool> = (h.sent.lock().iter())
            .map(|(id, s)| (id.clone(), s.verdict == "PASSED"))
            .collect();
        let runs = by_account.into_iter().map(|(account, list)| {
            let aws = clients.get(&account).cloned();
            let region = region.clone();
            let was_passing = &was_passing;
            async move {
                match aws {
                    Some(aws) => {
                        let mut out = import(&aws, &region, &account, &list, now).await;
                        // A finding that passes now, and did not before, is resolved.
                        let passing: Vec<String> = (list.iter())
                            .filter(|a| a.compliance == "PASSED")
                            .filter(|a| out.iter().any(|(id, r)| *id == a.id && r.is_ok()))
                            .filter(|a| was_passing.get(&a.id) != Some(&true))
                            .map(|a| a.id.clone())
                            .collect();
                        if !passing.is_empty()
                            && let Err(e) = resolve(&aws, &region, &account, &passing).await
                        {
                            for (id, r) in out.iter_mut() {
                                if passing.contains(id) {
                                    *r = Err(e.clone());
                                }
                            }
                        }
                        (list, out)
                    }
                    None => {
                        let e = Unavailable::new(format!(
                            "account {account}: no clients (not reached)"
                        ));
                        let out = list
                            .iter()
                            .map(|a| (a.id.clone(), Err(e.clone())))
                            .collect();
                        (list, out)
                    }
                }
            }
        });
        let results: Vec<_> = futures_util::stream::iter(runs)
            .buffer_unordered(CONCURRENCY)
            // Each account done is progress: an organization-wide run is not a stall.
            .inspect(|_| self.pollers.security_hub.tick())
            .collect()
            .await;
        let mut errors = Vec::new();
        for (list, outcomes) in results {
            for (id, result) in outcomes {
                let Some(a) = list.iter().find(|a| a.id == id) else {
                    continue;
                };
                match result {
                    Ok(()) => {
                        h.failed.lock().remove(&id);
                        self.published
                            .metrics
                            .security_hub_imports
                            .with_label_values(&[a.compliance])
                            .inc();
                        tracing::info!(id = %id, compliance = a.compliance, "finding imported into Security Hub");
                        h.sent.lock().insert(
                            id,
                            Sent {
                                verdict: a.compliance,
                                at: now,
                            },
                        );
                    }
                    Err(e) => {
                        h.failed.lock().insert(id, e.reason.clone());
                        errors.push(e);
                    }
                }
            }
        }
        self.published.status.write().security_hub = Some(h.status_json());
        errors
    }
}
